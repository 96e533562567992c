"""The model's output layer, carrying the class names (and a score calibration) with the model."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class LabelledLogits(keras.layers.Layer):
    """Per-class logits that store the class names, optionally calibrated per class.

    Without calibration the layer is the identity. With it, each class c's
    logit s_c becomes

        s'_c = a_c * s_c + b_c

    with a non-trainable scale a_c > 0 and bias b_c (identity until set by
    `set_calibration`, e.g. by `fit_score_calibration` after training). As
    a_c > 0, every class's ranking, hence its AP, is unchanged; what moves is
    sigmoid(s'_c), so thresholded metrics (CF1, OF1) and scores compared
    across classes or models. A saved `.keras` model (and a SavedModel
    exported from it) thereby knows what each output means and how to
    calibrate it. Outputs are float32 under every mixed-precision policy, as a
    loss on float16 logits loses precision.

    Args:
        class_names: list of C names, in output order.
        calibration: hold the per-class scale and bias. Defaults to False
            (models saved before the option existed load unchanged).

    Example:
    >>> import numpy as np
    >>> layer = LabelledLogits(["cat", "dog"], calibration=True)
    >>> layer.set_calibration(scale=[2.0, 1.0], bias=[0.0, -1.0])
    >>> ops.convert_to_numpy(layer(np.ones((1, 2)))).tolist()
    [[2.0, 0.0]]
    """

    def __init__(self, class_names, calibration=False, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.class_names = [str(n) for n in class_names]
        self.calibration = bool(calibration)
        if self.calibration:
            size = (len(self.class_names),)
            self.calibration_scale = self.add_weight(
                shape=size, initializer="ones", trainable=False, name="calibration_scale")
            self.calibration_bias = self.add_weight(
                shape=size, initializer="zeros", trainable=False, name="calibration_bias")

    def call(self, inputs):
        if inputs.shape[-1] != len(self.class_names):
            raise ValueError(
                f"LabelledLogits: got {inputs.shape[-1]} logits for "
                f"{len(self.class_names)} class names."
            )
        logits = ops.cast(inputs, self.compute_dtype)
        if self.calibration:
            logits = logits * self.calibration_scale + self.calibration_bias
        return logits

    def get_calibration(self):
        """`(scale, bias)` as float32 arrays of shape (C,) (ones and zeros without calibration)."""
        if not self.calibration:
            size = len(self.class_names)
            return np.ones(size, np.float32), np.zeros(size, np.float32)
        return (np.asarray(ops.convert_to_numpy(self.calibration_scale), np.float32),
                np.asarray(ops.convert_to_numpy(self.calibration_bias), np.float32))

    def set_calibration(self, scale, bias):
        """Sets the per-class scale a (all > 0) and bias b, each of shape (C,)."""
        if not self.calibration:
            raise ValueError(f"LabelledLogits {self.name!r} was built with calibration=False: "
                             "build the model with score_calibration=True to calibrate it.")
        scale = np.asarray(scale, np.float32).reshape(-1)
        bias = np.asarray(bias, np.float32).reshape(-1)
        size = len(self.class_names)
        if scale.shape != (size,) or bias.shape != (size,):
            raise ValueError(f"set_calibration: expected scale and bias of shape ({size},), got "
                             f"{scale.shape} and {bias.shape}.")
        if not (np.all(np.isfinite(scale)) and np.all(np.isfinite(bias)) and np.all(scale > 0)):
            raise ValueError("set_calibration: the scale must be finite and > 0 (it keeps each "
                             "class's ranking) and the bias finite.")
        self.calibration_scale.assign(scale)
        self.calibration_bias.assign(bias)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"class_names": list(self.class_names), "calibration": self.calibration})
        return config
