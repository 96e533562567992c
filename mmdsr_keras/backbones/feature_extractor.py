"""Turns a registered or user-supplied backbone into a multi-stage feature model."""

import keras

from mmdsr_keras.backbones.backbone_spec import get_backbone_spec
from mmdsr_keras.layers.image_preprocessing import ImagePreprocessing


def _image_shape(image_size):
    if isinstance(image_size, int):
        return (image_size, image_size)
    if len(image_size) != 2:
        raise ValueError(f"image_size must be an int or (height, width), got {image_size!r}.")
    return tuple(int(s) for s in image_size)


def build_feature_extractor(backbone, image_size, weights=None, stages=None,
                            freeze_backbone=False, preprocessing=None):
    """Image input, preprocessing and the stage feature maps of a backbone.

    Args:
        backbone: a registered name (see `available_backbones()`) or a
            `keras.Model` (then `stages` is required).
        image_size: int or `(height, width)` of the raw RGB input.
        weights: `"imagenet"`, `None` or a local weights file path (registered
            backbones only; load your own model's weights yourself).
        stages: layer names whose outputs are used, shallow to deep. Defaults
            to the registered stride-8/16/32 layers.
        freeze_backbone: make the backbone non-trainable (its BatchNorms then
            also run in inference mode). Defaults to False.
        preprocessing: `ImagePreprocessing` mode. Defaults to the registered
            one, or `"none"` for a user model.

    Returns:
        `(inputs, features, info)`: the `keras.Input` named `"image"` (raw
        pixels in [0, 255]), the list of stage tensors, and a dict with
        `name`, `default_units` and `stages`.

    Example:
    >>> inputs, features, info = build_feature_extractor("mobilenet_0.25", 64)
    >>> [tuple(f.shape[1:3]) for f in features]
    [(8, 8), (4, 4), (2, 2)]
    """
    height, width = _image_shape(image_size)
    if isinstance(backbone, keras.Model):
        if not stages:
            raise ValueError(
                "A user-supplied backbone model needs `stages`: the names of the layers "
                "whose outputs MMDSR fuses (e.g. its stride-8, -16 and -32 outputs)."
            )
        network, name, default_units = backbone, backbone.name, 512
        mode = preprocessing or "none"
    else:
        spec = get_backbone_spec(backbone)
        if min(height, width) < spec.min_image_size:
            raise ValueError(
                f"image_size={image_size} is too small for backbone {spec.name!r}: its "
                f"stride-32 stage needs at least {spec.min_image_size} pixels a side."
            )
        network = spec.build((height, width), weights)
        name, default_units = spec.name, spec.default_units
        stages = list(stages or spec.stage_layers)
        mode = preprocessing or spec.preprocessing
    layer_names = {layer.name for layer in network.layers}
    missing = [s for s in stages if s not in layer_names]
    if missing:
        raise ValueError(
            f"stage layer(s) {missing} not found in backbone {name!r}; the layers whose "
            f"outputs are feature maps end with e.g. {[l.name for l in network.layers[-3:]]}."
        )
    features_model = keras.Model(
        network.inputs, [network.get_layer(s).output for s in stages], name="backbone"
    )
    features_model.trainable = not freeze_backbone
    inputs = keras.Input((height, width, 3), name="image")
    x = ImagePreprocessing(mode, name="preprocessing")(inputs)
    features = features_model(x)
    info = {"name": name, "default_units": default_units, "stages": list(stages)}
    return inputs, list(features), info
