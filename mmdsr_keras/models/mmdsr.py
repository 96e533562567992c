"""`build_mmdsr`: the MMDSR multi-label classifier on a backbone, and its explainer."""

import keras

from mmdsr_keras.backbones.feature_extractor import build_feature_extractor
from mmdsr_keras.layers.channel_dual_branch_cross_attention import (
    ChannelDualBranchCrossAttention,
)
from mmdsr_keras.layers.cross_layer_attention import CrossLayerAttention
from mmdsr_keras.layers.dynamic_semantic_gcn import GRAPH_MODES, DynamicSemanticGCN
from mmdsr_keras.layers.graph_head_details import GraphHeadDetails
from mmdsr_keras.layers.labelled_logits import LabelledLogits

HEAD_LAYER = "semantic_graph"
OUTPUT_LAYER = "logits"


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
    """Conv1x1 + BN + ReLU to the working width (the single-stage ablation)."""
    x = keras.layers.Conv2D(units, 1, use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_norm")(x)
    return keras.layers.ReLU(name=name)(x)


def build_mmdsr(
    num_classes=None,
    class_names=None,
    backbone="resnet101",
    image_size=448,
    weights="imagenet",
    freeze_backbone=False,
    stages=None,
    units=None,
    node_units=None,
    num_heads=4,
    key_units=None,
    reduction=4,
    share_branches=True,
    num_perspectives=8,
    sparsity_threshold=0.0,
    prior_weight=0.5,
    trainable_prior_weight=False,
    global_weight=0.5,
    trainable_global_weight=False,
    label_prior=None,
    label_embeddings=None,
    label_density=0.05,
    cross_layer=True,
    dual_branch=True,
    graph="dynamic",
    preprocessing=None,
    name="mmdsr",
):
    """Builds MMDSR: backbone -> cross-layer attention -> dual-branch -> semantic graph.

    The model takes raw RGB pixels in [0, 255] (`(batch, H, W, 3)`, input named
    `"image"`; preprocessing is inside) and returns per-class logits
    `(batch, num_classes)`. See the three layers' docstrings for the equations.

    Args:
        num_classes: C (or give `class_names`).
        class_names: names of the C classes, stored in the model.
        backbone: registered name (`mmdsr_keras.available_backbones()`) or a
            `keras.Model` with `stages`. Defaults to `"resnet101"`.
        image_size: int or `(height, width)`. Defaults to 448.
        weights: `"imagenet"`, `None` or a local backbone weights file.
            Defaults to `"imagenet"`.
        freeze_backbone: train the head only. Defaults to False.
        stages: backbone layer names fused, shallow to deep. Defaults to the
            backbone's stride-8/16/32 outputs.
        units: working width d. Defaults to 512 (ResNet class) / 256 (mobile).
        node_units: graph node width d_v. Defaults to d.
        num_heads: cross-layer attention heads. Defaults to 4.
        key_units: query/key width d_qk. Defaults to d / 4.
        reduction: dual-branch reduction r. Defaults to 4.
        share_branches: reuse the branch weights in the cross step. Defaults
            to True.
        num_perspectives: K of the weighted cosine. Defaults to 8.
        sparsity_threshold: eps. Defaults to 0.
        prior_weight: lambda (static prior vs dynamic graph). Defaults to 0.5.
        trainable_prior_weight: learn lambda. Defaults to False.
        global_weight: alpha (class-map logits vs graph logits). Defaults to 0.5.
        trainable_global_weight: learn alpha. Defaults to False.
        label_prior: `(C, C)` static prior A0 (`ml_gcn_label_prior(train_labels)`).
        label_embeddings: `(C, e)` label word embeddings.
        label_density: mean label density pi (float) or `(C,)` class
            frequencies, setting the initial bias. Defaults to 0.05.
        cross_layer: use all stages (False: the last stage only).
        dual_branch: use the channel dual-branch cross-attention.
        graph: `"dynamic"`, `"static"` or `"none"`.
        preprocessing: override the backbone's `ImagePreprocessing` mode.
        name: model name.

    Returns:
        A functional `keras.Model`.

    Example:
    >>> model = build_mmdsr(num_classes=3, backbone="mobilenet_0.25",
    ...                     image_size=64, weights=None, units=32)
    >>> model.output_shape
    (None, 3)
    """
    class_names = resolve_class_names(num_classes, class_names)
    if graph not in GRAPH_MODES:
        raise ValueError(f"graph={graph!r}; expected one of {GRAPH_MODES}.")
    inputs, features, info = build_feature_extractor(
        backbone, image_size, weights=weights, stages=stages,
        freeze_backbone=freeze_backbone, preprocessing=preprocessing,
    )
    units = units or info["default_units"]
    if cross_layer and len(features) > 1:
        x = CrossLayerAttention(
            units, num_heads=num_heads, key_units=key_units,
            grid_index=len(features) // 2, name="cross_layer_attention",
        )(features)
    else:
        x = project_stage(features[-1], units, name="last_stage_projection")
    if dual_branch:
        x = ChannelDualBranchCrossAttention(
            reduction=reduction, share_branches=share_branches, name="dual_branch"
        )(x)
    logits = DynamicSemanticGCN(
        num_classes=len(class_names),
        node_units=node_units,
        num_perspectives=num_perspectives,
        sparsity_threshold=sparsity_threshold,
        prior_weight=prior_weight,
        trainable_prior_weight=trainable_prior_weight,
        global_weight=global_weight,
        trainable_global_weight=trainable_global_weight,
        graph_mode=graph,
        label_prior=label_prior,
        label_embeddings=label_embeddings,
        label_density=label_density,
        name=HEAD_LAYER,
    )(x)
    outputs = LabelledLogits(class_names, name=OUTPUT_LAYER)(logits)
    return keras.Model(inputs, outputs, name=name)


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
    >>> model = build_mmdsr(num_classes=3, backbone="mobilenet_0.25",
    ...                     image_size=64, weights=None, units=32)
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
    >>> model = build_mmdsr(num_classes=3, backbone="mobilenet_0.25",
    ...                     image_size=64, weights=None, units=32)
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
