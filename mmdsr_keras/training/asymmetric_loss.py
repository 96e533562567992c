"""Asymmetric loss (Ridnik et al., ICCV 2021), with focal loss as a special case."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class AsymmetricLoss(keras.losses.Loss):
    """Multi-label asymmetric focusing loss on logits, averaged over classes.

        p = sigmoid(z),  p_m = max(p - m, 0)                    (probability shifting)
        L+ = (1 - p)^gamma_pos log(p)
        L- = p_m^gamma_neg log(1 - p_m)
        loss = -mean_c [ y L+ + (1 - y) L- ]

    `gamma_pos = gamma_neg = 0, margin = 0` is BCE with logits;
    `gamma_pos = gamma_neg = 2, margin = 0` is the focal loss. Computed in
    float32 with log-probabilities clipped at 1e-8.

    Args:
        gamma_neg: focusing on negatives. Defaults to 4.
        gamma_pos: focusing on positives. Defaults to 0.
        margin: probability margin m for negatives. Defaults to 0.05.

    Example:
    >>> import numpy as np
    >>> loss = AsymmetricLoss(gamma_neg=0, gamma_pos=0, margin=0)
    >>> round(float(loss(np.array([[1.0]]), np.array([[0.0]]))), 4)
    0.6931
    """

    def __init__(self, gamma_neg=4.0, gamma_pos=0.0, margin=0.05, name="asymmetric_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.gamma_neg = gamma_neg
        self.gamma_pos = gamma_pos
        self.margin = margin

    def call(self, y_true, y_pred):
        y = ops.cast(y_true, "float32")
        p = ops.sigmoid(ops.cast(y_pred, "float32"))
        p_neg = ops.maximum(p - self.margin, 0.0) if self.margin else p
        eps = 1e-8
        positive = ops.log(ops.maximum(p, eps))
        negative = ops.log(ops.maximum(1.0 - p_neg, eps))
        if self.gamma_pos:
            positive = positive * ops.power(1.0 - p, self.gamma_pos)
        if self.gamma_neg:
            negative = negative * ops.power(p_neg, self.gamma_neg)
        return -ops.mean(y * positive + (1.0 - y) * negative, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"gamma_neg": self.gamma_neg, "gamma_pos": self.gamma_pos,
                       "margin": self.margin})
        return config
