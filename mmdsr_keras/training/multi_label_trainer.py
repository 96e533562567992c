"""The field's training recipe for multi-label classifiers, as one `fit` call."""

import dataclasses
import json
import math

import keras

from mmdsr_keras.training.asymmetric_loss import AsymmetricLoss
from mmdsr_keras.training.non_finite_loss_guard import NonFiniteLossGuard
from mmdsr_keras.training.parameter_group_adamw import ParameterGroupAdamW
from mmdsr_keras.training.parameter_group_sgd import ParameterGroupSGD, backbone_lr_multipliers
from mmdsr_keras.training.warmup_decay_schedule import WarmupDecaySchedule

LOSSES = ("bce", "asl", "focal")
OPTIMIZERS = ("sgd", "adamw")
BACKUP_DIR = "backup"


@dataclasses.dataclass
class TrainingConfig:
    """Hyperparameters of a run (defaults: ML-GCN's recipe, cosine decay).

    Args:
        epochs: number of epochs. Defaults to 20.
        batch_size: Defaults to 16.
        learning_rate: head learning rate (ML-GCN 0.1, ADD-GCN 0.05).
            Defaults to 0.1.
        backbone_lr_multiplier: backbone rate = head rate x this. Defaults to 0.1.
        momentum: SGD momentum. Defaults to 0.9.
        weight_decay: coupled L2 weight decay. Defaults to 1e-4.
        clip_global_norm: gradient global-norm clip (None: off). Defaults to 10.
        schedule: `"cosine"`, `"step"` or `"constant"`. Defaults to `"cosine"`.
        step_epochs: epochs at which `"step"` multiplies the rate by 0.1.
        warmup_epochs: linear warm-up length in epochs. Defaults to 0.
        loss: `"bce"` (BCE with logits averaged over classes), `"asl"` or
            `"focal"`. Defaults to `"bce"`.
        optimizer: `"sgd"` (ML-GCN's recipe: `ParameterGroupSGD`, coupled L2
            decay) or `"adamw"` (`ParameterGroupAdamW`: decoupled decay, the
            backbone's rate scaled by `backbone_lr_multiplier` as well).
            Defaults to `"sgd"`.
        mixed_precision: None, `"float16"` or `"bfloat16"`. Defaults to None.
        jit_compile: XLA: `"auto"`, True or False. Defaults to `"auto"`.
        seed: seed of initialisation, shuffling and augmentation. Defaults to 0.
        frozen_epochs: epochs of the frozen-backbone phase run before the
            `epochs` of fine-tuning: the head alone, on cached backbone
            features (`fit_frozen_phase`). Defaults to 0 (none).
        frozen_learning_rate: the head's rate in that phase. Defaults to 1e-3.
        frozen_optimizer: `"adamw"` or `"sgd"`. Defaults to `"adamw"`.
        frozen_weight_decay: weight decay in that phase. Defaults to 1e-4.
        cache_views: views per image in the feature cache (plain, mirrored,
            then MultiScaleCrop + flip). Defaults to 4.
        train_backbone_batchnorm: let the backbone's BatchNorms update their
            statistics while fine-tuning (for large datasets); False keeps
            them in inference mode. Defaults to False.
        ema: keep an exponential moving average of the weights (Keras'
            `use_ema`) and end with it. Defaults to False.
        deep_supervision: MMDSR only, frozen phase: weight w of the extra
            losses on s_m and s_r (`DeepSupervisionLoss`); 0 turns it off.
            Defaults to 0.
        linear_first: MMDSR with `global_linear`, frozen phase: fit the global
            linear path alone first, then train the rest of the head with it
            fixed (`fit_frozen_phase`). Defaults to False.
        calibrate: after training, fit a per-class Platt scale and bias of
            the logits on the training images (`score_calibration.py`; the
            model needs `score_calibration=True`). Defaults to False.
    """

    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 0.1
    backbone_lr_multiplier: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    clip_global_norm: float = 10.0
    schedule: str = "cosine"
    step_epochs: tuple = ()
    warmup_epochs: float = 0.0
    loss: str = "bce"
    optimizer: str = "sgd"
    mixed_precision: str = None
    jit_compile: object = "auto"
    seed: int = 0
    frozen_epochs: int = 0
    frozen_learning_rate: float = 1e-3
    frozen_optimizer: str = "adamw"
    frozen_weight_decay: float = 1e-4
    cache_views: int = 4
    train_backbone_batchnorm: bool = False
    ema: bool = False
    deep_supervision: float = 0.0
    linear_first: bool = False
    calibrate: bool = False

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss={self.loss!r}; expected one of {LOSSES}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r}; expected one of {OPTIMIZERS}.")
        if self.mixed_precision not in (None, "float16", "bfloat16"):
            raise ValueError(
                f"mixed_precision={self.mixed_precision!r}; expected None, 'float16' or 'bfloat16'."
            )
        self.step_epochs = tuple(int(e) for e in self.step_epochs)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def make_loss(name):
    """The loss called `name`: `"bce"`, `"asl"` or `"focal"`."""
    if name == "bce":
        return keras.losses.BinaryCrossentropy(from_logits=True)
    if name == "asl":
        return AsymmetricLoss(gamma_neg=4.0, gamma_pos=0.0, margin=0.05)
    if name == "focal":
        return AsymmetricLoss(gamma_neg=2.0, gamma_pos=2.0, margin=0.0, name="focal_loss")
    raise ValueError(f"loss={name!r}; expected one of {LOSSES}.")


def set_precision(config):
    """Sets the global dtype policy for the models built after this call."""
    policy = f"mixed_{config.mixed_precision}" if config.mixed_precision else "float32"
    keras.config.set_dtype_policy(policy)


def make_optimizer(model, config, steps_per_epoch):
    """The fine-tuning optimizer of `config`: AdamW or SGD parameter groups on its schedule.

    The backbone's variables (the layer named `"backbone"`) get the rate x
    `config.backbone_lr_multiplier`.

    Example:
    >>> import mmdsr_keras
    >>> model = mmdsr_keras.build_mmdsr(num_classes=2, backbone="mobilenet_0.25",
    ...                                 image_size=64, weights=None, units=8, num_heads=2)
    >>> type(make_optimizer(model, TrainingConfig(optimizer="adamw"), 5)).__name__
    'ParameterGroupAdamW'
    """
    schedule = WarmupDecaySchedule(
        config.learning_rate,
        total_steps=config.epochs * steps_per_epoch,
        warmup_steps=int(round(config.warmup_epochs * steps_per_epoch)),
        decay=config.schedule,
        boundaries=[e * steps_per_epoch for e in config.step_epochs],
    )
    multipliers = {}
    if config.backbone_lr_multiplier != 1.0 and "backbone" in {l.name for l in model.layers}:
        multipliers = backbone_lr_multipliers(model, config.backbone_lr_multiplier)
    if config.optimizer == "adamw":
        return ParameterGroupAdamW(
            schedule, weight_decay=config.weight_decay, global_clipnorm=config.clip_global_norm,
            lr_multipliers=multipliers, use_ema=config.ema,
        )
    return ParameterGroupSGD(
        schedule, momentum=config.momentum, l2_weight_decay=config.weight_decay,
        clip_global_norm=config.clip_global_norm, lr_multipliers=multipliers,
        use_ema=config.ema,
    )


def compile_for_training(model, config, steps_per_epoch):
    """Compiles `model` with the recipe's loss and `make_optimizer`'s optimizer.

    Example:
    >>> import mmdsr_keras
    >>> model = mmdsr_keras.build_mmdsr(num_classes=2, backbone="mobilenet_0.25",
    ...                                 image_size=64, weights=None, units=8, num_heads=2)
    >>> compile_for_training(model, TrainingConfig(epochs=2), steps_per_epoch=5)
    """
    model.compile(optimizer=make_optimizer(model, config, steps_per_epoch),
                  loss=make_loss(config.loss), jit_compile=config.jit_compile)


def steps_per_epoch(num_examples, batch_size):
    return max(1, math.ceil(num_examples / batch_size))


def completed_epochs(run_dir):
    """Epochs finished by an interrupted run (0 if none), from its backup."""
    metadata = run_dir.path / BACKUP_DIR / "training_metadata.json"
    if not metadata.is_file():
        return 0
    with open(metadata) as f:
        # BackupAndRestore records the number of finished epochs.
        return int(json.load(f).get("epoch", 0))


def fit(model, train_data, val_data, run_dir, config, callbacks=(), verbose=1,
        steps_per_epoch=None):
    """Trains with per-epoch checkpoints, resumable backups and logs in `run_dir`.

    Writes `checkpoints/epoch_NNN.weights.h5` each epoch, `backup/` (model,
    optimizer state and epoch: `fit` on the same `run_dir` resumes from it),
    `log.csv` and `tensorboard/`. A NaN or infinite loss raises
    `TrainingDivergedError` at once (nothing more is written). Put callbacks that add metrics to the epoch
    logs (e.g. the val mAP callback) in `callbacks`: they run first.

    For an exact resumption pass `train_data` as a function
    `(first_epoch, stop_epoch) -> dataset` giving the epochs back to back,
    each a pure function of its index (`MultiLabelDataset.to_tf_dataset(...,
    epochs=(first, stop))`), with `steps_per_epoch`: a resumed run then sees
    the same batches, augmentations and optimizer state as one that was
    never interrupted.

    Args:
        model: a compiled model.
        train_data: a dataset, or a function of `(first_epoch, stop_epoch)`.
        val_data: validation data for `model.fit` (may be None).
        run_dir: a `RunDirectory`.
        config: the `TrainingConfig`.
        callbacks: callbacks run before the trainer's own.
        verbose: Keras verbosity. Defaults to 1 (progress bars).
        steps_per_epoch: batches per epoch (required with a function).

    Returns:
        The Keras `History`.
    """
    if callable(train_data):
        if not steps_per_epoch:
            raise ValueError("fit: a train_data function needs steps_per_epoch.")
        train_data = train_data(completed_epochs(run_dir), config.epochs)
    own = [
        keras.callbacks.BackupAndRestore(str(run_dir.subdir(BACKUP_DIR)), save_freq="epoch",
                                         delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(
            str(run_dir.file("checkpoints", "epoch_{epoch:03d}.weights.h5")),
            save_weights_only=True,
        ),
        keras.callbacks.CSVLogger(str(run_dir.file("log.csv")), append=True),
        keras.callbacks.TensorBoard(str(run_dir.subdir("tensorboard"))),
    ]
    return model.fit(
        train_data,
        validation_data=val_data,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        # The guard first: a NaN loss raises before any callback saves the model.
        callbacks=[NonFiniteLossGuard("fine-tuning")] + list(callbacks) + own,
        verbose=verbose,
    )
