"""Baseline heads on the same backbones, for ablations and benchmarks."""

import keras

from mmdsr_keras.backbones.feature_extractor import build_feature_extractor
from mmdsr_keras.layers.labelled_logits import LabelledLogits
from mmdsr_keras.layers.static_graph_classifier import StaticGraphClassifier
from mmdsr_keras.models.mmdsr import OUTPUT_LAYER, resolve_class_names

BASELINE_HEADS = ("gap", "gmp", "mlgcn")


def build_baseline(
    head="gap",
    num_classes=None,
    class_names=None,
    backbone="resnet101",
    image_size=448,
    weights="imagenet",
    freeze_backbone=False,
    stages=None,
    label_prior=None,
    label_embeddings=None,
    hidden_units=1024,
    preprocessing=None,
    name=None,
):
    """A plain multi-label head on the backbone's last stage.

    - `"gap"`: global average pooling + Dense(C) (the usual floor);
    - `"gmp"`: global max pooling + Dense(C) (the ResNet-101 baseline of the
      ML-GCN and ADD-GCN papers);
    - `"mlgcn"`: global max pooling + ML-GCN's static-graph classifier
      (`StaticGraphClassifier` on `label_prior`, `label_embeddings`).

    Takes raw RGB pixels in [0, 255] like `build_mmdsr`.

    Args:
        head: one of `"gap"`, `"gmp"`, `"mlgcn"`. Defaults to `"gap"`.
        num_classes, class_names, backbone, image_size, weights,
        freeze_backbone, stages, preprocessing: as in `build_mmdsr` (only the
            last stage is used).
        label_prior: `(C, C)` symmetric-normalised A0 for `"mlgcn"`.
        label_embeddings: `(C, e)` label embeddings for `"mlgcn"` (one-hot
            when None).
        hidden_units: first GCN width of `"mlgcn"`. Defaults to 1024.
        name: model name. Defaults to `"baseline_<head>"`.

    Example:
    >>> model = build_baseline("gmp", num_classes=4, backbone="mobilenet_0.25",
    ...                        image_size=64, weights=None)
    >>> model.output_shape
    (None, 4)
    """
    if head not in BASELINE_HEADS:
        raise ValueError(f"head={head!r}; expected one of {BASELINE_HEADS}.")
    class_names = resolve_class_names(num_classes, class_names)
    inputs, features, _ = build_feature_extractor(
        backbone, image_size, weights=weights, stages=stages,
        freeze_backbone=freeze_backbone, preprocessing=preprocessing,
    )
    last = features[-1]
    if head == "gap":
        pooled = keras.layers.GlobalAveragePooling2D(name="gap")(last)
    else:
        pooled = keras.layers.GlobalMaxPooling2D(name="gmp")(last)
    if head == "mlgcn":
        logits = StaticGraphClassifier(
            len(class_names), hidden_units=hidden_units, label_prior=label_prior,
            label_embeddings=label_embeddings, name="static_graph",
        )(pooled)
    else:
        logits = keras.layers.Dense(len(class_names), name="classifier")(pooled)
    outputs = LabelledLogits(class_names, name=OUTPUT_LAYER)(logits)
    return keras.Model(inputs, outputs, name=name or f"baseline_{head}")
