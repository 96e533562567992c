"""Multi-scale feature reconstruction by attention across backbone stages."""

import math

import keras
import numpy as np
from keras import ops


def pool_factor(size, grid_size):
    """The average-pooling factor along one axis: max(1, round(size / grid)).

    Rounds half up, in integers: 63 -> 32 pools by 2 (not 63 // 32 = 1), and
    so does 33 -> 17 (EfficientNet-Lite2 at 260 px). "Same" pooling gives
    ceil(size / k) cells and the final bilinear resize absorbs what remains.

    Example:
    >>> [pool_factor(n, 32) for n in (16, 32, 47, 48, 63, 64, 80, 95)]
    [1, 1, 1, 2, 2, 2, 3, 3]
    """
    return max(1, (2 * int(size) + int(grid_size)) // (2 * int(grid_size)))


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class CrossLayerAttention(keras.layers.Layer):
    """Fuses several backbone stages by attention across levels at every position.

    Every stage F_s (H_s x W_s) is brought to one working grid H x W (that of
    `inputs[grid_index]`) and projected to width d. The design's equation is

        P_s = ReLU(BN(Conv1x1_d(resample(F_s)))) + e_s,
        resample = resize_g o pool_{k_s},

    where pool_{k_s} is a k_h x k_w average pooling with stride k_h x k_w
    and "same" padding (border windows average only their valid entries,
    the padding split as evenly as possible with the extra row/column at
    the end), applied per axis with

        k_h = max(1, round(H_s / H)),   k_w = max(1, round(W_s / W))

    (so shallower, larger maps are pooled before their projection, and a
    deeper map gets k = 1), and resize_g is a bilinear resize (half-pixel
    centres, no antialiasing) to exactly H x W, the identity when the pooled
    map already has the grid size. So any input size works, not only
    multiples of 32. e_s is a learned level embedding (the projections of
    Q, K, V are shared across levels, so attention could not otherwise tell
    levels apart).

    The code computes, in this order,

        P_s = ReLU(resize_g(BN(Conv1x1_d(pool_{k_s}(F_s))))) + e_s,

    i.e. it projects at the pooled size, before the resize. At inference this
    is the design's equation exactly (up to float rounding): the pooling and
    the bilinear resize mix positions with weights that sum to 1 per output
    position, and Conv1x1 followed by inference-mode BN is one affine map
    applied at every position, so they commute; only the ReLU, which does
    not, stays last. It is cheaper: a deeper stage is projected at its own
    size (ResNet-50 at 448 px: the 2048-channel stride-32 map at 14 x 14,
    0.21 GMAC, instead of 0.82 GMAC at 28 x 28), and the resize moves d
    channels instead of C_s. The one difference is in training, where BN
    normalises with the batch statistics of the projection at the pooled
    size rather than at the grid size (for an upsampled stage, the same
    values without the interpolated positions in between).

    At every position p the L level vectors form a short sequence:

        Q_s = P_s W_q,  K_s = P_s W_k  (width d_qk),   V_s = P_s W_v  (width d)
        R_s(p) = sum_t softmax_t(Q_s(p) . K_t(p) / sqrt(d_qk / h)) V_t(p)   (h heads)
        X = sum_s beta_s (P_s + R_s W_o),   beta = softmax(b)

    with one learned scalar b_s per level. The attention softmax is computed
    in float32 under every mixed-precision policy.

    Args:
        units: working width d.
        num_heads: attention heads h; `units` and `key_units` must divide by
            it. Defaults to 4.
        key_units: query/key width d_qk. Defaults to `units // 4`.
        grid_index: which input defines the working grid. Defaults to 1 (the
            stride-16 stage of the usual stride-8/16/32 triple).
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list of L feature maps `(batch, H_s, W_s, C_s)`, static spatial
            shapes.

    Returns:
        `(batch, H, W, units)` on the grid of `inputs[grid_index]`.

    After `build`, `pool_sizes` holds the `(k_h, k_w)` of every level.

    Example:
    >>> import numpy as np
    >>> layer = CrossLayerAttention(units=16, num_heads=2)
    >>> maps = [np.ones((2, 8, 8, 4)), np.ones((2, 4, 4, 6)), np.ones((2, 2, 2, 8))]
    >>> tuple(layer(maps).shape)
    (2, 4, 4, 16)
    >>> layer = CrossLayerAttention(16, num_heads=2)
    >>> layer.build([(1, 63, 63, 3), (1, 32, 32, 3), (1, 16, 16, 3)])
    >>> layer.pool_sizes
    [(2, 2), (1, 1), (1, 1)]
    """

    def __init__(self, units, num_heads=4, key_units=None, grid_index=1, **kwargs):
        super().__init__(**kwargs)
        key_units = units // 4 if key_units is None else key_units
        if units % num_heads or key_units % num_heads:
            raise ValueError(
                f"CrossLayerAttention: units={units} and key_units={key_units} must "
                f"both be divisible by num_heads={num_heads}."
            )
        self.units = units
        self.num_heads = num_heads
        self.key_units = key_units
        self.grid_index = grid_index

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 1:
            raise ValueError("CrossLayerAttention expects a list of feature maps.")
        self.num_levels = len(input_shape)
        grid_shape = input_shape[self.grid_index]
        if grid_shape[1] is None or grid_shape[2] is None:
            raise ValueError(
                "CrossLayerAttention needs static spatial shapes; build the model "
                f"with a fixed image size (got grid shape {grid_shape})."
            )
        self.grid_size = (int(grid_shape[1]), int(grid_shape[2]))
        self.pool_sizes = []
        self._pooled_sizes = []
        self._paddings = []
        self._count_corrections = []
        self.projections = []
        self.projection_norms = []
        for level, shape in enumerate(input_shape):
            if shape[1] is None or shape[2] is None:
                raise ValueError(
                    "CrossLayerAttention needs static spatial shapes; got shape "
                    f"{shape} for input {level}."
                )
            size = (int(shape[1]), int(shape[2]))
            factors = tuple(pool_factor(n, g) for n, g in zip(size, self.grid_size))
            pooled = tuple(-(-n // k) for n, k in zip(size, factors))
            self.pool_sizes.append(factors)
            self._pooled_sizes.append(pooled)
            self._add_same_padding(size, factors, pooled)
            conv = keras.layers.Conv2D(
                self.units, 1, use_bias=False, dtype=self.dtype_policy,
                name=f"projection_{level}",
            )
            norm = keras.layers.BatchNormalization(
                dtype=self.dtype_policy, name=f"projection_norm_{level}"
            )
            conv.build((shape[0],) + pooled + (shape[3],))
            norm.build((shape[0],) + pooled + (self.units,))
            self.projections.append(conv)
            self.projection_norms.append(norm)
        level_shape = (None, self.num_levels, self.units)
        self.query = keras.layers.Dense(
            self.key_units, use_bias=False, dtype=self.dtype_policy, name="query"
        )
        self.key = keras.layers.Dense(
            self.key_units, use_bias=False, dtype=self.dtype_policy, name="key"
        )
        self.value = keras.layers.Dense(
            self.units, use_bias=False, dtype=self.dtype_policy, name="value"
        )
        self.output_projection = keras.layers.Dense(
            self.units, use_bias=False, dtype=self.dtype_policy, name="output_projection"
        )
        for dense in (self.query, self.key, self.value, self.output_projection):
            dense.build(level_shape)
        self.level_embeddings = self.add_weight(
            name="level_embeddings",
            shape=(self.num_levels, self.units),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )
        self.level_logits = self.add_weight(
            name="level_logits", shape=(self.num_levels,), initializer="zeros"
        )

    def _add_same_padding(self, size, factors, pooled):
        # "Same" pooling done explicitly (zero padding, valid pooling, then a
        # constant correction k_h k_w / #valid entries per window), so that
        # every backend averages border windows over their valid entries only:
        # the torch backend pads unevenly padded inputs by replicating edges.
        paddings = []
        for n, k, m in zip(size, factors, pooled):
            total = m * k - n
            paddings.append((total // 2, total - total // 2))
        self._paddings.append(tuple(paddings))
        if not any(before or after for before, after in paddings):
            self._count_corrections.append(None)
            return
        counts = []
        for n, k, m, (before, _) in zip(size, factors, pooled, paddings):
            starts = np.arange(m) * k - before
            counts.append(np.minimum(starts + k, n) - np.maximum(starts, 0))
        correction = factors[0] * factors[1] / np.outer(counts[0], counts[1])
        self._count_corrections.append(correction[None, :, :, None].astype("float32"))

    def _to_grid(self, level, feature_map, training):
        factors = self.pool_sizes[level]
        x = feature_map
        if factors != (1, 1):
            correction = self._count_corrections[level]
            if correction is not None:
                x = ops.pad(x, ((0, 0),) + self._paddings[level] + ((0, 0),))
            x = ops.average_pool(x, factors, strides=factors, padding="valid")
            if correction is not None:
                x = x * ops.cast(correction, x.dtype)
        x = self.projections[level](x)
        x = self.projection_norms[level](x, training=training)
        if self._pooled_sizes[level] != self.grid_size:
            x = ops.image.resize(x, self.grid_size, interpolation="bilinear")
        return ops.relu(x)

    def call(self, inputs, training=None):
        levels = [self._to_grid(s, f, training) for s, f in enumerate(inputs)]
        grid_h, grid_w = self.grid_size
        # Every position is an independent sequence of L level vectors; folding
        # positions into the batch keeps every product 4-D (LiteRT-friendly).
        p = ops.stack(levels, axis=3) + ops.cast(self.level_embeddings, self.compute_dtype)
        p = ops.reshape(p, (-1, self.num_levels, self.units))  # (B*H*W, L, d)
        q = self._split_heads(self.query(p))
        k = self._split_heads(self.key(p))
        v = self._split_heads(self.value(p))
        scale = 1.0 / math.sqrt(self.key_units / self.num_heads)
        # (M, h, L_query, L_key); softmax over key levels in float32.
        scores = ops.einsum("mhsc,mhtc->mhst", q, k)
        weights = ops.softmax(ops.cast(scores, "float32") * scale, axis=-1)
        r = ops.einsum("mhst,mhtc->mhsc", ops.cast(weights, self.compute_dtype), v)
        r = ops.reshape(ops.transpose(r, (0, 2, 1, 3)), (-1, self.num_levels, self.units))
        reconstructed = p + self.output_projection(r)
        beta = ops.cast(ops.softmax(ops.cast(self.level_logits, "float32")), self.compute_dtype)
        fused = ops.einsum("msc,s->mc", reconstructed, beta)
        return ops.reshape(fused, (-1, grid_h, grid_w, self.units))

    def _split_heads(self, x):
        # (M, L, c) -> (M, h, L, c / h)
        x = ops.reshape(x, (-1, self.num_levels, self.num_heads, x.shape[-1] // self.num_heads))
        return ops.transpose(x, (0, 2, 1, 3))

    def level_weights(self):
        """beta = softmax(b), the learned weight of each level (numpy)."""
        return ops.convert_to_numpy(ops.softmax(ops.cast(self.level_logits, "float32")))

    def compute_output_shape(self, input_shape):
        grid = input_shape[self.grid_index]
        return (grid[0], grid[1], grid[2], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "num_heads": self.num_heads,
                "key_units": self.key_units,
                "grid_index": self.grid_index,
            }
        )
        return config
