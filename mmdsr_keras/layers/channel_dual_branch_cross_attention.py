"""Global and local channel attention, each re-weighted by the other."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class ChannelDualBranchCrossAttention(keras.layers.Layer):
    """Channel dual-branch cross-attention with adaptive fusion and residual.

    Two channel-attention branches with reduction r:

        g(X) = Dense_d(ReLU(Dense_{d/r}(GAP(X))))          (global, B x 1 x 1 x d)
        l(X) = BN(PW_d(ReLU(BN(PW_{d/r}(X)))))             (local,  B x H x W x d)

    Each branch recalibrates X, then each is re-weighted by the other's view:

        X_g = X * sigmoid(g(X)),   X_l = X * sigmoid(l(X))
        M   = sigmoid(g(X_l) + l(X_g))
        Z   = X + M * X_g + (1 - M) * X_l

    The global branch has no BatchNorm: it would normalise over only B pooled
    vectors and break at per-replica batch 1. With `share_branches=True` the
    second use of g and l reuses their Dense/Conv weights, but every call of
    l keeps its own BatchNorm pair: one BatchNorm fed two different inputs
    mixes its moving statistics and makes inference differ from training.

    Args:
        reduction: r, the bottleneck ratio of both branches. Defaults to 4.
        share_branches: reuse the branch weights for the cross step. Defaults
            to True.
        **kwargs: standard layer arguments.

    Example:
    >>> import numpy as np
    >>> layer = ChannelDualBranchCrossAttention(reduction=4)
    >>> tuple(layer(np.random.rand(2, 5, 5, 16)).shape)
    (2, 5, 5, 16)
    """

    def __init__(self, reduction=4, share_branches=True, **kwargs):
        super().__init__(**kwargs)
        self.reduction = reduction
        self.share_branches = share_branches

    def build(self, input_shape):
        channels = int(input_shape[-1])
        hidden = max(1, channels // self.reduction)
        self.channels = channels
        policy = self.dtype_policy

        def dense(units, name):
            layer = keras.layers.Dense(units, dtype=policy, name=name)
            return layer

        def pointwise(units, name):
            return keras.layers.Conv2D(units, 1, use_bias=False, dtype=policy, name=name)

        def norm(name):
            return keras.layers.BatchNormalization(dtype=policy, name=name)

        pooled = (input_shape[0], channels)
        self.global_down = dense(hidden, "global_down")
        self.global_up = dense(channels, "global_up")
        self.global_down.build(pooled)
        self.global_up.build((input_shape[0], hidden))
        self.local_down = pointwise(hidden, "local_down")
        self.local_up = pointwise(channels, "local_up")
        self.local_down.build(input_shape)
        self.local_up.build(tuple(input_shape[:-1]) + (hidden,))
        if self.share_branches:
            self.cross_global_down, self.cross_global_up = self.global_down, self.global_up
            self.cross_local_down, self.cross_local_up = self.local_down, self.local_up
        else:
            self.cross_global_down = dense(hidden, "cross_global_down")
            self.cross_global_up = dense(channels, "cross_global_up")
            self.cross_global_down.build(pooled)
            self.cross_global_up.build((input_shape[0], hidden))
            self.cross_local_down = pointwise(hidden, "cross_local_down")
            self.cross_local_up = pointwise(channels, "cross_local_up")
            self.cross_local_down.build(input_shape)
            self.cross_local_up.build(tuple(input_shape[:-1]) + (hidden,))
        # One BatchNorm pair per call of the local branch, shared weights or not.
        self.local_norms = [norm("local_norm_down"), norm("local_norm_up")]
        self.cross_local_norms = [norm("cross_local_norm_down"), norm("cross_local_norm_up")]
        for down, up in (self.local_norms, self.cross_local_norms):
            down.build(tuple(input_shape[:-1]) + (hidden,))
            up.build(input_shape)

    @staticmethod
    def _global(x, down, up):
        pooled = ops.mean(x, axis=(1, 2))
        return ops.expand_dims(ops.expand_dims(up(ops.relu(down(pooled))), 1), 1)

    @staticmethod
    def _local(x, down, up, norms, training):
        x = ops.relu(norms[0](down(x), training=training))
        return norms[1](up(x), training=training)

    def call(self, inputs, training=None):
        x = inputs
        x_global = x * ops.sigmoid(self._global(x, self.global_down, self.global_up))
        x_local = x * ops.sigmoid(
            self._local(x, self.local_down, self.local_up, self.local_norms, training)
        )
        mix = ops.sigmoid(
            self._global(x_local, self.cross_global_down, self.cross_global_up)
            + self._local(
                x_global, self.cross_local_down, self.cross_local_up,
                self.cross_local_norms, training,
            )
        )
        return x + mix * x_global + (1.0 - mix) * x_local

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction, "share_branches": self.share_branches})
        return config
