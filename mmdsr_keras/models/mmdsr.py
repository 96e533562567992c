"""MMDSR's head on stage features, and the views of a built model (explainer, deep supervision)."""

import keras

from mmdsr_keras.layers.channel_dual_branch_cross_attention import (
    ChannelDualBranchCrossAttention,
)
from mmdsr_keras.layers.cross_layer_attention import CrossLayerAttention
from mmdsr_keras.layers.dynamic_semantic_gcn import GRAPH_MODES, DynamicSemanticGCN
from mmdsr_keras.layers.graph_head_details import GraphHeadDetails
from mmdsr_keras.layers.labelled_logits import LabelledLogits

HEAD_LAYER = "semantic_graph"
OUTPUT_LAYER = "logits"
GLOBAL_LINEAR_LAYER = "global_linear"


def resolve_class_names(num_classes, class_names):
    """Checks `num_classes` against `class_names`; invents names when absent."""
    if class_names is not None:
        class_names = [str(n) for n in class_names]
        if num_classes is not None and num_classes != len(class_names):
            raise ValueError(
                f"num_classes={num_classes} but {len(class_names)} class_names were given."
            )
        return class_names
    if not num_classes or num_classes < 1:
        raise ValueError("Give num_classes (a positive int) or class_names.")
    return [f"class_{i}" for i in range(num_classes)]


def project_stage(x, units, name):
    """Conv1x1 + BN + ReLU to the working width (the single-stage ablation).

    Returns:
        `(output, conv)`: the projected map and the Conv2D layer.
    """
    conv = keras.layers.Conv2D(units, 1, use_bias=False, name=f"{name}_conv")
    x = keras.layers.BatchNormalization(name=f"{name}_norm")(conv(x))
    return keras.layers.ReLU(name=name)(x), conv


def standardized_linear(pooled, num_classes, l2, name, kernel_initializer="glorot_uniform",
                        dtype=None):
    """Dense(C) on per-channel standardised features with an L2 penalty: a linear probe's fit.

    logits = W^T (x - mu) / sigma + b, and the training loss gains
    l2 * sum(W^2). mu and sigma^2 are the non-trainable statistics of the
    `Normalization` layer `{name}_standardization` (identity until
    `fit_feature_standardization` sets them from the training images); the
    bias is not penalised. Strong L2 on standardised features is what makes a
    logistic-regression probe beat heads trained with AdamW on small data.

    Args:
        pooled: the `(batch, channels)` pooled features.
        num_classes: C.
        l2: the penalty coefficient (0 disables the standardisation too).
        name: the Dense layer's name.
        kernel_initializer: the Dense kernel's initializer.
        dtype: the Dense layer's dtype policy (None: the global policy).

    Returns:
        The `(batch, C)` logits.

    Example:
    >>> logits = standardized_linear(keras.Input((16,)), 3, l2=5e-3, name="classifier")
    >>> logits.shape
    (None, 3)
    """
    if l2:
        pooled = keras.layers.Normalization(axis=-1, dtype="float32",
                                            name=f"{name}_standardization")(pooled)
    return keras.layers.Dense(
        num_classes, kernel_initializer=kernel_initializer, dtype=dtype,
        kernel_regularizer=keras.regularizers.L2(l2) if l2 else None, name=name,
    )(pooled)


def global_pool(x, pooling):
    """Pools a `(B, h, w, c)` map for the global linear path: `(B, c)`, or `(B, 2c)` for both.

    `"average"`: mean over positions; `"max"`: max over positions;
    `"average_max"`: both, concatenated [mean, max].

    Example:
    >>> global_pool(keras.Input((4, 4, 8)), "average_max").shape
    (None, 16)
    """
    pools = []
    if pooling in ("average", "average_max"):
        pools.append(keras.layers.GlobalAveragePooling2D(dtype="float32",
                                                         name="global_linear_pool")(x))
    if pooling in ("max", "average_max"):
        pools.append(keras.layers.GlobalMaxPooling2D(dtype="float32",
                                                     name="global_linear_max_pool")(x))
    if len(pools) == 1:
        return pools[0]
    return keras.layers.Concatenate(dtype="float32", name="global_linear_pools")(pools)


def channel_dropout(x, rate, name):
    """Dropout of whole channels of a `(B, h, w, d)` map: one mask per image and channel.

    On a map that is pooled next, this is what dropout after pooling is, the
    place keras.applications puts its `top_dropout`.
    """
    return keras.layers.Dropout(rate, noise_shape=(None, 1, 1, x.shape[-1]), name=name)(x)


MMDSR_HEAD_DEFAULTS = dict(
    units=None, node_units=None, num_heads=4, key_units=None, reduction=4,
    share_branches=True, num_perspectives=8, sparsity_threshold=0.0, prior_weight=0.5,
    trainable_prior_weight=False, global_weight=0.5, trainable_global_weight=False,
    label_density=0.05, cross_layer=True, dual_branch=True, graph="dynamic",
    global_linear=False, global_pooling="average", dropout=0.0, linear_l2=0.0, head_l2=0.0,
    score_calibration=False,
)

# How the global linear path pools the deepest stage: the GAP probe's view,
# the GMP baseline's, or both side by side (2x the channels).
GLOBAL_POOLINGS = ("average", "max", "average_max")

# The K perspective vectors only set directions of a cosine, which a penalty
# on their norm would not regularise.
UNPENALISED_WEIGHTS = ("perspectives",)


def penalize_head_kernels(layers, l2):
    """Adds `l2 * sum(W^2)` to the training loss for every kernel W of `layers`.

    Every trainable weight with two or more axes (dense and 1x1-conv kernels,
    the level embeddings, the graph's kernels) is penalised; biases,
    BatchNorm parameters, scalars and the perspective vectors are not. The
    penalty is set on the variables, so it reaches `model.losses` of every
    model that holds the layers (the head-only model of the frozen phase too).

    Args:
        layers: built Keras layers.
        l2: the coefficient (> 0).

    Returns:
        The list of penalised variables.

    Example:
    >>> layer = keras.layers.Dense(2)
    >>> layer.build((None, 3))
    >>> [v.name for v in penalize_head_kernels([layer], 1e-3)]
    ['kernel']
    """
    penalised = []
    for layer in layers:
        for variable in layer.trainable_weights:
            if len(variable.shape) < 2 or variable.name in UNPENALISED_WEIGHTS:
                continue
            variable.regularizer = keras.regularizers.L2(l2)
            penalised.append(variable)
    return penalised



def mmdsr_head(features, class_names, default_units=512, label_prior=None,
               label_embeddings=None, **head_args):
    """MMDSR's head on stage feature tensors: cross-layer attention -> dual-branch -> graph.

    Args:
        features: the backbone's stage tensors, shallow to deep.
        class_names: the C class names (stored by the `LabelledLogits` output).
        default_units: the working width d when `units` is None.
        label_prior: `(C, C)` static prior A0 (`ml_gcn_label_prior(train_labels)`).
        label_embeddings: `(C, e)` label word embeddings.
        **head_args: the keys of `MMDSR_HEAD_DEFAULTS` (see
            `MMDSRImageClassifier`).

    Returns:
        The `(batch, C)` logits tensor, output of the layer named `"logits"`.

    Example:
    >>> features = [keras.Input((8, 8, 16)), keras.Input((4, 4, 32))]
    >>> mmdsr_head(features, ["cat", "dog"], units=16, num_heads=2).shape
    (None, 2)
    """
    unknown = set(head_args) - set(MMDSR_HEAD_DEFAULTS)
    if unknown:
        raise TypeError(f"mmdsr_head got unknown argument(s) {sorted(unknown)}.")
    args = {**MMDSR_HEAD_DEFAULTS, **head_args}
    if args["graph"] not in GRAPH_MODES:
        raise ValueError(f"graph={args['graph']!r}; expected one of {GRAPH_MODES}.")
    if args["global_pooling"] not in GLOBAL_POOLINGS:
        raise ValueError(f"global_pooling={args['global_pooling']!r}; expected one of "
                         f"{GLOBAL_POOLINGS}.")
    units = args["units"] or default_units
    head_layers = []
    if args["cross_layer"] and len(features) > 1:
        head_layers.append(CrossLayerAttention(
            units, num_heads=args["num_heads"], key_units=args["key_units"],
            grid_index=len(features) // 2, name="cross_layer_attention",
        ))
        x = head_layers[-1](features)
    else:
        x, conv = project_stage(features[-1], units, name="last_stage_projection")
        head_layers.append(conv)
    if args["dual_branch"]:
        head_layers.append(ChannelDualBranchCrossAttention(
            reduction=args["reduction"], share_branches=args["share_branches"],
            name="dual_branch",
        ))
        x = head_layers[-1](x)
    if args["dropout"]:
        x = channel_dropout(x, args["dropout"], name="head_dropout")
    head_layers.append(DynamicSemanticGCN(
        num_classes=len(class_names),
        node_units=args["node_units"],
        num_perspectives=args["num_perspectives"],
        sparsity_threshold=args["sparsity_threshold"],
        prior_weight=args["prior_weight"],
        trainable_prior_weight=args["trainable_prior_weight"],
        global_weight=args["global_weight"],
        trainable_global_weight=args["trainable_global_weight"],
        graph_mode=args["graph"],
        label_prior=label_prior,
        label_embeddings=label_embeddings,
        label_density=args["label_density"],
        name=HEAD_LAYER,
    ))
    logits = head_layers[-1](x)
    if args["head_l2"]:
        penalize_head_kernels(head_layers, args["head_l2"])
    if args["global_linear"]:
        # A design variant, not MMDSR: a linear classifier on the deepest
        # stage's pooled features beside the graph logits, the path a linear
        # probe shows to be strong on small data. Zero-initialised, so the
        # head starts as plain MMDSR.
        pooled = global_pool(features[-1], args["global_pooling"])
        if args["dropout"]:
            pooled = keras.layers.Dropout(args["dropout"], name="global_linear_dropout")(pooled)
        linear = standardized_linear(pooled, len(class_names), args["linear_l2"],
                                     name=GLOBAL_LINEAR_LAYER, kernel_initializer="zeros",
                                     dtype="float32")
        logits = keras.layers.Add(dtype="float32", name="global_linear_sum")([logits, linear])
    return LabelledLogits(class_names, calibration=args["score_calibration"],
                          name=OUTPUT_LAYER)(logits)


def class_names_of(model):
    """The class names stored in a model built by this package."""
    return list(model.get_layer(OUTPUT_LAYER).class_names)


def build_explainer(model):
    """A model giving, per image, logits and what the graph head saw.

    Outputs a dict: `logits` `(B, C)`, `class_attention` `(B, h, w, C)` (the
    spatial softmax alpha_c on the working grid), `adjacency` `(B, C, C)` (the
    per-image A_b), `global_logits` (s_m) and `graph_logits` (s_r). It is a
    second output path through the model's own graph head
    (`GraphHeadDetails`), so it shares every weight with `model` and stays
    current as `model` trains on.

    Example:
    >>> import mmdsr_keras
    >>> model = mmdsr_keras.build_mmdsr(num_classes=3, backbone="mobilenet_0.25",
    ...                                 image_size=64, weights=None, units=32)
    >>> sorted(build_explainer(model).output.keys())[:2]
    ['adjacency', 'class_attention']
    """
    head = _graph_head(model)
    outputs = GraphHeadDetails(head, name=f"{HEAD_LAYER}_details")(head.input)
    names = ("logits", "class_attention", "adjacency", "global_logits", "graph_logits")
    return keras.Model(model.inputs, dict(zip(names, outputs)), name=f"{model.name}_explainer")


def _graph_head(model):
    try:
        return model.get_layer(HEAD_LAYER)
    except ValueError:
        raise ValueError(
            f"model {model.name!r} has no {HEAD_LAYER!r} layer: only MMDSR models "
            "(mmdsr_keras.build_mmdsr) have a semantic graph head."
        ) from None


def build_deep_supervision_model(model, inputs=None):
    """`model` with its three scores stacked: `(B, 3, C)` = [logits, s_m, s_r].

    The training view of deep supervision (design section 3.6): only the blend
    alpha s_m + (1 - alpha) s_r is otherwise supervised, so a loss on all three
    (`DeepSupervisionLoss`) trains the class maps and the graph path directly.
    Shares every weight with `model`.

    Args:
        model: an MMDSR model.
        inputs: the model's input tensors to start from. Defaults to
            `model.inputs`; the stage feature tensors give the head alone.

    Example:
    >>> import mmdsr_keras
    >>> model = mmdsr_keras.build_mmdsr(num_classes=3, backbone="mobilenet_0.25",
    ...                                 image_size=64, weights=None, units=32)
    >>> build_deep_supervision_model(model).output_shape
    (None, 3, 3)
    """
    head = _graph_head(model)
    logits, _, _, global_logits, graph_logits = GraphHeadDetails(
        head, name=f"{HEAD_LAYER}_scores")(head.input)
    stacked = keras.layers.Lambda(
        lambda scores: keras.ops.stack(scores, axis=1), name="stacked_scores"
    )([logits, global_logits, graph_logits])
    return keras.Model(model.inputs if inputs is None else inputs, stacked,
                       name=f"{model.name}_deep_supervision")
