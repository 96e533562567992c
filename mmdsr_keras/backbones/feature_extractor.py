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


# keras-hub's FeaturePyramidBackbone names its stride-2^k outputs "Pk"; MMDSR
# fuses the stride-8/16/32 ones like those of the registered backbones.
PYRAMID_STAGES = ("P3", "P4", "P5")
USER_MODEL_UNITS = 512


def resolve_backbone(backbone, image_size, weights=None, stages=None, preprocessing=None):
    """The network, its stage names, preprocessing mode and MMDSR width.

    Args:
        backbone: a registered name (see `available_backbones()`), a keras-hub
            `FeaturePyramidBackbone` (anything with a `pyramid_outputs` dict;
            stages default to `"P3"`, `"P4"`, `"P5"`) or another `keras.Model`
            (then `stages`, its layer names, are required).
        image_size: int or `(height, width)` of the raw RGB input.
        weights: `"imagenet"`, `None` or a local weights file (registered
            backbones only).
        stages: layer names (or pyramid keys) fused, shallow to deep.
        preprocessing: an `ImagePreprocessing` mode or a Keras layer mapping
            raw [0, 255] pixels to the backbone's input. Defaults to the
            registered mode, or `"none"` for a model of your own.

    Returns:
        `(network, stages, preprocessing, default_units)`.

    Example:
    >>> network, stages, mode, units = resolve_backbone("mobilenet_0.25", 64)
    >>> stages, mode, units
    (['conv_pw_5_relu', 'conv_pw_11_relu', 'conv_pw_13_relu'], 'tf', 256)
    """
    height, width = _image_shape(image_size)
    if isinstance(backbone, keras.Model):
        pyramid = getattr(backbone, "pyramid_outputs", None)
        if not stages and isinstance(pyramid, dict) and set(PYRAMID_STAGES) <= set(pyramid):
            stages = list(PYRAMID_STAGES)
        if not stages:
            raise ValueError(
                "A user-supplied backbone model needs `stages`: the names of the layers "
                "whose outputs MMDSR fuses (e.g. its stride-8, -16 and -32 outputs)."
            )
        network, default_units = backbone, USER_MODEL_UNITS
        mode = preprocessing or "none"
    else:
        spec = get_backbone_spec(backbone)
        if min(height, width) < spec.min_image_size:
            raise ValueError(
                f"image_size={image_size} is too small for backbone {spec.name!r}: its "
                f"stride-32 stage needs at least {spec.min_image_size} pixels a side."
            )
        network = spec.build((height, width), weights)
        default_units = spec.default_units
        stages = list(stages or spec.stage_layers)
        mode = preprocessing or spec.preprocessing
    build_stage_model(network, stages)  # checks the stage names now, with the backbone's name
    return network, list(stages), mode, default_units


def build_stage_model(network, stages, name="backbone"):
    """`network`'s input -> its `stages` outputs (layer names or pyramid keys).

    Shares every layer with `network`.

    Example:
    >>> network, stages, _, _ = resolve_backbone("mobilenet_0.25", 64)
    >>> [tuple(s[1:3]) for s in build_stage_model(network, stages).output_shape]
    [(8, 8), (4, 4), (2, 2)]
    """
    pyramid = getattr(network, "pyramid_outputs", None) or {}
    layer_names = {layer.name for layer in network.layers}
    missing = [s for s in stages if s not in pyramid and s not in layer_names]
    if missing:
        known = sorted(pyramid) or [layer.name for layer in network.layers[-3:]]
        raise ValueError(
            f"stage layer(s) {missing} not found in backbone {network.name!r}; its pyramid "
            f"outputs or last layers are e.g. {known}."
        )
    outputs = [pyramid[s] if s in pyramid else network.get_layer(s).output for s in stages]
    return keras.Model(network.inputs, outputs, name=name)


def build_feature_extractor(backbone, image_size, weights=None, stages=None,
                            freeze_backbone=False, preprocessing=None):
    """Image input, preprocessing and the stage feature maps of a backbone.

    Args:
        backbone, image_size, weights, stages, preprocessing: as in
            `resolve_backbone`.
        freeze_backbone: make the backbone non-trainable (its BatchNorms then
            also run in inference mode). Defaults to False.

    Returns:
        `(inputs, features, info)`: the `keras.Input` named `"image"` (raw
        pixels in [0, 255]), the list of stage tensors, and a dict with
        `name`, `default_units` and `stages`.

    Example:
    >>> inputs, features, info = build_feature_extractor("mobilenet_0.25", 64)
    >>> [tuple(f.shape[1:3]) for f in features]
    [(8, 8), (4, 4), (2, 2)]
    """
    network, stages, mode, default_units = resolve_backbone(
        backbone, image_size, weights, stages, preprocessing)
    features_model = build_stage_model(network, stages)
    features_model.trainable = not freeze_backbone
    inputs = keras.Input((*_image_shape(image_size), 3), name="image")
    x = as_preprocessing_layer(mode)(inputs)
    features = features_model(x)
    info = {"name": network.name, "default_units": default_units, "stages": list(stages)}
    return inputs, list(features), info


def as_preprocessing_layer(preprocessing):
    """An `ImagePreprocessing` layer for a mode name; a given layer as it is."""
    if isinstance(preprocessing, keras.layers.Layer):
        return preprocessing
    return ImagePreprocessing(preprocessing, name="preprocessing")
