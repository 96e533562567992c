"""What the model needs to know about a backbone, and the registry of them."""

import dataclasses
import os
from typing import Callable

import keras

from mmdsr_keras.layers.image_preprocessing import PRESETS


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A feature extractor MMDSR can sit on.

    Args:
        name: registry key, e.g. `"resnet101"`.
        constructor: `constructor(input_shape, weights) -> keras.Model` building
            the network without its classifier. `weights` is `"imagenet"`,
            `None` or the path of a local weights file.
        preprocessing: an `ImagePreprocessing` mode mapping [0, 255] RGB to the
            input the weights expect (`"none"` when the network does it itself).
        stage_layers: names of the layers whose outputs are the stride-8, -16
            and -32 feature maps, in that order.
        default_units: MMDSR working width d on this backbone (512 for ResNet-
            class networks, 256 for mobile ones).
        min_image_size: smallest input side the network accepts.
    """

    name: str
    constructor: Callable[..., keras.Model]
    preprocessing: str
    stage_layers: tuple
    default_units: int = 512
    min_image_size: int = 32

    def __post_init__(self):
        if self.preprocessing not in PRESETS:
            raise ValueError(
                f"BackboneSpec {self.name!r}: preprocessing {self.preprocessing!r} "
                f"is not one of {sorted(PRESETS)}."
            )
        if len(self.stage_layers) != 3:
            raise ValueError(
                f"BackboneSpec {self.name!r}: stage_layers must name the stride-8, "
                f"-16 and -32 outputs (3 names), got {self.stage_layers!r}."
            )

    def build(self, image_size, weights=None):
        """Builds the network for `(height, width)` inputs.

        Raises:
            ValueError: `weights` is neither `"imagenet"`, `None` nor an
                existing file.
        """
        if weights not in (None, "imagenet"):
            weights = os.fspath(weights)
            if not os.path.isfile(weights):
                raise ValueError(
                    f"weights file not found: {weights!r} (backbone {self.name!r} "
                    f"takes weights='imagenet', None or the path of a local "
                    f"weights file)."
                )
        return self.constructor((image_size[0], image_size[1], 3), weights)


_REGISTRY = {}


def register_backbone(spec):
    """Adds a `BackboneSpec` to the registry (replacing one of the same name)."""
    _REGISTRY[spec.name] = spec
    return spec


def available_backbones():
    """Sorted names accepted by `build_mmdsr(backbone=...)`."""
    return sorted(_REGISTRY)


def get_backbone_spec(name):
    """Returns the registered `BackboneSpec` called `name`.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    key = name.lower()
    if key not in _REGISTRY:
        raise ValueError(
            f"Unknown backbone {name!r}. Valid names: {', '.join(available_backbones())}. "
            f"To use your own network pass a keras.Model as `backbone` with "
            f"`stages=[stride-8, stride-16, stride-32 layer names]`."
        )
    return _REGISTRY[key]
