"""ML-GCN's classifier head: label embeddings propagated on a fixed graph."""

import keras
import numpy as np
from keras import ops

from mmdsr_keras.layers.config_version import CONFIG_VERSION_KEY, pop_config_version
from mmdsr_keras.layers.dynamic_semantic_gcn import LEAKY_SLOPE

# 1: unversioned, `label_prior` and `label_embeddings` stored as lists in the
#    config (both used as given);
# 2: both kept in the weights only, the config holding `label_embedding_dim`.
CONFIG_VERSION = 2


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class StaticGraphClassifier(keras.layers.Layer):
    """ML-GCN head (Chen et al., CVPR 2019): a GCN maps label embeddings to classifiers.

        W = A0 LReLU(A0 E W1) W2        (C x D classifiers, LeakyReLU 0.2)
        logits = f W^T (+ b)            (f: pooled image features, B x D)

    A0 is the co-occurrence prior, used as given (ML-GCN's is the
    symmetric-normalised one, `ml_gcn_label_prior(..., normalization=
    "symmetric")`; identity when none) and E the label word embeddings
    (one-hot when none, i.e. a learned per-class input). Both are
    non-trainable weights (`prior`, `label_embeddings`), not config entries:
    the config records only the width e of E. Everything runs in the layer's
    compute dtype, and so do the logits.

    Args:
        num_classes: C.
        hidden_units: width of the first GCN layer. Defaults to 1024.
        label_prior: optional `(C, C)` A0, the initial value of `prior`.
            Defaults to None (identity).
        label_embeddings: optional `(C, e)` E, the initial value of
            `label_embeddings`. Defaults to None (one-hot, e = C).
        label_embedding_dim: e, for a layer whose E comes from saved weights
            (what `from_config` passes); E is zero until they are loaded.
            Inferred from `label_embeddings` when given. Defaults to None
            (one-hot E).
        use_bias: add a per-class bias b (not in ML-GCN, whose features are
            not centred; standardised, zero-mean features need it to carry
            each class's base rate). Defaults to False.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(batch, D)` pooled features.

    Example:
    >>> import numpy as np
    >>> head = StaticGraphClassifier(num_classes=3, hidden_units=8)
    >>> tuple(head(np.random.rand(2, 16)).shape)
    (2, 3)
    >>> config = StaticGraphClassifier(3, label_prior=np.eye(3)).get_config()
    >>> "label_prior" in config, config["config_version"]
    (False, 2)
    """

    def __init__(self, num_classes, hidden_units=1024, label_prior=None,
                 label_embeddings=None, label_embedding_dim=None, use_bias=False, **kwargs):
        super().__init__(**kwargs)
        for name, value, width in (("label_prior", label_prior, num_classes),
                                   ("label_embeddings", label_embeddings, None)):
            if value is not None:
                shape = np.shape(value)
                if len(shape) != 2 or shape[0] != num_classes or (width and shape[1] != width):
                    raise ValueError(
                        f"{name} has shape {shape}; expected ({num_classes}, "
                        f"{width if width else 'e'})."
                    )
        if label_embeddings is not None:
            width = np.shape(label_embeddings)[1]
            if label_embedding_dim is not None and label_embedding_dim != width:
                raise ValueError(
                    f"StaticGraphClassifier: label_embedding_dim={label_embedding_dim} but "
                    f"label_embeddings has width {width}."
                )
            label_embedding_dim = int(width)
        if label_embedding_dim is not None and (
                isinstance(label_embedding_dim, bool) or int(label_embedding_dim) != label_embedding_dim
                or label_embedding_dim < 1):
            raise ValueError(
                f"StaticGraphClassifier: label_embedding_dim must be a positive int or None, got "
                f"{label_embedding_dim!r}."
            )
        self.num_classes = num_classes
        self.hidden_units = hidden_units
        self.use_bias = bool(use_bias)
        self.label_embedding_dim = None if label_embedding_dim is None else int(label_embedding_dim)
        # Initial values for `build` only; afterwards the weights are the truth.
        self._initial_prior = None if label_prior is None else np.asarray(label_prior, "float32")
        self._initial_embeddings = (None if label_embeddings is None
                                    else np.asarray(label_embeddings, "float32"))

    def build(self, input_shape):
        c = self.num_classes
        features = int(input_shape[-1])
        constant = keras.initializers.Constant
        prior = np.eye(c, dtype="float32") if self._initial_prior is None else self._initial_prior
        if self.label_embedding_dim is None:
            embeddings_shape, embeddings_init = (c, c), constant(np.eye(c, dtype="float32"))
        else:
            embeddings_shape = (c, self.label_embedding_dim)
            embeddings_init = ("zeros" if self._initial_embeddings is None
                               else constant(self._initial_embeddings))
        self.prior = self.add_weight(name="prior", shape=(c, c), trainable=False,
                                     initializer=constant(prior))
        self.embeddings = self.add_weight(name="label_embeddings", shape=embeddings_shape,
                                          trainable=False, initializer=embeddings_init)
        self.kernel_1 = self.add_weight(name="gcn_kernel_1", shape=(embeddings_shape[1],
                                        self.hidden_units), initializer="glorot_uniform")
        self.kernel_2 = self.add_weight(name="gcn_kernel_2", shape=(self.hidden_units, features),
                                        initializer="glorot_uniform")
        self.bias = (self.add_weight(name="bias", shape=(c,), initializer="zeros")
                     if self.use_bias else None)
        self._initial_prior = self._initial_embeddings = None

    def call(self, inputs):
        prior = ops.cast(self.prior, self.compute_dtype)
        hidden = ops.leaky_relu(
            ops.matmul(prior, ops.matmul(ops.cast(self.embeddings, self.compute_dtype),
                                         self.kernel_1)), LEAKY_SLOPE)
        classifiers = ops.matmul(prior, ops.matmul(hidden, self.kernel_2))
        logits = ops.matmul(inputs, ops.transpose(classifiers))
        return logits if self.bias is None else logits + ops.cast(self.bias, logits.dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes,
            "hidden_units": self.hidden_units,
            "label_embedding_dim": self.label_embedding_dim,
            "use_bias": self.use_bias,
            CONFIG_VERSION_KEY: CONFIG_VERSION,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        pop_config_version(cls.__name__, config, CONFIG_VERSION)
        # A version-1 config holds `label_prior` and `label_embeddings` as
        # lists meaning exactly what the constructor arguments mean (both were
        # always used as given), so either version passes straight through.
        return super().from_config(config)
