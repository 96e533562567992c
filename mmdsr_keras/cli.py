"""`mmdsr-keras`: train, evaluate, predict (and export, tune) from the command line.

`mmdsr-keras train` with no arguments trains a small MMDSR on the generated
`shapes` dataset, offline, and prints the metric table; so does a bare
`mmdsr-keras`.
"""

import argparse
import importlib
import os
import sys

from mmdsr_keras.commands.dataset_arguments import add_data_arguments
from mmdsr_keras.commands.train_arguments import add_model_arguments, add_training_arguments
from mmdsr_keras.commands.tune_arguments import add_tune_arguments
from mmdsr_keras.training.non_finite_loss_guard import TrainingDivergedError

# Library messages name Python arguments; the CLI user knows the flags.
FLAG_NAMES = {
    "(learning_rate)": "(--lr)",
    "(frozen_learning_rate)": "(--frozen-lr)",
    "`directory`": "--directory",
    "`project_name`": "--project-name",
    "`overwrite=True`": "--overwrite",
}
TRACEBACK_VARIABLE = "MMDSR_KERAS_TRACEBACK"
DEFAULT_COMMAND = "train"


def _command(module, function):
    """The `args -> exit status` of a sub-command, imported when it runs.

    The command modules import the data pipeline (and so TensorFlow): the
    parser must not, so that `mmdsr-keras --help` is fast on every backend.
    """
    def run(args):
        return getattr(importlib.import_module(f"mmdsr_keras.commands.{module}"), function)(args)

    run.__name__ = function
    return run


def build_parser():
    """The `mmdsr-keras` parser: one sub-command each, its `func` the command to run.

    Example:
    >>> args = build_parser().parse_args(["predict", "runs/x", "a.jpg", "--top-k", "3"])
    >>> args.command, args.func.__name__, args.top_k
    ('predict', 'run_predict', 3)
    """
    parser = argparse.ArgumentParser(
        prog="mmdsr-keras", description="MMDSR multi-label image classification (Keras 3)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model (default: MMDSR on shapes)")
    add_data_arguments(train)
    add_model_arguments(train)
    add_training_arguments(train)
    train.set_defaults(func=_command("train_command", "run_train"))

    evaluate = sub.add_parser("evaluate", help="evaluate a trained model on a dataset")
    evaluate.add_argument("model_path", help="a run folder or a .keras file")
    add_data_arguments(evaluate, inherit=True)
    evaluate.add_argument("--split", default="val", help="which split of --dataset (default val)")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--out", help="report folder (default: a new folder in the run)")
    evaluate.set_defaults(func=_command("evaluate_command", "run_evaluate"))

    predict = sub.add_parser("predict", help="label images and draw attention maps and graphs")
    predict.add_argument("model_path", help="a run folder or a .keras file")
    predict.add_argument("images", nargs="+", help="image files")
    predict.add_argument("--top-k", type=int, default=5)
    predict.add_argument("--out", help="output folder (default: a new folder in the run)")
    predict.set_defaults(func=_command("predict_command", "run_predict"))

    export = sub.add_parser("export", help="export a SavedModel for TF Serving")
    export.add_argument("model_path", help="a run folder or a .keras file")
    export.add_argument("--out", required=True, help="the TF Serving model base folder")
    export.add_argument("--top-k", type=int, default=5)
    export.set_defaults(func=_command("export_command", "run_export"))

    tune = sub.add_parser("tune", help="search MMDSR hyperparameters with KerasTuner (val mAP)")
    add_data_arguments(tune)
    add_tune_arguments(tune)
    tune.set_defaults(func=_command("tune_command", "run_tune"))
    return parser


def explicit_arguments(parser, argv):
    """The destinations of the flags `argv` actually sets (defaults excluded).

    Example:
    >>> explicit_arguments(build_parser(), ["train", "--epochs", "3", "--lr", "0.1"])
    ['epochs', 'lr']
    """
    sentinel = object()
    shadow = argparse.Namespace()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command, *rest = argv
    sub = subparsers.choices[command]
    # Every flag starts as the sentinel, so argparse fills in no default for it.
    flags = [action.dest for action in sub._actions if action.dest != "help"]
    for dest in flags:
        setattr(shadow, dest, sentinel)
    sub.parse_known_args(rest, namespace=shadow)
    # `set_defaults` entries (`func`) are no flags.
    return sorted(dest for dest in set(flags) if getattr(shadow, dest) is not sentinel)


def flag_message(message):
    """`message` with the library's argument names replaced by the CLI's flags.

    Example:
    >>> flag_message("Try: lower the learning rate (learning_rate).")
    'Try: lower the learning rate (--lr).'
    """
    for name, flag in FLAG_NAMES.items():
        message = message.replace(name, flag)
    return message


def main(argv=None):
    """The `mmdsr-keras` entry point; returns the exit status.

    A bad input, an unreadable image or a diverged run ends with one line on
    stderr naming what went wrong (exit 1); set `MMDSR_KERAS_TRACEBACK=1` for
    the full traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv) or [DEFAULT_COMMAND]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.explicit_arguments = explicit_arguments(parser, argv)
    # Not an argument: a run's saved config holds only the flags' values.
    run = vars(args).pop("func")
    try:
        return run(args)
    except (ValueError, OSError, TrainingDivergedError) as error:
        if os.environ.get(TRACEBACK_VARIABLE):
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        print(f"mmdsr-keras {args.command}: error: {flag_message(message)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
