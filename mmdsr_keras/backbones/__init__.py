"""Backbone registry: `available_backbones()`, `get_backbone_spec(name)`."""

from mmdsr_keras.backbones import efficientnet_lite  # noqa: F401  (registers efficientnet_lite0..4)
from mmdsr_keras.backbones import keras_applications  # noqa: F401  (registers)
from mmdsr_keras.backbones.backbone_spec import (
    BackboneSpec,
    available_backbones,
    get_backbone_spec,
    register_backbone,
)

__all__ = [
    "efficientnet_lite",
    "keras_applications",
    "BackboneSpec",
    "available_backbones",
    "get_backbone_spec",
    "register_backbone",
]
