"""Does a per-class Platt calibration, fitted on the training images, help the default heads?

The experiment behind the transfer recipe's `calibrate` (now the default;
`mmdsr_keras.training.score_calibration`), kept to compare its variants. On the same folds
and feature cache, each head is trained exactly as `quality.py` trains it (the
CLI's default frozen phase); then, per class c, a scale a_c > 0 and a bias b_c
are fitted on the head's logits s of the *training* rows, under every cached
view, by Platt's method (logistic regression of the label on s with the
smoothed targets (N+ + 1) / (N+ + 2) and 1 / (N- + 2)):

    p_c(x) = sigmoid(a_c * s_c(x) + b_c)

and applied to the test rows. a_c > 0 keeps each class's ranking, so a single
model's mAP does not move; what moves is the thresholded CF1 / OF1 (the
L2-shrunk default heads predict few labels at sigmoid >= 0.5) and the pooled
out-of-fold mAP, which ranks scores of five different models together.
Variants: `platt_views` (all cached views of the training rows), `platt_plain`
(plain view only), `bias` (b_c alone, a_c = 1).

Usage:

    python bench/score_calibration.py --dataset coco --heads mmdsr gap \
        --probe-from bench/results/quality-XXX     # a quality run with the probe row

Per-fold logits go to `--out` (default bench/results/score-calibration-DATASET)
and are reused, so an interrupted run resumes.
"""

import argparse
import pathlib
import sys
import time

import keras
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import quality  # noqa: E402
from paired_statistics import metrics, paired_bootstrap  # noqa: E402

from mmdsr_keras.training import StageFeatureCache, platt_scaling  # noqa: E402

MODES = ("raw", "platt_views", "platt_plain", "bias")


def platt(scores, labels, valid, fit_scale=True, iterations=50):
    """(a, b) of one class: the package's Platt fit, or (`fit_scale=False`) its bias alone."""
    if fit_scale:
        return platt_scaling(scores, labels, valid)
    s, y = scores[valid], labels[valid]
    positives, negatives = y.sum(), (1 - y).sum()
    target = np.where(y > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    b = 0.0
    for _ in range(iterations):  # Newton on the bias: a 1-D convex problem
        p = 1 / (1 + np.exp(-(s + b)))
        b -= (p - target).sum() / ((p * (1 - p)).sum() + 1e-9)
    return 1.0, b


def calibrated(run, labels, ignore, mode):
    """The test logits of one fold's run under a calibration mode."""
    test = run["test"]
    if mode == "raw":
        return test
    views = run["train_views"][:1] if mode == "platt_plain" else run["train_views"]
    rows = run["train_rows"]
    s = views.reshape(-1, views.shape[-1])
    y = np.tile(labels[rows], (len(views), 1))
    valid = np.tile(ignore[rows] == 0, (len(views), 1))
    out = np.empty_like(test)
    for c in range(test.shape[1]):
        a, b = platt(s[:, c], y[:, c], valid[:, c], fit_scale=mode != "bias")
        out[:, c] = a * test[:, c] + b
    return out


def train_fold(spec, data, flags, cache, train_rows, test_rows, args):
    head, overrides = quality.parse_head(spec)
    cli = quality.cli_arguments(flags, head, overrides, args)
    cli.calibrate = False  # the raw logits: this script fits the calibrations itself
    cli.frozen_epochs = quality.resolve_frozen_epochs(cli.frozen_epochs, len(train_rows))
    config = quality.training_config(cli)
    keras.utils.clear_session(free_memory=True)
    keras.utils.set_random_seed(config.seed)
    model = quality.build_model(cli, data.subset(train_rows))
    quality.freeze_backbone_batchnorm(model)
    quality.fit_frozen_phase(model, cache, config, rows=train_rows)
    train_views = np.stack([quality.predict_cached(model, cache, train_rows, views=(v,))
                            for v in range(config.cache_views)])
    return dict(train_rows=train_rows, test_rows=test_rows, train_views=train_views,
                test=quality.predict_cached(model, cache, test_rows))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("coco", "voc"), default="coco")
    parser.add_argument("--heads", nargs="+", default=["mmdsr", "gap"])
    parser.add_argument("--coco-mini", default=quality.SHARED / "coco-mini")
    parser.add_argument("--voc", default=quality.SHARED / "voc2007-mini")
    parser.add_argument("--cache-dir", default="bench/feature_cache")
    parser.add_argument("--probe-from", help="a quality.py folder whose probe row to pair with")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    args.backbone, args.weights, args.image_size, args.set = (
        "efficientnet_lite0", "imagenet", 224, [])
    out = pathlib.Path(args.out or f"bench/results/score-calibration-{args.dataset}")
    out.mkdir(parents=True, exist_ok=True)
    data, flags = quality.load_data(args.dataset, args)
    folds = quality.protocol_splits(args.dataset, data)["cv"]
    cli = quality.cli_arguments(flags, "mmdsr", {}, args)
    cli.frozen_epochs = quality.resolve_frozen_epochs(cli.frozen_epochs, len(data))
    config = quality.training_config(cli)
    cache = StageFeatureCache.compute(
        quality.build_model(cli, data), data, args.image_size,
        pathlib.Path(args.cache_dir) / f"{args.dataset}_{args.backbone}_{args.weights}"
        f"_{args.image_size}_{config.cache_views}v",
        views=config.cache_views, seed=config.seed, verbose=1)
    cache.load_into_memory()
    labels, ignore = cache.labels, cache.ignore_mask
    pooled = {}
    for spec in args.heads:
        runs = []
        for fold, (train_rows, test_rows) in enumerate(folds):
            path = out / f"{spec}.fold{fold}.npz".replace("/", "_")
            if not path.exists():
                started = time.perf_counter()
                np.savez(path, **train_fold(spec, data, flags, cache,
                                            train_rows, test_rows, args))
                print(f"{spec} fold {fold}: {time.perf_counter() - started:.0f} s", flush=True)
            runs.append(dict(np.load(path)))
        for mode in MODES:
            scores = np.zeros(labels.shape, np.float32)
            per_fold = []
            for run in runs:
                scores[run["test_rows"]] = calibrated(run, labels, ignore, mode)
                per_fold.append(metrics(scores[run["test_rows"]], labels[run["test_rows"]],
                                        ignore[run["test_rows"]])[0])
            pooled[spec, mode] = scores
            oof = metrics(scores, labels, ignore)[0]
            print(f"| {spec} | {mode} | {oof['mAP']:.2f} | {oof['CF1']:.2f} | {oof['OF1']:.2f} | "
                  f"{np.mean([p['mAP'] for p in per_fold]):.2f} | "
                  f"{np.mean([p['CF1'] for p in per_fold]):.2f} |", flush=True)
    if args.probe_from:
        probe = np.zeros(labels.shape, np.float32)
        for fold, (_, test_rows) in enumerate(folds):
            probe[test_rows] = np.load(pathlib.Path(args.probe_from) / "scores" /
                                       f"{args.dataset}.cv.probe.fold{fold}.plain.npy")
        pooled["probe", "raw"] = probe
    first = args.heads[0]
    for key, scores in pooled.items():
        if key[0] != first and key[1] in ("raw", "platt_views", "platt_plain"):
            for mode in ("raw", "platt_views"):
                diff, low, high = paired_bootstrap(pooled[first, mode], scores, labels, ignore)
                print(f"{first} {mode} - {key[0]} {key[1]}: {diff:+.2f} [{low:+.2f}, {high:+.2f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
