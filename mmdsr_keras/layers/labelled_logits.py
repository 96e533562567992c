"""The model's output layer, carrying the class names with the model."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class LabelledLogits(keras.layers.Layer):
    """Identity on per-class logits that stores the class names in its config.

    A saved `.keras` model (and a SavedModel exported from it) thereby knows
    what each output means. Outputs are float32 under every mixed-precision
    policy, as a loss on float16 logits loses precision.

    Args:
        class_names: list of C names, in output order.

    Example:
    >>> import numpy as np
    >>> tuple(LabelledLogits(["cat", "dog"])(np.zeros((1, 2))).shape)
    (1, 2)
    """

    def __init__(self, class_names, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.class_names = [str(n) for n in class_names]

    def call(self, inputs):
        if inputs.shape[-1] != len(self.class_names):
            raise ValueError(
                f"LabelledLogits: got {inputs.shape[-1]} logits for "
                f"{len(self.class_names)} class names."
            )
        return ops.cast(inputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"class_names": list(self.class_names)})
        return config
