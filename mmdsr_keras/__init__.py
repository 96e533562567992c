"""mmdsr-keras: MMDSR multi-label image classification for Keras 3."""

from mmdsr_keras import layers
from mmdsr_keras.backbones import available_backbones, get_backbone_spec, register_backbone
from mmdsr_keras.label_prior import (
    cooccurrence_statistics,
    ml_gcn_label_prior,
    symmetric_normalize,
)
from mmdsr_keras.models import build_explainer, class_names_of
from mmdsr_keras.tasks import (
    BaselineImageClassifier,
    MMDSRImageClassifier,
    build_baseline,
    build_mmdsr,
)

# What a saved model can hold besides layers (the optimizer, its schedule, the
# loss) is registered on import, so `keras.saving.load_model` finds it.
from mmdsr_keras.training import (  # noqa: E402, F401  (imported for registration)
    asymmetric_loss,
    deep_supervision_loss,
    parameter_group_adamw,
    parameter_group_sgd,
    warmup_decay_schedule,
)

__version__ = "0.1.0"

__all__ = [
    "layers",
    "available_backbones",
    "get_backbone_spec",
    "register_backbone",
    "cooccurrence_statistics",
    "ml_gcn_label_prior",
    "symmetric_normalize",
    "build_explainer",
    "class_names_of",
    "BaselineImageClassifier",
    "MMDSRImageClassifier",
    "build_baseline",
    "build_mmdsr",
]
