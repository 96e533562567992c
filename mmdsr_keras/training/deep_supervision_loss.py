"""Deep supervision of MMDSR: the loss on the blend, on s_m and on s_r."""

import keras


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class DeepSupervisionLoss(keras.losses.Loss):
    """A multi-label loss on the fused logits plus, weighted, on both branches.

    With the stacked scores of `build_deep_supervision_model` (`(B, 3, C)`:
    logits, s_m, s_r) and the base loss L (BCE by default):

        loss = L(y, logits) + w (L(y, s_m) + L(y, s_r))

    Design section 3.6: only the blend alpha s_m + (1 - alpha) s_r is
    otherwise supervised, so either branch can drift as long as the other
    compensates, and s_m's scale grows with the number of positions.

    Args:
        base_loss: a Keras loss on `(y_true, logits)` `(B, C)`. Defaults to
            BCE with logits.
        weight: w, the weight of each branch's loss. Defaults to 0.5.
        name: Defaults to `"deep_supervision_loss"`.

    Example:
    >>> import numpy as np
    >>> y = np.array([[1.0, 0.0]])
    >>> scores = np.array([[[2.0, -1.0], [1.0, 0.0], [3.0, -2.0]]])
    >>> bce = keras.losses.BinaryCrossentropy(from_logits=True)
    >>> expected = float(bce(y, scores[:, 0]) + 0.5 * (bce(y, scores[:, 1]) + bce(y, scores[:, 2])))
    >>> bool(np.isclose(float(DeepSupervisionLoss(bce, 0.5)(y, scores)), expected))
    True
    """

    def __init__(self, base_loss=None, weight=0.5, name="deep_supervision_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(base_loss, dict):
            base_loss = keras.saving.deserialize_keras_object(base_loss)
        self.base_loss = base_loss or keras.losses.BinaryCrossentropy(from_logits=True)
        if weight < 0:
            raise ValueError(f"DeepSupervisionLoss: weight must be >= 0, got {weight}.")
        self.weight = float(weight)

    def call(self, y_true, y_pred):
        fused = self.base_loss(y_true, y_pred[:, 0])
        branches = self.base_loss(y_true, y_pred[:, 1]) + self.base_loss(y_true, y_pred[:, 2])
        # One value per example, so the outer reduction is a plain mean.
        return keras.ops.ones_like(y_pred[:, 0, 0]) * (fused + self.weight * branches)

    def get_config(self):
        return {"name": self.name, "weight": self.weight,
                "base_loss": keras.saving.serialize_keras_object(self.base_loss)}
