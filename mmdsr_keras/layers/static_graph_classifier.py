"""ML-GCN's classifier head: label embeddings propagated on a fixed graph."""

import keras
import numpy as np
from keras import ops

from mmdsr_keras.layers.dynamic_semantic_gcn import LEAKY_SLOPE


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class StaticGraphClassifier(keras.layers.Layer):
    """ML-GCN head (Chen et al., CVPR 2019): a GCN maps label embeddings to classifiers.

        W = A0 LReLU(A0 E W1) W2        (C x D classifiers, LeakyReLU 0.2)
        logits = f W^T                  (f: pooled image features, B x D)

    A0 is the symmetric-normalised co-occurrence prior (identity when none)
    and E the label word embeddings (one-hot when none, i.e. a learned
    per-class input).

    Args:
        num_classes: C.
        hidden_units: width of the first GCN layer. Defaults to 1024.
        label_prior: optional `(C, C)` A0.
        label_embeddings: optional `(C, e)` E.

    Example:
    >>> import numpy as np
    >>> head = StaticGraphClassifier(num_classes=3, hidden_units=8)
    >>> tuple(head(np.random.rand(2, 16)).shape)
    (2, 3)
    """

    def __init__(self, num_classes, hidden_units=1024, label_prior=None,
                 label_embeddings=None, **kwargs):
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
        self.num_classes = num_classes
        self.hidden_units = hidden_units
        self.label_prior = None if label_prior is None else np.asarray(label_prior, "float32").tolist()
        self.label_embeddings = (None if label_embeddings is None
                                 else np.asarray(label_embeddings, "float32").tolist())

    def build(self, input_shape):
        c = self.num_classes
        features = int(input_shape[-1])
        prior = np.eye(c, dtype="float32") if self.label_prior is None else np.asarray(
            self.label_prior, "float32")
        embeddings = (np.eye(c, dtype="float32") if self.label_embeddings is None
                      else np.asarray(self.label_embeddings, "float32"))
        constant = keras.initializers.Constant
        self.prior = self.add_weight(name="prior", shape=prior.shape, trainable=False,
                                     initializer=constant(prior))
        self.embeddings = self.add_weight(name="label_embeddings", shape=embeddings.shape,
                                          trainable=False, initializer=constant(embeddings))
        self.kernel_1 = self.add_weight(name="gcn_kernel_1", shape=(embeddings.shape[1],
                                        self.hidden_units), initializer="glorot_uniform")
        self.kernel_2 = self.add_weight(name="gcn_kernel_2", shape=(self.hidden_units, features),
                                        initializer="glorot_uniform")

    def call(self, inputs):
        prior = ops.cast(self.prior, self.compute_dtype)
        hidden = ops.leaky_relu(
            ops.matmul(prior, ops.matmul(ops.cast(self.embeddings, self.compute_dtype),
                                         self.kernel_1)), LEAKY_SLOPE)
        classifiers = ops.matmul(prior, ops.matmul(hidden, self.kernel_2))
        return ops.matmul(inputs, ops.transpose(classifiers))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes,
            "hidden_units": self.hidden_units,
            "label_prior": self.label_prior,
            "label_embeddings": self.label_embeddings,
        })
        return config
