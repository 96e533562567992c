"""`mmdsr-keras`: train, evaluate, predict (and export) from the command line.

`mmdsr-keras train` with no arguments trains a small MMDSR on the generated
`shapes` dataset, offline, and prints the metric table.
"""

import argparse
import json
import os
import pathlib
import sys

def _add_data_arguments(p, inherit=False):
    # With inherit=True (evaluate), unset options come from the run's own config.
    default = (lambda value: None) if inherit else (lambda value: value)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=default("shapes"),
                   help="shapes | coco-json | voc-devkit | csv | folder | voc2007 | coco2014")
    g.add_argument("--num-images", type=int,
                   help="shapes: training images to generate (validation gets a quarter)")
    g.add_argument("--images", help="coco-json: the images folder")
    g.add_argument("--annotations", help="coco-json: the instances JSON")
    g.add_argument("--val-images", help="coco-json: a separate validation images folder")
    g.add_argument("--val-annotations", help="coco-json: a separate validation JSON")
    g.add_argument("--root", help="voc-devkit / folder: the dataset root")
    g.add_argument("--train-split",
                   help="voc-devkit: training image set(s), e.g. trainval or train+val "
                        "(default: trainval when ImageSets/Main/test.txt exists, else train)")
    g.add_argument("--val-split",
                   help="voc-devkit: validation image set (default: test when it exists, "
                        "else val)")
    g.add_argument("--csv", help="csv: the label CSV file")
    g.add_argument("--data-dir", help="voc2007 / coco2014: the tensorflow-datasets data dir")
    g.add_argument("--manual-dir", help="voc2007 / coco2014: folder holding the archives")
    g.add_argument("--val-fraction", type=float, default=default(0.2),
                   help="held-out share when the source has no validation split (default 0.2)")
    g.add_argument("--drop-unlabeled", action="store_true", default=default(False),
                   help="coco-json: drop images without any annotation (default: keep)")
    g.add_argument("--on-error", choices=("skip", "raise"), default=default("skip"),
                   help="a missing or corrupt image: skip with a warning, or fail")


def _add_model_arguments(p):
    g = p.add_argument_group("model")
    g.add_argument("--model", default="mmdsr", choices=("mmdsr", "gap", "gmp", "mlgcn"))
    g.add_argument("--backbone")
    g.add_argument("--weights", help="imagenet | none | PATH to a local weights file")
    g.add_argument("--image-size", type=int)
    g.add_argument("--freeze-backbone", action="store_true")
    g.add_argument("--units", type=int, help="working width d")
    g.add_argument("--num-perspectives", type=int, default=8)
    g.add_argument("--sparsity-threshold", type=float, default=0.0)
    g.add_argument("--prior-weight", type=float, default=0.5)
    g.add_argument("--global-weight", type=float, default=0.5)
    g.add_argument("--num-heads", type=int, default=4)
    g.add_argument("--reduction", type=int, default=4)
    g.add_argument("--graph", default="dynamic", choices=("dynamic", "static", "none"))
    g.add_argument("--no-cross-layer", action="store_true")
    g.add_argument("--no-dual-branch", action="store_true")


def _add_training_arguments(p):
    g = p.add_argument_group(
        "training", "Unset values come from --recipe (printed at the start and saved in "
        "config.json).")
    g.add_argument("--recipe", choices=("transfer", "ml-gcn"),
                   help="transfer (default with pretrained weights): frozen-backbone phase on "
                        "cached features, then AdamW fine-tuning with BatchNorm frozen; ml-gcn "
                        "(default from scratch): SGD lr 0.1, 20 epochs, ML-GCN's protocol")
    g.add_argument("--frozen-epochs",
                   help="phase 1: epochs of the head alone on the frozen backbone's cached "
                        "features (0: none; auto: ~12,000 image views, 8 to 40 epochs)")
    g.add_argument("--epochs", type=int,
                   help="phase 2: epochs of fine-tuning every weight (0: none)")
    g.add_argument("--frozen-lr", type=float, help="phase 1 head learning rate")
    g.add_argument("--frozen-optimizer", choices=("adamw", "sgd"),
                   help="phase 1 optimizer (sgd: momentum 0.9, coupled weight decay)")
    g.add_argument("--frozen-weight-decay", type=float, help="phase 1 weight decay")
    g.add_argument("--cache-views", type=int,
                   help="phase 1: cached views per image (plain, mirrored, then random crops)")
    g.add_argument("--feature-cache", metavar="DIR",
                   help="phase 1: keep the feature cache in DIR (reused by later runs on the "
                        "same data and backbone) instead of the run folder")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--optimizer", choices=("sgd", "adamw"), help="phase 2 optimizer")
    g.add_argument("--lr", type=float, help="phase 2 head learning rate")
    g.add_argument("--backbone-lr-multiplier", type=float,
                   help="phase 2 backbone lr = head lr x this (default 0.1; 1.0 from scratch)")
    g.add_argument("--weight-decay", type=float, help="phase 2 weight decay")
    g.add_argument("--train-backbone-batchnorm", action="store_const", const=True,
                   help="let the backbone's BatchNorm statistics train (large datasets); "
                        "default: frozen with the transfer recipe")
    g.add_argument("--ema", action="store_true", help="keep and end with an EMA of the weights")
    g.add_argument("--deep-supervision", type=float, default=0.0, metavar="W",
                   help="MMDSR, phase 1: add W x the losses of s_m and s_r (0: off)")
    g.add_argument("--clip-norm", type=float, default=10.0)
    g.add_argument("--schedule", choices=("cosine", "step", "constant"))
    g.add_argument("--step-epochs", type=int, nargs="*", default=[])
    g.add_argument("--warmup-epochs", type=float, help="phase 2 linear learning-rate warm-up")
    g.add_argument("--loss", choices=("bce", "asl", "focal"))
    g.add_argument("--mixed-precision", choices=("float16", "bfloat16"))
    g.add_argument("--xla", choices=("auto", "on", "off"), default="auto")
    g.add_argument("--distribution", choices=("none", "mirrored", "data-parallel"), default="none")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--runs-dir", default="runs")
    g.add_argument("--name", help="run folder name prefix (default: the dataset)")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="mmdsr-keras", description="MMDSR multi-label image classification (Keras 3)."
    )
    sub = parser.add_subparsers(dest="command")
    train = sub.add_parser("train", help="train a model (default: MMDSR on shapes)")
    _add_data_arguments(train)
    _add_model_arguments(train)
    _add_training_arguments(train)
    evaluate = sub.add_parser("evaluate", help="evaluate a trained model on a dataset")
    evaluate.add_argument("model_path", help="a run folder or a .keras file")
    _add_data_arguments(evaluate, inherit=True)
    evaluate.add_argument("--split", default="val", help="which split of --dataset (default val)")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--out", help="report folder (default: a new folder in the run)")
    predict = sub.add_parser("predict", help="label images and draw attention maps and graphs")
    predict.add_argument("model_path", help="a run folder or a .keras file")
    predict.add_argument("images", nargs="+", help="image files")
    predict.add_argument("--top-k", type=int, default=5)
    predict.add_argument("--out", help="output folder (default: a new folder in the run)")
    export = sub.add_parser("export", help="export a SavedModel for TF Serving")
    export.add_argument("model_path", help="a run folder or a .keras file")
    export.add_argument("--out", required=True, help="the TF Serving model base folder")
    export.add_argument("--top-k", type=int, default=5)
    tune = sub.add_parser("tune", help="search MMDSR hyperparameters with KerasTuner (val mAP)")
    _add_data_arguments(tune)
    from mmdsr_keras.tuning.tune_arguments import add_tune_arguments

    add_tune_arguments(tune)
    return parser


# Library messages name Python arguments; the CLI user knows the flags.
FLAG_NAMES = {"(learning_rate)": "(--lr)", "(frozen_learning_rate)": "(--frozen-lr)"}
TRACEBACK_VARIABLE = "MMDSR_KERAS_TRACEBACK"


def explicit_arguments(parser, argv):
    """The destinations of the flags `argv` actually sets (defaults excluded)."""
    sentinel = object()
    shadow = argparse.Namespace()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command, *rest = argv
    sub = subparsers.choices[command]
    for action in sub._actions:
        if action.dest != "help":
            setattr(shadow, action.dest, sentinel)
    sub.parse_known_args(rest, namespace=shadow)
    return sorted(k for k, v in vars(shadow).items() if v is not sentinel)


def main(argv=None):
    """The `mmdsr-keras` entry point; returns the exit status.

    A bad input, an unreadable image or a diverged run ends with one line on
    stderr naming what went wrong (exit 1); set `MMDSR_KERAS_TRACEBACK=1` for
    the full traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        argv = ["train"] + argv
        args = parser.parse_args(argv)
    args.explicit_arguments = explicit_arguments(parser, argv)
    # Imported here so `mmdsr-keras --help` is instant.
    from mmdsr_keras import commands
    from mmdsr_keras.training.non_finite_loss_guard import TrainingDivergedError

    try:
        return getattr(commands, f"run_{args.command}")(args)
    except (ValueError, OSError, TrainingDivergedError) as error:
        if os.environ.get(TRACEBACK_VARIABLE):
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        for name, flag in FLAG_NAMES.items():
            message = message.replace(name, flag)
        print(f"mmdsr-keras {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
