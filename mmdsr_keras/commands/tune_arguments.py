"""The `mmdsr-keras tune` model, training and search arguments, and `--fix` values."""

from mmdsr_keras.commands.train_arguments import SCHEDULES, XLA_MODES
from mmdsr_keras.training.multi_label_trainer import LOSSES
from mmdsr_keras.training.training_recipe import RECIPES
from mmdsr_keras.tuning.search import TUNERS


def parse_fixed(items):
    """`--fix` values as `MMDSRHyperModel(fixed=...)`: `NAME=VALUE` strings -> dict.

    Values are read as bool (`true`/`false`), int, float, then str.

    Example:
    >>> parse_fixed(["graph=dynamic", "num_heads=2", "trainable_global_weight=true"])
    {'graph': 'dynamic', 'num_heads': 2, 'trainable_global_weight': True}
    """
    fixed = {}
    for item in items or ():
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--fix expects NAME=VALUE, got {item!r}.")
        text = text.strip()
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        else:
            for cast in (int, float, str):
                try:
                    value = cast(text)
                    break
                except ValueError:
                    continue
        fixed[name.strip()] = value
    return fixed


def add_tune_arguments(parser):
    """Adds the model, training and search arguments of `tune` to `parser`.

    The data arguments (`--dataset`, `--num-images`, `--images`, ...) are the
    CLI's common ones (`dataset_arguments.add_data_arguments`).
    """
    m = parser.add_argument_group("model (search space)")
    m.add_argument("--backbone")
    m.add_argument("--weights", help="imagenet | none | PATH to a local weights file")
    m.add_argument("--image-size", type=int)
    m.add_argument("--freeze-backbone", action="store_true")
    m.add_argument("--units", type=int, nargs="+", help="choices of the working width d")
    m.add_argument("--node-units", type=int, nargs="+", help="choices of the node width d_v")
    m.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                   help="pin a hyperparameter, e.g. --fix graph=dynamic --fix num_heads=2 "
                        "(repeatable)")
    t = parser.add_argument_group("training (per trial)")
    t.add_argument("--recipe", choices=RECIPES,
                   help="as for train: transfer (pretrained default) runs every trial's "
                        "frozen-backbone phase on one shared feature cache, then --epochs of "
                        "fine-tuning; ml-gcn (default from scratch) fine-tunes only")
    t.add_argument("--epochs", type=int, nargs="+",
                   help="choices of the epoch count (random/bayesian; Hyperband sets its own)")
    t.add_argument("--batch-size", type=int, nargs="+", help="choices of the batch size")
    t.add_argument("--loss", choices=LOSSES)
    t.add_argument("--schedule", default="cosine", choices=SCHEDULES)
    t.add_argument("--warmup-epochs", type=float)
    t.add_argument("--clip-norm", type=float, default=10.0)
    t.add_argument("--xla", choices=tuple(XLA_MODES), default="auto")
    t.add_argument("--seed", type=int, default=0,
                   help="seed of the data split, the initialisation and the oracle")
    s = parser.add_argument_group("search")
    s.add_argument("--tuner", default="random", choices=TUNERS)
    s.add_argument("--max-trials", type=int, default=10, help="random / bayesian")
    s.add_argument("--num-initial-points", type=int, help="bayesian: random trials first")
    s.add_argument("--max-epochs", type=int, default=4, help="hyperband")
    s.add_argument("--factor", type=int, default=3, help="hyperband")
    s.add_argument("--hyperband-iterations", type=int, default=1, help="hyperband")
    s.add_argument("--max-consecutive-failed-trials", type=int, default=3)
    s.add_argument("--directory", default="tuning_runs", help="folder of the tuning projects")
    s.add_argument("--project-name", help="default: <dataset>_<tuner>")
    s.add_argument("--overwrite", action="store_true",
                   help="delete the project and start over (default: resume it if it exists)")
    s.add_argument("--out", help="folder of the table, CSV and plot (default: the project)")
    s.add_argument("--tensorboard", action="store_true",
                   help="log every trial to <project>/tensorboard (HParams on TensorFlow)")
    s.add_argument("--distribution", choices=("none", "mirrored"), default="none",
                   help="mirrored: tf.distribute.MirroredStrategy over all GPUs (TensorFlow)")
    s.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    return parser
