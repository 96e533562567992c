"""Training: the field's recipe for multi-label classifiers, in one or two phases.

`TrainingConfig` holds a run's hyperparameters and `recipe_defaults(name)`
those of a named recipe (`RECIPES`); `compile_for_training` + `fit` run the
fine-tuning phase (resumable from a `RunDirectory`); `StageFeatureCache` +
`fit_frozen_phase` the frozen-backbone phase on cached backbone features;
`fit_score_calibration` a per-class Platt calibration of the trained logits.
`TensorFlowWorkerGroup` and `JaxProcessGroup` spread `fit` over processes.
The losses, optimizers and schedule are registered Keras serializables.
"""

from mmdsr_keras.training.asymmetric_loss import AsymmetricLoss
from mmdsr_keras.training.deep_supervision_loss import DeepSupervisionLoss
from mmdsr_keras.training.device_distribution import DISTRIBUTIONS, distribution_scope
from mmdsr_keras.training.feature_standardization import fit_feature_standardization
from mmdsr_keras.training.frozen_backbone_phase import (
    FROZEN_OPTIMIZERS,
    fit_frozen_phase,
    freeze_backbone_batchnorm,
    predict_cached,
)
from mmdsr_keras.training.jax_process_group import JaxProcessGroup
from mmdsr_keras.training.multi_label_trainer import (
    LOSSES,
    OPTIMIZERS,
    TrainingConfig,
    compile_for_training,
    fit,
    make_loss,
    set_precision,
    steps_per_epoch,
)
from mmdsr_keras.training.non_finite_loss_guard import NonFiniteLossGuard, TrainingDivergedError
from mmdsr_keras.training.parameter_group_adamw import ParameterGroupAdamW
from mmdsr_keras.training.parameter_group_sgd import ParameterGroupSGD, backbone_lr_multipliers
from mmdsr_keras.training.run_directory import RunDirectory
from mmdsr_keras.training.score_calibration import (
    calibrate_on_batches,
    calibrate_on_cache,
    fit_score_calibration,
    platt_scaling,
)
from mmdsr_keras.training.stage_feature_cache import StageFeatureCache
from mmdsr_keras.training.tensorflow_multi_worker import TensorFlowWorkerGroup
from mmdsr_keras.training.training_recipe import (
    RECIPES,
    frozen_phase_epochs,
    recipe_defaults,
    recipe_head_arguments,
    recipe_linear_l2,
    resolve_frozen_epochs,
)
from mmdsr_keras.training.warmup_decay_schedule import WarmupDecaySchedule

__all__ = [
    "DISTRIBUTIONS",
    "FROZEN_OPTIMIZERS",
    "LOSSES",
    "OPTIMIZERS",
    "RECIPES",
    "AsymmetricLoss",
    "DeepSupervisionLoss",
    "NonFiniteLossGuard",
    "ParameterGroupAdamW",
    "ParameterGroupSGD",
    "RunDirectory",
    "StageFeatureCache",
    "TrainingConfig",
    "TrainingDivergedError",
    "WarmupDecaySchedule",
    "backbone_lr_multipliers",
    "calibrate_on_batches",
    "calibrate_on_cache",
    "compile_for_training",
    "distribution_scope",
    "JaxProcessGroup",
    "TensorFlowWorkerGroup",
    "fit",
    "fit_feature_standardization",
    "fit_frozen_phase",
    "fit_score_calibration",
    "freeze_backbone_batchnorm",
    "frozen_phase_epochs",
    "make_loss",
    "platt_scaling",
    "predict_cached",
    "recipe_defaults",
    "recipe_head_arguments",
    "recipe_linear_l2",
    "resolve_frozen_epochs",
    "set_precision",
    "steps_per_epoch",
]
