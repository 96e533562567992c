"""SGD with PyTorch-style parameter groups, coupled weight decay and global-norm clipping."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class ParameterGroupSGD(keras.optimizers.SGD):
    """SGD + momentum whose learning rate is scaled per variable, as in ML-GCN.

    Keras optimizers have one learning rate. The field trains the backbone at
    0.1x the head's rate, with L2 weight decay added to the gradient (PyTorch
    `SGD(weight_decay=...)`, not Keras' decoupled decay) after clipping the
    raw gradients' global norm. For every variable v with multiplier m_v:

        g  <- clip_by_global_norm(g, c)
        g' <- m_v (g + wd v)
        buf <- mu buf + g',   v <- v - lr buf

    which equals PyTorch SGD with a parameter group of learning rate m_v lr
    (the multiplier passes linearly through the momentum buffer). Done by
    transforming the gradients before the stock SGD step, so it runs on every
    backend and in `stateless_apply` (JAX).

    Args:
        learning_rate: head learning rate (float or schedule). Defaults to 0.1.
        momentum: mu. Defaults to 0.9.
        nesterov: Defaults to False.
        l2_weight_decay: wd, coupled (added to the gradient). Defaults to 1e-4.
        clip_global_norm: c, or None for no clipping. Defaults to 10.
        lr_multipliers: `{variable path: m}`; unlisted variables use 1.
            `backbone_lr_multipliers(model, 0.1)` builds it.
        **kwargs: other `keras.optimizers.SGD` arguments.

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="head")])
    >>> opt = ParameterGroupSGD(0.1, lr_multipliers={"head/bias": 0.1})
    >>> model.compile(optimizer=opt, loss="mse")
    """

    def __init__(self, learning_rate=0.1, momentum=0.9, nesterov=False, l2_weight_decay=1e-4,
                 clip_global_norm=10.0, lr_multipliers=None, **kwargs):
        for key in ("weight_decay", "clipnorm", "global_clipnorm", "clipvalue"):
            if kwargs.get(key) is not None:
                raise ValueError(
                    f"ParameterGroupSGD: use l2_weight_decay / clip_global_norm instead of {key}."
                )
            kwargs.pop(key, None)
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov,
                         **kwargs)
        self.l2_weight_decay = l2_weight_decay
        self.clip_global_norm = clip_global_norm
        self.lr_multipliers = dict(lr_multipliers or {})

    def _transform(self, grads, variables):
        if self.clip_global_norm:
            present = [g for g in grads if g is not None]
            norm = ops.sqrt(sum(ops.sum(ops.square(ops.cast(g, "float32"))) for g in present))
            # As torch.nn.utils.clip_grad_norm_: coefficient c / (norm + 1e-6), at most 1.
            scale = ops.minimum(1.0, self.clip_global_norm / (norm + 1e-6))
            grads = [None if g is None else g * ops.cast(scale, g.dtype) for g in grads]
        out = []
        for g, v in zip(grads, variables):
            if g is not None:
                if self.l2_weight_decay:
                    g = g + ops.cast(v, g.dtype) * self.l2_weight_decay
                multiplier = self.lr_multipliers.get(v.path, 1.0)
                if multiplier != 1.0:
                    g = g * multiplier
            out.append(g)
        return out

    def apply(self, grads, trainable_variables=None):
        variables = (trainable_variables if trainable_variables is not None
                     else self._trainable_variables)
        return super().apply(self._transform(list(grads), list(variables)), trainable_variables)

    def get_config(self):
        config = super().get_config()
        for key in ("weight_decay", "clipnorm", "global_clipnorm", "clipvalue"):
            config.pop(key, None)
        config.update({
            "l2_weight_decay": self.l2_weight_decay,
            "clip_global_norm": self.clip_global_norm,
            "lr_multipliers": dict(self.lr_multipliers),
        })
        return config


def backbone_lr_multipliers(model, multiplier=0.1, backbone_layer="backbone"):
    """`{path: multiplier}` for every trainable variable of the model's backbone.

    Example:
    >>> import mmdsr_keras
    >>> model = mmdsr_keras.build_mmdsr(num_classes=2, backbone="mobilenet_0.25",
    ...                                 image_size=64, weights=None, units=8, num_heads=2)
    >>> groups = backbone_lr_multipliers(model)
    >>> set(groups.values())
    {0.1}
    """
    head_paths = {v.path for layer in model.layers if layer.name != backbone_layer
                  for v in layer.trainable_variables}
    paths = {v.path for v in model.get_layer(backbone_layer).trainable_variables}
    clash = paths & head_paths
    if clash:
        raise ValueError(f"backbone and head share variable paths {sorted(clash)[:3]}: "
                         f"rename the head layers.")
    return {p: float(multiplier) for p in paths}
