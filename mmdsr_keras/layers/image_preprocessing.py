"""Backbone input normalisation inside the model."""

import keras
from keras import ops

# Per-channel (mean, std) on [0, 255] RGB pixels, and whether the backbone
# expects BGR. Each preset reproduces the matching keras.applications
# `preprocess_input` (or the published weights' own recipe) exactly.
PRESETS = {
    # ResNet v1: BGR, ImageNet mean subtracted, no scaling.
    "caffe": ((103.939, 116.779, 123.68), (1.0, 1.0, 1.0), True),
    # DenseNet: [0, 1] then ImageNet mean/std, i.e. mean*255 and std*255.
    "torch": (
        (0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0),
        (0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0),
        False,
    ),
    # MobileNet / MobileNetV2: [-1, 1].
    "tf": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5), False),
    # EfficientNet-Lite ImageNet weights: (x - 127) / 128.
    "lite": ((127.0, 127.0, 127.0), (128.0, 128.0, 128.0), False),
    # The backbone normalises its own input (EfficientNetV2, ConvNeXt).
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False),
}


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class ImagePreprocessing(keras.layers.Layer):
    """Maps raw RGB pixels in [0, 255] to what a backbone's weights expect.

    y = (x[..., order] - mean) / std, with `order` reversing the channels for
    BGR ("caffe") backbones. Keeping this inside the model means an exported
    model takes raw pixels and needs no client-side preprocessing.

    Args:
        mode: one of `"caffe"`, `"torch"`, `"tf"`, `"lite"`, `"none"`.
            Defaults to `"tf"`.

    Example:
    >>> import numpy as np
    >>> layer = ImagePreprocessing("tf")
    >>> y = layer(np.full((1, 2, 2, 3), 255.0, "float32"))
    >>> float(y[0, 0, 0, 0])
    1.0
    """

    def __init__(self, mode="tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in PRESETS:
            raise ValueError(
                f"ImagePreprocessing: unknown mode {mode!r}; expected one of "
                f"{sorted(PRESETS)}."
            )
        self.mode = mode
        mean, std, bgr = PRESETS[mode]
        self._mean = mean
        self._std = std
        self._bgr = bgr

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "none":
            return x
        if self._bgr:
            x = ops.flip(x, axis=-1)
        mean = ops.convert_to_tensor(self._mean, dtype=self.compute_dtype)
        std = ops.convert_to_tensor(self._std, dtype=self.compute_dtype)
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode})
        return config
