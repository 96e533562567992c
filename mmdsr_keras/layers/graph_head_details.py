"""A second output path through a `DynamicSemanticGCN`, sharing its weights."""

import keras

from mmdsr_keras.layers.dynamic_semantic_gcn import DynamicSemanticGCN


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class GraphHeadDetails(keras.layers.Layer):
    """What a `DynamicSemanticGCN` head computes, not only its logits.

    Returns the head's `(logits, class_attention (B, H, W, C), adjacency
    (B, C, C), global_logits s_m (B, C), graph_logits s_r (B, C))` for the same
    input, by the head's own variables: the explainer and deep supervision read
    the model's head as it trains, never a stale copy. (A Keras layer keeps
    one output structure across its calls, so the head itself cannot return
    both.) Saved and loaded on its own, it holds a copy of the head.

    Args:
        head: the `DynamicSemanticGCN` to read (built).
        **kwargs: standard layer arguments.

    Example:
    >>> import numpy as np
    >>> head = DynamicSemanticGCN(num_classes=4, num_perspectives=2)
    >>> x = np.random.rand(2, 3, 3, 8).astype("float32")
    >>> logits = head(x)
    >>> details = GraphHeadDetails(head)(x)
    >>> bool(np.allclose(details[0], logits, atol=1e-6)), tuple(details[2].shape)
    (True, (2, 4, 4))
    """

    def __init__(self, head, **kwargs):
        if isinstance(head, dict):
            head = keras.saving.deserialize_keras_object(head)
        kwargs.setdefault("dtype", getattr(head, "dtype_policy", None))
        super().__init__(**kwargs)
        if not isinstance(head, DynamicSemanticGCN):
            raise TypeError(
                f"GraphHeadDetails: head must be a DynamicSemanticGCN, got {type(head).__name__}."
            )
        self.head = head

    def build(self, input_shape):
        if not self.head.built:
            self.head.build(input_shape)

    def call(self, inputs):
        return self.head.details(inputs)

    def get_config(self):
        config = super().get_config()
        config["head"] = keras.saving.serialize_keras_object(self.head)
        return config
