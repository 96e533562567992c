"""Quality benchmark: every head, trained by the CLI's own recipe, cross-validated on real images.

Two real datasets (beside the checkout in ../shared, or given by flag):

- coco-mini: 337 COCO-2017 images, 80 classes; 5-fold CV.
- voc2007-mini: 1,181 VOC 2007 trainval images, 20 classes; 5-fold CV over
  trainval, and the official train -> val halves (`split`). Difficult objects
  are positives in training and ignored in AP.

Folds are `KFold(5, shuffle=True, random_state=0)`. Each head is trained on
4/5 and scores the other 1/5; the table reports the out-of-fold (OOF) mAP
over all pooled OOF scores, its CF1 / OF1, the mean and spread of the
per-fold mAPs (COCO: also the VOC-20 view), and, against MMDSR, the per-fold
differences and a paired bootstrap 95% interval over images.

Rows (same backbone, resolution and budget):

- `probe`: per-class logistic regression on standardised GAP features of the
  last stage, C by inner CV (`linear_probe.py`): the floor.
- `gap`, `gmp`, `mlgcn`, `mmdsr` and MMDSR's ablations `no_cross_layer`,
  `no_dual_branch`, `no_graph`, `static_graph`, each built and trained
  exactly as `mmdsr-keras train` does by default (the bench parses the CLI's
  own arguments): the frozen-backbone phase on the same `StageFeatureCache`,
  then (the recipe's `calibrate`) per-class Platt calibration on the
  training rows' cached views.
  A head may carry CLI overrides: `mmdsr@frozen_lr=0.003,loss=asl`.
- `--finetune HEAD ...` adds the recipe's fine-tuning phase (full images,
  backbone BatchNorm frozen) for those heads on the VOC train -> val split
  and coco-mini folds 0 and 1, as rows `HEAD+ft`.

Scores are scored with and without flip test-time augmentation (the cached
mirrored view). Every finished job writes a line to `runs.jsonl` and its
test scores to `scores/`, so `--resume FOLDER` continues an interrupted
benchmark; `summary.md`, `pr_curves.png` and `per_class_ap_difference.png`
are rewritten at the end of every invocation. `--quick`: coco-mini only,
probe / gap / mmdsr (about 15 minutes on 2 CPU cores). A GPU runs the same
grid unchanged.

Usage:

    python bench/quality.py                       # the full grid, both datasets
    python bench/quality.py --quick
    python bench/quality.py --datasets voc --heads probe gap mmdsr mmdsr@loss=asl
    python bench/quality.py --resume bench/results/quality-001
    python bench/quality.py --resume bench/results/quality-001 --heads mmdsr@dropout=0.3
"""

import argparse
import json
import os
import pathlib
import platform
import shutil
import sys
import time

import keras
import numpy as np
from sklearn.model_selection import KFold

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from linear_probe import probe_scores  # noqa: E402
from paired_statistics import metrics, paired_bootstrap  # noqa: E402

from mmdsr_keras.cli import build_parser  # noqa: E402
from mmdsr_keras.commands.train_command import build_model, fill_defaults, training_config  # noqa: E402,E501
from mmdsr_keras.data.coco_json import load_coco_json  # noqa: E402
from mmdsr_keras.data.voc_devkit import load_voc_devkit  # noqa: E402
from mmdsr_keras.evaluation.voc_from_coco import voc_columns  # noqa: E402
from mmdsr_keras.training import (  # noqa: E402
    RunDirectory,
    StageFeatureCache,
    calibrate_on_batches,
    calibrate_on_cache,
    compile_for_training,
    fit,
    fit_frozen_phase,
    freeze_backbone_batchnorm,
    predict_cached,
    resolve_frozen_epochs,
    steps_per_epoch,
)

SHARED = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
ABLATIONS = {
    "mmdsr": [], "no_cross_layer": ["--no-cross-layer"], "no_dual_branch": ["--no-dual-branch"],
    "no_graph": ["--graph", "none"], "static_graph": ["--graph", "static"],
}
BASELINES = ("gap", "gmp", "mlgcn")
DEFAULT_HEADS = ["probe", "gap", "gmp", "mlgcn", "mmdsr", "no_cross_layer", "no_dual_branch",
                 "no_graph"]
QUICK_HEADS = ["probe", "gap", "mmdsr"]
FOLDS = 5
FINETUNE_FOLDS = (0, 1)


def parse_head(spec):
    """`"mmdsr@frozen_lr=0.003"` -> ("mmdsr", {"frozen_lr": 0.003})."""
    name, _, options = spec.partition("@")
    if name != "probe" and name not in BASELINES and name not in ABLATIONS:
        raise SystemExit(f"--heads: unknown head {name!r}; expected probe, "
                         f"{', '.join(BASELINES)} or one of {sorted(ABLATIONS)}.")
    values = {}
    for item in filter(None, options.split(",")):
        key, _, value = item.partition("=")
        try:
            values[key] = json.loads(value)
        except json.JSONDecodeError:
            values[key] = value
    return name, values


def cli_arguments(dataset_flags, head, overrides, args):
    """The argparse namespace `mmdsr-keras train` would run for this head."""
    model = head if head in BASELINES else "mmdsr"
    argv = ["train", *dataset_flags, "--model", model, "--image-size", str(args.image_size),
            "--backbone", args.backbone, "--weights", args.weights, *ABLATIONS.get(head, [])]
    cli = build_parser().parse_args(argv)
    for key, value in {**parse_head("probe@" + ",".join(args.set))[1], **overrides}.items():
        if not hasattr(cli, key):
            raise SystemExit(f"head override {key!r} is not a `mmdsr-keras train` argument.")
        setattr(cli, key, value)
    return fill_defaults(cli)


def load_data(name, args):
    if name == "coco":
        root = pathlib.Path(args.coco_mini) / "train2017"
        data = load_coco_json(root / "images", root / "annotations" / "instances.json",
                              keep_unlabeled=True)
        return data, ["--dataset", "coco-json", "--images", str(root / "images"),
                      "--annotations", str(root / "annotations" / "instances.json")]
    root = pathlib.Path(args.voc) / "VOC2007"
    return load_voc_devkit(root, "trainval"), ["--dataset", "voc-devkit", "--root", str(root)]


def protocol_splits(name, data):
    """{protocol: [(train rows, test rows), ...]}."""
    rows = np.arange(len(data))
    splits = {"cv": list(KFold(FOLDS, shuffle=True, random_state=0).split(rows))}
    if name == "voc":
        index = {image_id: i for i, image_id in enumerate(data.image_ids)}
        root = pathlib.Path(data.paths[0]).parents[1] / "ImageSets" / "Main"
        halves = [[index[line.split()[0]] for line in open(root / f"{part}.txt") if line.strip()]
                  for part in ("train", "val")]
        splits["split"] = [tuple(np.asarray(h) for h in halves)]
    return splits


def train_head(head, overrides, data, flags, cache, train_rows, test_rows, args, finetune,
               work_dir):
    """Test scores `{"plain": ..., "flip": ...}` of one head trained on `train_rows`."""
    cli = cli_arguments(flags, head, overrides, args)
    cli.frozen_epochs = resolve_frozen_epochs(cli.frozen_epochs, len(train_rows))
    config = training_config(cli)
    keras.utils.clear_session(free_memory=True)
    keras.utils.set_random_seed(config.seed)
    train = data.subset(train_rows)
    model = build_model(cli, train)
    if not config.train_backbone_batchnorm:
        freeze_backbone_batchnorm(model)
    fit_frozen_phase(model, cache, config, rows=train_rows)
    if not finetune:
        if config.calibrate:
            calibrate_on_cache(model, cache, rows=train_rows)
        return {"plain": predict_cached(model, cache, test_rows),
                "flip": predict_cached(model, cache, test_rows, views=(0, 1))}
    epochs = config.epochs or args.finetune_epochs
    config.epochs = epochs
    compile_for_training(model, config, steps_per_epoch(len(train), config.batch_size))
    run = RunDirectory(work_dir)
    fit(model, lambda first, stop: train.to_tf_dataset(
            args.image_size, config.batch_size, training=True, seed=config.seed,
            epochs=(first, stop)), None, run, config, verbose=0,
        steps_per_epoch=steps_per_epoch(len(train), config.batch_size))
    if config.calibrate:
        calibrate_on_batches(model, train.to_tf_dataset(args.image_size, 32,
                                                         with_ignore_mask=True))
    test = data.subset(test_rows)
    import tensorflow as tf

    plain, flipped = [], []
    # One decode of the test images serves both views.
    for x, _ in test.to_tf_dataset(args.image_size, 32, training=False):
        plain.append(keras.ops.convert_to_numpy(model.predict_on_batch(x)))
        flipped.append(keras.ops.convert_to_numpy(
            model.predict_on_batch(tf.image.flip_left_right(x))))
    plain, flipped = np.concatenate(plain), np.concatenate(flipped)
    return {"plain": plain, "flip": (plain + flipped) / 2}


def jobs(args, name, splits):
    # Head by head, so that an interrupted benchmark has whole rows.
    for spec in args.heads:
        for protocol, folds in splits.items():
            for fold in range(len(folds)):
                yield protocol, fold, spec, False
    for spec in args.finetune:
        for protocol, folds in splits.items():
            chosen = [0] if protocol == "split" else (
                FINETUNE_FOLDS if name == "coco" else [])
            for fold in chosen:
                yield protocol, fold, spec, True


def job_key(dataset, protocol, fold, spec, finetune):
    label = spec + ("+ft" if finetune else "")
    return f"{dataset}.{protocol}.{label}.fold{fold}".replace("/", "_")


def run_dataset(name, args, folder, done):
    data, flags = load_data(name, args)
    splits = protocol_splits(name, data)
    pending = [j for j in jobs(args, name, splits) if job_key(name, *j) not in done]
    if not pending:
        return data
    # One cache of every image, built by the CLI's default MMDSR model's backbone.
    cli = cli_arguments(flags, "mmdsr", {}, args)
    cli.frozen_epochs = resolve_frozen_epochs(cli.frozen_epochs, len(data))
    config = training_config(cli)
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)  # the heads' backbones start the same way
    cache = StageFeatureCache.compute(build_model(cli, data), data, args.image_size,
                                      pathlib.Path(args.cache_dir) / f"{name}_{args.backbone}_{args.weights}"
                                      f"_{args.image_size}_{config.cache_views}v",
                                      views=config.cache_views, seed=config.seed, verbose=1)
    cache.load_into_memory()
    print(f"{name}: {len(data)} images, cache ready in {time.perf_counter() - started:.0f} s",
          flush=True)
    for protocol, fold, spec, finetune in pending:
        key = job_key(name, protocol, fold, spec, finetune)
        train_rows, test_rows = splits[protocol][fold]
        head, overrides = parse_head(spec)
        started = time.perf_counter()
        if head == "probe":
            plain, c = probe_scores(cache, train_rows, test_rows)
            scores, extra = {"plain": plain}, {"C": c}
        else:
            scores = train_head(head, overrides, data, flags, cache, train_rows, test_rows,
                                args, finetune, folder.subdir("work", key))
            shutil.rmtree(folder.path / "work" / key, ignore_errors=True)
            extra = {}
        seconds = time.perf_counter() - started
        for view, values in scores.items():
            np.save(folder.file("scores", f"{key}.{view}.npy"), values.astype(np.float32))
        fold_metrics, _ = metrics(scores["plain"], cache.labels[test_rows],
                                  cache.ignore_mask[test_rows])
        record = {"key": key, "dataset": name, "protocol": protocol, "fold": fold,
                  "head": spec + ("+ft" if finetune else ""), "seconds": seconds,
                  "metrics": fold_metrics, **extra}
        with open(folder.file("runs.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"{key}: mAP {fold_metrics['mAP']:.2f} CF1 {fold_metrics['CF1']:.2f} "
              f"OF1 {fold_metrics['OF1']:.2f} ({seconds:.0f} s)", flush=True)
    return data


def read_runs(folder):
    path = folder.path / "runs.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pooled(folder, runs, name, protocol, head, splits, view="plain"):
    """(OOF scores, rows) of a head, pooled over the folds it finished."""
    chosen = [r for r in runs if r["dataset"] == name and r["protocol"] == protocol
              and r["head"] == head]
    if not chosen:
        return None, None
    parts, rows = [], []
    for r in sorted(chosen, key=lambda r: r["fold"]):
        path = folder.file("scores", f"{r['key']}.{view}.npy")
        if not path.is_file():
            path = folder.file("scores", f"{r['key']}.plain.npy")
        parts.append(np.load(path))
        rows.append(splits[protocol][r["fold"]][1])
    return np.concatenate(parts), np.concatenate(rows)


def summarize(folder, runs, datasets, args):
    """Markdown tables (one per dataset and protocol) and the two figures."""
    sections, curves = [], {}
    for name, data in datasets.items():
        splits = protocol_splits(name, data)
        labels, ignore = np.asarray(data.labels), np.asarray(data.ignore_mask)
        for protocol in splits:
            heads = list(dict.fromkeys(r["head"] for r in runs if r["dataset"] == name
                                       and r["protocol"] == protocol))
            if not heads:
                continue
            reference = pooled(folder, runs, name, protocol, args.reference, splits)
            title = {"cv": f"{FOLDS}-fold CV, pooled out-of-fold", "split": "train -> val"}
            lines = [f"### {name}, {title[protocol]} ({len(data)} images)", "",
                     "| head | folds | mAP | mAP flip-TTA | CF1 | OF1 | "
                     + ("VOC-20 mAP | " if name == "coco" else "")
                     + f"per-fold mAP | Δ vs {args.reference} per fold | Δ 95% CI (bootstrap) "
                     "| s/fold |",
                     "|---" * (10 if name == "coco" else 9) + "|"]
            for head in heads:
                scores, rows = pooled(folder, runs, name, protocol, head, splits)
                flip, _ = pooled(folder, runs, name, protocol, head, splits, "flip")
                chosen = sorted((r for r in runs if r["dataset"] == name
                                 and r["protocol"] == protocol and r["head"] == head),
                                key=lambda r: r["fold"])
                overall, ap = metrics(scores, labels[rows], ignore[rows])
                flip_map = metrics(flip, labels[rows], ignore[rows])[0]["mAP"]
                per_fold = [r["metrics"]["mAP"] for r in chosen]
                cells = [head, str(len(chosen)), f"{overall['mAP']:.2f}", f"{flip_map:.2f}",
                         f"{overall['CF1']:.2f}", f"{overall['OF1']:.2f}"]
                if name == "coco":
                    columns = voc_columns(data.class_names)
                    cells.append(f"{metrics(scores, labels[rows], ignore[rows], columns)[0]['mAP']:.2f}")
                spread = f" ± {np.std(per_fold, ddof=1):.2f}" if len(per_fold) > 1 else ""
                cells.append(f"{np.mean(per_fold):.2f}{spread}")
                mmdsr_runs = {r["fold"]: r["metrics"]["mAP"] for r in runs if r["dataset"] == name
                              and r["protocol"] == protocol and r["head"] == args.reference}
                diffs = [mmdsr_runs[r["fold"]] - r["metrics"]["mAP"] for r in chosen
                         if r["fold"] in mmdsr_runs]
                if head != args.reference and diffs and reference[0] is not None:
                    cells.append(" ".join(f"{d:+.1f}" for d in diffs))
                    common = np.intersect1d(rows, reference[1])
                    a, b = _align(reference, common), _align((scores, rows), common)
                    observed, low, high = paired_bootstrap(a, b, labels[common], ignore[common],
                                                           rounds=args.bootstrap)
                    cells.append(f"{observed:+.2f} [{low:+.2f}, {high:+.2f}]")
                else:
                    cells += ["", ""]
                cells.append(f"{np.mean([r['seconds'] for r in chosen]):.0f}")
                lines.append("| " + " | ".join(cells) + " |")
                curves[(name, protocol, head)] = (scores, labels[rows], ignore[rows], ap)
            sections.append("\n".join(lines))
    plot_curves(curves, folder.file("pr_curves.png"))
    plot_class_differences(curves, datasets, folder.file("per_class_ap_difference.png"))
    return "\n\n".join(sections)


def _align(pooled_scores, rows):
    scores, own_rows = pooled_scores
    position = {int(r): i for i, r in enumerate(own_rows)}
    return scores[[position[int(r)] for r in rows]]


def plot_curves(curves, path):
    """Pooled OOF precision-recall curves (micro-averaged over classes), one panel per table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    panels = list(dict.fromkeys((n, p) for n, p, _ in curves))
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, (name, protocol) in zip(axes[0], panels):
        for (n, p, head), (scores, labels, ignore, _) in curves.items():
            if (n, p) != (name, protocol) or head.endswith("+ft"):
                continue
            keep = ignore.ravel() == 0
            precision, recall, _ = precision_recall_curve(labels.ravel()[keep] > 0,
                                                          scores.ravel()[keep])
            axis.plot(recall, precision, label=head, lw=2 if head == "mmdsr" else 1)
        axis.set(title=f"{name} {protocol}: OOF PR (micro)", xlabel="recall",
                 ylabel="precision")
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_class_differences(curves, datasets, path):
    """Per-class AP of MMDSR minus the best baseline head's, on each CV table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for name, data in datasets.items():
        table = {h: c for (n, p, h), c in curves.items() if n == name and p == "cv"}
        baselines = {h: c for h, c in table.items() if h in BASELINES + ("probe",)}
        if "mmdsr" not in table or not baselines:
            continue
        best = max(baselines, key=lambda h: np.nanmean(baselines[h][3]))
        panels.append((name, best, table["mmdsr"][3] - baselines[best][3], data.class_names))
    if not panels:
        return
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 3.2 * len(panels)), squeeze=False)
    for axis, (name, best, difference, class_names) in zip(axes[:, 0], panels):
        axis.bar(range(len(difference)), np.nan_to_num(difference),
                 color=["tab:orange" if d >= 0 else "tab:blue" for d in np.nan_to_num(difference)])
        axis.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=6)
        axis.set_title(f"{name} CV: per-class OOF AP, mmdsr - {best}")
        axis.axhline(0, color="black", lw=0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=("coco", "voc"),
                        default=["coco", "voc"])
    parser.add_argument("--coco-mini", default=os.environ.get("MMDSR_COCO_MINI",
                                                              SHARED / "coco-mini"))
    parser.add_argument("--voc", default=os.environ.get("MMDSR_VOC_MINI",
                                                        SHARED / "voc2007-mini"))
    parser.add_argument("--heads", nargs="+", default=None)
    parser.add_argument("--finetune", nargs="*", default=None,
                        help="heads that also get the fine-tuning phase (default: mmdsr gap)")
    parser.add_argument("--finetune-epochs", type=int, default=3,
                        help="fine-tuning epochs when the recipe has none")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--set", nargs="*", default=[], metavar="ARG=VALUE",
                        help="`mmdsr-keras train` arguments for every head, e.g. frozen_epochs=2")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--reference", default="mmdsr",
                        help="the head the Δ columns compare against (default: mmdsr)")
    parser.add_argument("--quick", action="store_true",
                        help="coco-mini only, probe / gap / mmdsr, no fine-tuning")
    parser.add_argument("--cache-dir", default=os.environ.get("MMDSR_BENCH_CACHE",
                                                              "bench/feature_cache"),
                        help="feature caches, reused across invocations")
    parser.add_argument("--out", default="bench/results", help="parent of the new folder")
    parser.add_argument("--resume", help="an earlier benchmark folder to finish (with "
                        "--heads: extended by those heads, paired with its finished rows)")
    parser.add_argument("--report-only", action="store_true",
                        help="with --resume: rewrite summary.md from the finished runs, "
                             "train nothing")
    args = parser.parse_args(argv)
    if args.report_only and not args.resume:
        raise SystemExit("--report-only needs --resume FOLDER.")
    if args.resume:
        report_only, reference, extra_heads = args.report_only, args.reference, args.heads or []
        for spec in extra_heads:
            parse_head(spec)
        folder = RunDirectory.resume(args.resume)
        # The reference only shapes the tables: it comes from this command line.
        args = argparse.Namespace(**{**folder.read_config(), "resume": args.resume,
                                     "report_only": report_only, "reference": reference})
        new_heads = [h for h in extra_heads if h not in args.heads]
        if new_heads and not report_only:
            args.heads = list(args.heads) + new_heads
            folder.write_config({**vars(args), "resume": None, "report_only": False})
    else:
        if args.quick:
            args.datasets = ["coco"]
            args.heads = args.heads or QUICK_HEADS
            args.finetune = [] if args.finetune is None else args.finetune
        args.heads = args.heads or DEFAULT_HEADS
        args.finetune = ["mmdsr", "gap"] if args.finetune is None else args.finetune
        for spec in args.heads + args.finetune:
            parse_head(spec)
        folder = RunDirectory.create(args.out, "quality")
        folder.write_config({k: str(v) if isinstance(v, pathlib.Path) else v
                             for k, v in vars(args).items()})
    print(f"{folder}: datasets {args.datasets}, heads {args.heads}, fine-tuned "
          f"{args.finetune}, {args.backbone} @ {args.image_size} px", flush=True)
    started = time.perf_counter()
    done = {r["key"] for r in read_runs(folder)}
    if args.report_only:
        datasets = {name: load_data(name, args)[0] for name in args.datasets}
    else:
        datasets = {name: run_dataset(name, args, folder, done) for name in args.datasets}
    tables = summarize(folder, read_runs(folder), datasets, args)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    header = (f"{args.backbone} @ {args.image_size} px, the CLI's default recipe; Keras "
              f"{keras.__version__} ({keras.backend.backend()}); {machine}; "
              f"{time.perf_counter() - started:.0f} s this invocation")
    with open(folder.file("summary.md"), "w") as f:
        f.write(header + "\n\n" + tables + "\n")
    print(header + "\n\n" + tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
