"""Per-image semantic graph over category-specific features, propagated by a GCN."""

import keras
import numpy as np
from keras import ops

from mmdsr_keras.label_prior import row_normalize
from mmdsr_keras.layers.config_version import CONFIG_VERSION_KEY, pop_config_version
from mmdsr_keras.layers.weighted_cosine import (
    multi_perspective_cosine,
    sparse_row_normalized_adjacency,
)

GRAPH_MODES = ("dynamic", "static", "none")
LEAKY_SLOPE = 0.2
# 1: unversioned, `label_prior` (raw, row-normalised at build) and
#    `label_embeddings` stored as lists in the config;
# 2: both kept in the weights only, the config holding `label_embedding_dim`.
CONFIG_VERSION = 2


def _logit(p):
    p = np.clip(np.asarray(p, dtype="float64"), 1e-4, 1.0 - 1e-4)
    return np.log(p / (1.0 - p))


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class DynamicSemanticGCN(keras.layers.Layer):
    """Dynamic semantic graph head: class maps, per-image graph, GCN, score fusion.

    On the fused feature map Z (N = H x W positions):

    1. Category-specific nodes. Class maps A = Conv1x1_C(Z) (bias initialised
       to logit(pi), pi the label density); global logits s_m = max_p A(p);
       alpha_c = softmax_p(A_c / T) with learned temperature (log T = 0 at
       start); v_c = sum_p alpha_c(p) (Z W_v)(p); optionally V <- V + E W_e for
       label word embeddings E.
    2. Multi-perspective weighted cosine on centred nodes V~ = V - mean_c V
       (without centring every v_c starts as the same global average and all
       cosines are ~1):
       S(i, j) = (1/K) sum_k <n(w_k * v~_i), n(w_k * v~_j)>,
       n(x) = x / sqrt(|x|^2 + 1e-12),
       S' = max(S, 0) * 1[S > eps],  A^ = (S' + 1e-6 I) / (rowsum(S') + 1e-6).
       The design writes A^ = S' / (rowsum(S') + 1e-6); the extra 1e-6 on the
       diagonal (see `sparse_row_normalized_adjacency`) makes every row sum to
       exactly 1 and turns a row with nothing kept (a node that is zero in
       every perspective, e.g. every node of an image whose category features
       coincide) into the identity row instead of a zero row, which would
       otherwise leave that row of A_b summing to lambda.
    3. Blend with the row-normalised static prior A0 (identity when none):
       A_b = lambda A0 + (1 - lambda) A^, so every row of A_b sums to 1.
    4. Two GCN layers with residual:
       H1 = LReLU(A_b V~ W1),  H = V + LReLU(A_b H1 W2)  (slope 0.2).
    5. Graph logits s_r(c) = <u_c, H(c)> + b_c.
    6. Logits = alpha s_m + (1 - alpha) s_r.

    `graph_mode="static"` uses A_b = A0 (an ML-GCN-like fixed graph on the same
    nodes); `"none"` skips propagation (H = V), the ablation without a graph.

    The prior is used row-normalised, A0 = D^-1 label_prior (a row without
    mass becomes the identity row). That is a no-op on the default output of
    `mmdsr_keras.label_prior.ml_gcn_label_prior` (`normalization="row"`), the
    prior to pass here; a symmetric-normalised prior (ML-GCN's, for
    `StaticGraphClassifier`) would be re-normalised into a different graph.

    Precision: the layer's dtype defaults to float32 whatever the global
    policy (it produces the final logits). Any other dtype (`"float16"`,
    `"bfloat16"`, `"mixed_float16"`, `"mixed_bfloat16"`, ...) is accepted: the
    two per-position projections Z W_A + b and Z W_v (the only work that
    grows with N) then run in the layer's compute dtype with its variable
    dtype, and everything from the class-map softmax on (alpha, V, V~, S, A^,
    A_b, the GCN, s_m, s_r and their blend) runs in float32 on float32
    weights, as the design requires (in bfloat16 the cosine's rounding error
    exceeds the spread of S). Every output is float32 (the float32 results
    themselves: logits are what the loss wants in float32 anyway).

    Args:
        num_classes: C.
        node_units: node width d_v. Defaults to the input width d.
        num_perspectives: K. Defaults to 8.
        sparsity_threshold: eps in [0, 1). Defaults to 0.
        prior_weight: lambda in [0, 1]. Defaults to 0.5.
        trainable_prior_weight: learn lambda as sigmoid of a scalar initialised
            at logit(prior_weight). Defaults to False.
        global_weight: alpha in [0, 1]. Defaults to 0.5.
        trainable_global_weight: learn alpha likewise. Defaults to False.
        graph_mode: `"dynamic"`, `"static"` or `"none"`. Defaults to
            `"dynamic"`.
        label_prior: optional `(C, C)` non-negative static prior (e.g.
            `mmdsr_keras.label_prior.ml_gcn_label_prior(train_labels)`);
            row-normalised here into A0 (see above), the initial value of
            the non-trainable weight `prior` (identity when None). Not part
            of the config: a saved model carries A0 in its weights.
        label_embeddings: optional `(C, e)` label word embeddings E, the
            initial value of the non-trainable weight `label_embeddings`.
            Not part of the config either, which records only e.
        label_density: pi, a float or a `(C,)` array of class frequencies.
            Defaults to 0.05.
        return_details: return the tuple `(logits, class_attention
            (batch, H, W, C), adjacency (batch, C, C), global_logits (batch,
            C), graph_logits (batch, C))` instead of the logits alone (a
            constructor argument because a Keras layer has one output
            structure; `GraphHeadDetails` gives the details of an existing
            head as a second layer sharing its weights). Defaults to False.
        label_embedding_dim: e, for a layer whose E comes from saved weights
            (what `from_config` passes); E is zero until they are loaded.
            Inferred from `label_embeddings` when given. Defaults to None
            (no embeddings).
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(batch, H, W, d)`.

    Example:
    >>> import numpy as np
    >>> head = DynamicSemanticGCN(num_classes=5, num_perspectives=2)
    >>> tuple(head(np.random.rand(2, 4, 4, 8)).shape)
    (2, 5)
    >>> _, _, adjacency, _, _ = DynamicSemanticGCN(5, return_details=True)(
    ...     np.zeros((2, 4, 4, 8)))  # all nodes coincide: A^ = I
    >>> np.allclose(np.asarray(adjacency).sum(-1), 1.0)
    True
    >>> config = DynamicSemanticGCN(3, label_embeddings=np.ones((3, 300))).get_config()
    >>> "label_embeddings" in config, config["label_embedding_dim"], config["config_version"]
    (False, 300, 2)
    """

    def __init__(
        self,
        num_classes,
        node_units=None,
        num_perspectives=8,
        sparsity_threshold=0.0,
        prior_weight=0.5,
        trainable_prior_weight=False,
        global_weight=0.5,
        trainable_global_weight=False,
        graph_mode="dynamic",
        label_prior=None,
        label_embeddings=None,
        label_density=0.05,
        return_details=False,
        label_embedding_dim=None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if graph_mode not in GRAPH_MODES:
            raise ValueError(
                f"DynamicSemanticGCN: graph_mode={graph_mode!r}; expected one of {GRAPH_MODES}."
            )
        if not 0.0 <= sparsity_threshold < 1.0:
            raise ValueError(
                f"DynamicSemanticGCN: sparsity_threshold must be in [0, 1), got {sparsity_threshold}."
            )
        for name, value in (("prior_weight", prior_weight), ("global_weight", global_weight)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"DynamicSemanticGCN: {name} must be in [0, 1], got {value}.")
        if label_prior is not None:
            shape = np.shape(label_prior)
            if shape != (num_classes, num_classes):
                raise ValueError(
                    f"label_prior has shape {shape}; expected (num_classes, num_classes) = "
                    f"({num_classes}, {num_classes})."
                )
        if label_embeddings is not None:
            shape = np.shape(label_embeddings)
            if len(shape) != 2 or shape[0] != num_classes:
                raise ValueError(
                    f"label_embeddings has shape {shape}; expected (num_classes, embedding_dim) "
                    f"= ({num_classes}, e)."
                )
            if label_embedding_dim is not None and label_embedding_dim != shape[1]:
                raise ValueError(
                    f"DynamicSemanticGCN: label_embedding_dim={label_embedding_dim} but "
                    f"label_embeddings has width {shape[1]}."
                )
            label_embedding_dim = int(shape[1])
        if label_embedding_dim is not None and (
                isinstance(label_embedding_dim, bool) or int(label_embedding_dim) != label_embedding_dim
                or label_embedding_dim < 1):
            raise ValueError(
                f"DynamicSemanticGCN: label_embedding_dim must be a positive int or None, got "
                f"{label_embedding_dim!r}."
            )
        density = np.asarray(label_density, dtype="float64")
        if density.shape not in ((), (num_classes,)):
            raise ValueError(
                f"label_density has shape {density.shape}; expected a float or ({num_classes},)."
            )
        self.num_classes = num_classes
        self.node_units = node_units
        self.num_perspectives = num_perspectives
        self.sparsity_threshold = float(sparsity_threshold)
        self.prior_weight = float(prior_weight)
        self.trainable_prior_weight = trainable_prior_weight
        self.global_weight = float(global_weight)
        self.trainable_global_weight = trainable_global_weight
        self.graph_mode = graph_mode
        self.label_density = density.tolist()
        self.return_details = return_details
        self.label_embedding_dim = None if label_embedding_dim is None else int(label_embedding_dim)
        # Initial values of the `prior` and `label_embeddings` weights, used
        # by `build` only: afterwards the weights are the truth (and may have
        # been loaded from a file), so these are dropped.
        self._initial_prior = (None if label_prior is None
                               else row_normalize(label_prior).astype("float32"))
        self._initial_embeddings = (None if label_embeddings is None
                                    else np.asarray(label_embeddings, dtype="float32"))

    def _float32_weight(self, name, shape, initializer, trainable=True):
        # Weights of the float32 part: stored and read in float32 whatever the
        # layer's dtype (autocast off, so that a mixed policy does not hand
        # them out in its compute dtype).
        return self.add_weight(
            name=name, shape=shape, initializer=initializer, trainable=trainable,
            dtype="float32", autocast=False,
        )

    def build(self, input_shape):
        d = int(input_shape[-1])
        dv = self.node_units or d
        c = self.num_classes
        glorot = keras.initializers.GlorotUniform
        constant = keras.initializers.Constant
        class_bias = np.broadcast_to(_logit(self.label_density), (c,)).astype("float32")
        # Per-position projections: the layer's own dtype policy.
        self.class_kernel = self.add_weight(name="class_kernel", shape=(d, c), initializer=glorot())
        self.class_bias = self.add_weight(
            name="class_bias", shape=(c,), initializer=constant(class_bias)
        )
        self.value_kernel = self.add_weight(name="value_kernel", shape=(d, dv), initializer=glorot())
        # Everything else: float32.
        self.log_temperature = self._float32_weight("log_temperature", (), "zeros")
        if self.label_embedding_dim is not None:
            e = self.label_embedding_dim
            self.embeddings = self._float32_weight(
                "label_embeddings", (c, e),
                "zeros" if self._initial_embeddings is None else constant(self._initial_embeddings),
                trainable=False,
            )
            self.embedding_kernel = self._float32_weight("embedding_kernel", (e, dv), glorot())
        prior = np.eye(c, dtype="float32") if self._initial_prior is None else self._initial_prior
        self.prior = self._float32_weight("prior", (c, c), constant(prior), trainable=False)
        self._initial_prior = self._initial_embeddings = None
        if self.graph_mode == "dynamic":
            self.perspectives = self._float32_weight(
                "perspectives", (self.num_perspectives, dv), glorot()
            )
        if self.graph_mode != "none":
            self.gcn_kernel_1 = self._float32_weight("gcn_kernel_1", (dv, dv), glorot())
            self.gcn_kernel_2 = self._float32_weight("gcn_kernel_2", (dv, dv), glorot())
        self.graph_kernel = self._float32_weight("graph_kernel", (c, dv), glorot())
        self.graph_bias = self._float32_weight("graph_bias", (c,), constant(class_bias))
        if self.trainable_prior_weight:
            self.prior_weight_logit = self._float32_weight(
                "prior_weight_logit", (), constant(float(_logit(self.prior_weight)))
            )
        if self.trainable_global_weight:
            self.global_weight_logit = self._float32_weight(
                "global_weight_logit", (), constant(float(_logit(self.global_weight)))
            )

    def blend_weights(self):
        """The (lambda, alpha) in use, as float32 tensors."""
        lam = (ops.sigmoid(self.prior_weight_logit) if self.trainable_prior_weight
               else ops.convert_to_tensor(self.prior_weight, "float32"))
        alpha = (ops.sigmoid(self.global_weight_logit) if self.trainable_global_weight
                 else ops.convert_to_tensor(self.global_weight, "float32"))
        return lam, alpha

    def call(self, inputs):
        outputs = self.details(inputs)
        return outputs if self.return_details else outputs[0]

    def details(self, inputs):
        """`(logits, class_attention, adjacency, global_logits, graph_logits)`."""
        height, width = inputs.shape[1], inputs.shape[2]
        z = ops.cast(inputs, self.compute_dtype)
        z = ops.reshape(z, (-1, height * width, z.shape[-1]))
        # The two per-position projections, in the compute dtype ...
        class_maps = ops.matmul(z, self.class_kernel) + self.class_bias  # (B, N, C)
        values = ops.matmul(z, self.value_kernel)  # (B, N, dv)
        # ... and the rest in float32.
        class_maps = ops.cast(class_maps, "float32")
        values = ops.cast(values, "float32")
        global_logits = ops.max(class_maps, axis=1)
        attention = ops.softmax(class_maps / ops.exp(self.log_temperature), axis=1)
        nodes = ops.einsum("bnc,bnv->bcv", attention, values)
        if self.label_embedding_dim is not None:
            nodes = nodes + ops.matmul(self.embeddings, self.embedding_kernel)
        centred = nodes - ops.mean(nodes, axis=1, keepdims=True)
        lam, alpha = self.blend_weights()
        if self.graph_mode == "dynamic":
            similarity = multi_perspective_cosine(centred, self.perspectives)
            dynamic = sparse_row_normalized_adjacency(similarity, self.sparsity_threshold)
            adjacency = lam * self.prior + (1.0 - lam) * dynamic
        else:
            adjacency = ops.broadcast_to(
                self.prior, (ops.shape(nodes)[0], self.num_classes, self.num_classes)
            )
        if self.graph_mode == "none":
            hidden = nodes
        else:
            h1 = ops.leaky_relu(
                ops.matmul(ops.matmul(adjacency, centred), self.gcn_kernel_1), LEAKY_SLOPE
            )
            hidden = nodes + ops.leaky_relu(
                ops.matmul(ops.matmul(adjacency, h1), self.gcn_kernel_2), LEAKY_SLOPE
            )
        graph_logits = ops.sum(hidden * self.graph_kernel, axis=-1) + self.graph_bias
        logits = alpha * global_logits + (1.0 - alpha) * graph_logits
        attention = ops.reshape(attention, (-1, height, width, self.num_classes))
        return logits, attention, adjacency, global_logits, graph_logits

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "node_units": self.node_units,
                "num_perspectives": self.num_perspectives,
                "sparsity_threshold": self.sparsity_threshold,
                "prior_weight": self.prior_weight,
                "trainable_prior_weight": self.trainable_prior_weight,
                "global_weight": self.global_weight,
                "trainable_global_weight": self.trainable_global_weight,
                "graph_mode": self.graph_mode,
                "label_density": self.label_density,
                "return_details": self.return_details,
                "label_embedding_dim": self.label_embedding_dim,
                CONFIG_VERSION_KEY: CONFIG_VERSION,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        pop_config_version(cls.__name__, config, CONFIG_VERSION)
        # A version-1 config holds `label_prior` and `label_embeddings` as
        # lists with exactly the constructor's meaning (every version so far
        # stored the prior as given and row-normalised it at build), so both
        # versions are constructor arguments as they stand.
        return super().from_config(config)

    def load_own_variables(self, store):
        # The first release created log_temperature before value_kernel, and
        # its adjacency left an all-cut row at zero instead of the identity
        # row: this code cannot compute what such a file's model computed.
        if "2" in store and len(np.shape(store["2"])) == 0:
            raise ValueError(
                f"DynamicSemanticGCN {self.name!r}: the saved weights are in the layout of "
                "the first mmdsr_keras release (weight 2 is the scalar 'log_temperature', not "
                "'value_kernel'), whose graph differs from this version's; retrain the model, "
                "or load it with the release that saved it."
            )
        super().load_own_variables(store)
