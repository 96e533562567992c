"""AdamW with per-variable learning rates (PyTorch-style parameter groups)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class ParameterGroupAdamW(keras.optimizers.Adam):
    """AdamW whose learning rate is scaled per variable, for a slower backbone.

    Scaling gradients does not slow Adam down (its step is invariant to the
    gradient's scale), so the trick of `ParameterGroupSGD` does not carry
    over. This optimizer scales the learning rate itself, per variable, in
    both the Adam step and the decoupled weight decay. For a variable v with
    multiplier m_v, at step t with rate lr_t (as PyTorch `AdamW` with a
    parameter group of rate m_v lr):

        v   <- v - m_v lr_t wd v
        m   <- b1 m + (1 - b1) g,    s <- b2 s + (1 - b2) g^2
        v   <- v - m_v lr_t sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(s) + eps)

    With every multiplier 1 it is `keras.optimizers.AdamW`. The multiplier is
    applied inside `update_step`, so it runs on every backend and in JAX's
    `stateless_apply`.

    Args:
        learning_rate: the head's rate (float or schedule). Defaults to 1e-3.
        weight_decay: decoupled weight decay. Defaults to 0.004 (Keras AdamW).
        lr_multipliers: `{variable path: m}`; unlisted variables use 1.
            `backbone_lr_multipliers(model, 0.1)` builds it.
        **kwargs: other `keras.optimizers.Adam` arguments (`beta_1`,
            `global_clipnorm`, `use_ema`, ...).

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="head")])
    >>> opt = ParameterGroupAdamW(1e-3, lr_multipliers={"head/kernel": 0.1})
    >>> model.compile(optimizer=opt, loss="mse")
    """

    def __init__(self, learning_rate=1e-3, weight_decay=0.004, lr_multipliers=None, **kwargs):
        # The base class would decay every variable at the full rate: the
        # decay is applied per variable in `update_step` instead.
        super().__init__(learning_rate=learning_rate, weight_decay=None, **kwargs)
        self.decoupled_weight_decay = weight_decay
        self.lr_multipliers = dict(lr_multipliers or {})

    def build(self, variables):
        super().build(variables)
        # The TensorFlow backend hands `update_step` its raw tf.Variables,
        # which have no Keras path: look multipliers up by variable index.
        self._multiplier_of_index = [self.lr_multipliers.get(v.path, 1.0) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self._multiplier_of_index[self._get_variable_index(variable)]
        learning_rate = ops.cast(learning_rate, variable.dtype) * multiplier
        if self.decoupled_weight_decay and self._use_weight_decay(variable):
            decay = ops.cast(self.decoupled_weight_decay, variable.dtype)
            self.assign_sub(variable, variable * decay * learning_rate)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update({
            "weight_decay": self.decoupled_weight_decay,
            "lr_multipliers": dict(self.lr_multipliers),
        })
        return config
