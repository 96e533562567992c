"""The `mmdsr-keras train` model and training arguments, and how their values are read.

The `tune` command reads `--weights` and `--xla` the same way
(`backbone_weights`, `jit_compile`, `default_recipe`).
"""

import argparse

from mmdsr_keras.training.device_distribution import DISTRIBUTIONS
from mmdsr_keras.training.frozen_backbone_phase import FROZEN_OPTIMIZERS
from mmdsr_keras.training.multi_label_trainer import LOSSES, OPTIMIZERS
from mmdsr_keras.training.training_recipe import RECIPES

MODEL_TYPES = ("mmdsr", "gap", "gmp", "mlgcn")
SCHEDULES = ("cosine", "step", "constant")
# --xla -> TrainingConfig.jit_compile.
XLA_MODES = {"auto": "auto", "on": True, "off": False}


def backbone_weights(value):
    """The backbone's `weights` argument for a `--weights` value (`none` -> None).

    Example:
    >>> backbone_weights("none"), backbone_weights("imagenet")
    (None, 'imagenet')
    """
    return None if value in (None, "none", "None") else value


def default_recipe(weights):
    """The recipe of a run without `--recipe`: `transfer` when pretrained, else `ml-gcn`.

    Example:
    >>> default_recipe("imagenet"), default_recipe("none")
    ('transfer', 'ml-gcn')
    """
    return "ml-gcn" if backbone_weights(weights) is None else "transfer"


def jit_compile(xla):
    """`TrainingConfig.jit_compile` for an `--xla` value.

    Example:
    >>> jit_compile("auto"), jit_compile("off")
    ('auto', False)
    """
    return XLA_MODES[xla]


def add_model_arguments(parser):
    """Adds the `model` argument group of `train` to `parser`."""
    g = parser.add_argument_group("model")
    g.add_argument("--model", default="mmdsr", choices=MODEL_TYPES)
    g.add_argument("--backbone")
    g.add_argument("--weights", help="imagenet | none | PATH to a local weights file")
    g.add_argument("--image-size", type=int)
    g.add_argument("--freeze-backbone", action="store_true")
    g.add_argument("--units", type=int, help="working width d")
    g.add_argument("--num-perspectives", type=int, default=8)
    g.add_argument("--sparsity-threshold", type=float, default=0.0)
    g.add_argument("--prior-weight", type=float, default=0.5)
    g.add_argument("--global-weight", type=float, default=0.5)
    g.add_argument("--trainable-global-weight", action="store_true",
                   help="learn alpha, starting at --global-weight")
    g.add_argument("--trainable-prior-weight", action="store_true",
                   help="learn lambda, starting at --prior-weight")
    g.add_argument("--global-linear", action=argparse.BooleanOptionalAction, default=None,
                   help="mmdsr: add a linear classifier on the last stage's pooled features "
                        "(see --global-pooling) to the graph's logits (default: the recipe's, on with "
                        "transfer and a frozen phase)")
    g.add_argument("--global-pooling", default=None, choices=("average", "max", "average_max"),
                   help="mmdsr: how the --global-linear path pools the last stage: average, "
                        "max, or both concatenated (default: the recipe's)")
    g.add_argument("--dropout", type=float, default=0.0,
                   help="dropout rate of the head's features: after pooling (gap, gmp, "
                        "mlgcn), on whole channels of the graph's input map (mmdsr)")
    g.add_argument("--linear-l2", type=float, default=None,
                   help="L2 coefficient of the classifier (gap, gmp; mlgcn's GCN kernels; "
                        "mmdsr's --global-linear path) on standardised pooled features, as a "
                        "linear probe is fitted; 0 turns both off (default: the recipe's, "
                        "transfer with a frozen phase: 0.005, else 0)")
    g.add_argument("--head-l2", type=float, default=None,
                   help="mmdsr: L2 coefficient on the kernels of the cross-layer "
                        "attention, dual-branch and graph layers (default: the recipe's, "
                        "transfer with the global linear path: 0.005, else 0)")
    g.add_argument("--num-heads", type=int, default=4)
    g.add_argument("--reduction", type=int, default=4)
    g.add_argument("--graph", default="dynamic", choices=("dynamic", "static", "none"))
    g.add_argument("--no-cross-layer", action="store_true")
    g.add_argument("--no-dual-branch", action="store_true")


def add_training_arguments(parser):
    """Adds the `training` argument group of `train` to `parser`."""
    g = parser.add_argument_group(
        "training", "Unset values come from --recipe (printed at the start and saved in "
        "config.json).")
    g.add_argument("--recipe", choices=RECIPES,
                   help="transfer (default with pretrained weights): frozen-backbone phase on "
                        "cached features, then AdamW fine-tuning with BatchNorm frozen; ml-gcn "
                        "(default from scratch): SGD lr 0.1, 20 epochs, ML-GCN's protocol")
    g.add_argument("--frozen-epochs",
                   help="phase 1: epochs of the head alone on the frozen backbone's cached "
                        "features (0: none; auto: ~12,000 image views, 8 to 40 epochs)")
    g.add_argument("--epochs", type=int,
                   help="phase 2: epochs of fine-tuning every weight (0: none)")
    g.add_argument("--frozen-lr", type=float, help="phase 1 head learning rate")
    g.add_argument("--frozen-optimizer", choices=FROZEN_OPTIMIZERS,
                   help="phase 1 optimizer (sgd: momentum 0.9, coupled weight decay)")
    g.add_argument("--frozen-weight-decay", type=float, help="phase 1 weight decay")
    g.add_argument("--cache-views", type=int,
                   help="phase 1: cached views per image (plain, mirrored, then random crops)")
    g.add_argument("--feature-cache", metavar="DIR",
                   help="phase 1: keep the feature cache in DIR (reused by later runs on the "
                        "same data and backbone) instead of the run folder")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--optimizer", choices=OPTIMIZERS, help="phase 2 optimizer")
    g.add_argument("--lr", type=float, help="phase 2 head learning rate")
    g.add_argument("--backbone-lr-multiplier", type=float,
                   help="phase 2 backbone lr = head lr x this (default 0.1; 1.0 from scratch)")
    g.add_argument("--weight-decay", type=float, help="phase 2 weight decay")
    g.add_argument("--train-backbone-batchnorm", action="store_const", const=True,
                   help="let the backbone's BatchNorm statistics train (large datasets); "
                        "default: frozen with the transfer recipe")
    g.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=None,
                   help="after training, fit a per-class Platt scale and bias of the logits on "
                        "the training images, kept in the model's output layer (ranking and "
                        "AP unchanged; thresholded F1 and scores across classes move); "
                        "default: the recipe's, on with transfer")
    g.add_argument("--ema", action="store_true", help="keep and end with an EMA of the weights")
    g.add_argument("--deep-supervision", type=float, default=0.0, metavar="W",
                   help="MMDSR, phase 1: add W x the losses of s_m and s_r (0: off)")
    g.add_argument("--linear-first", action="store_true",
                   help="MMDSR with --global-linear, phase 1: fit the linear path alone "
                        "first, then the rest of the head on top of it")
    g.add_argument("--clip-norm", type=float, default=10.0)
    g.add_argument("--schedule", choices=SCHEDULES)
    g.add_argument("--step-epochs", type=int, nargs="*", default=[])
    g.add_argument("--warmup-epochs", type=float, help="phase 2 linear learning-rate warm-up")
    g.add_argument("--loss", choices=LOSSES)
    g.add_argument("--mixed-precision", choices=("float16", "bfloat16"))
    g.add_argument("--xla", choices=tuple(XLA_MODES), default="auto")
    g.add_argument("--distribution", choices=DISTRIBUTIONS, default="none",
                   help="mirrored (TensorFlow) or data-parallel (JAX) over this machine's "
                        "devices; several processes or machines: multi-worker (TensorFlow, "
                        "TF_CONFIG) or data-parallel with --num-processes > 1 (JAX); see "
                        "docs/distributed.md")
    add_multi_process_arguments(parser)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--runs-dir", default="runs")
    g.add_argument("--name", help="run folder name prefix (default: the dataset)")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")


# Flags that differ from one worker process to another: config.json leaves
# them out and `--resume` takes them from the command line.
MULTI_PROCESS_ARGUMENTS = ("coordinator_address", "num_processes", "process_id")


def add_multi_process_arguments(parser):
    """Adds the `multi-process` argument group (JAX, `--distribution data-parallel`)."""
    g = parser.add_argument_group(
        "multi-process", "JAX data parallelism over several processes (--distribution "
        "data-parallel). Unset values come from KERAS_DISTRIBUTION_JOB_ADDRESSES, "
        "KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID, or from SLURM.")
    g.add_argument("--coordinator-address", metavar="HOST:PORT",
                   help="the address process 0 listens on")
    g.add_argument("--num-processes", type=int, help="number of processes of the run")
    g.add_argument("--process-id", type=int,
                   help="this process's index (0: the chief, which writes the run folder)")
