"""Baseline heads on the same backbones' last stage, for ablations and benchmarks."""

import keras

from mmdsr_keras.layers.labelled_logits import LabelledLogits
from mmdsr_keras.layers.static_graph_classifier import StaticGraphClassifier
from mmdsr_keras.models.mmdsr import OUTPUT_LAYER, penalize_head_kernels, standardized_linear

BASELINE_HEADS = ("gap", "gmp", "mlgcn")


def baseline_head(features, class_names, head="gap", label_prior=None, label_embeddings=None,
                  hidden_units=1024, dropout=0.0, linear_l2=0.0, score_calibration=False):
    """A plain multi-label head on the last stage tensor.

    - `"gap"`: global average pooling + Dense(C) (the usual floor);
    - `"gmp"`: global max pooling + Dense(C) (the ResNet-101 baseline of the
      ML-GCN and ADD-GCN papers);
    - `"mlgcn"`: global max pooling + ML-GCN's static-graph classifier
      (`StaticGraphClassifier` on `label_prior`, `label_embeddings`).

    Args:
        features: the backbone's stage tensors (only the last is used).
        class_names: the C class names.
        head: one of `"gap"`, `"gmp"`, `"mlgcn"`. Defaults to `"gap"`.
        label_prior: `(C, C)` symmetric-normalised A0 for `"mlgcn"`.
        label_embeddings: `(C, e)` label embeddings for `"mlgcn"` (one-hot
            when None).
        hidden_units: first GCN width of `"mlgcn"`. Defaults to 1024.
        dropout: dropout rate on the pooled features (keras.applications'
            `top_dropout`). Defaults to 0.0.
        linear_l2: L2 coefficient of the classifier on standardised pooled
            features: `"gap"`/`"gmp"`: of the Dense kernel
            (`standardized_linear`); `"mlgcn"`: of the GCN's kernels W1 and
            W2 (`penalize_head_kernels`), which make the classifiers. 0
            disables both penalty and standardisation. Defaults to 0.0.
        score_calibration: give the output layer a per-class scale and bias
            (`LabelledLogits(calibration=True)`, identity until fitted by
            `fit_score_calibration`). Defaults to False.

    Returns:
        The `(batch, C)` logits tensor, output of the layer named `"logits"`.

    Example:
    >>> baseline_head([keras.Input((4, 4, 8))], ["cat", "dog"], head="gmp").shape
    (None, 2)
    """
    if head not in BASELINE_HEADS:
        raise ValueError(f"head={head!r}; expected one of {BASELINE_HEADS}.")
    last = features[-1]
    if head == "gap":
        pooled = keras.layers.GlobalAveragePooling2D(name="gap")(last)
    else:
        pooled = keras.layers.GlobalMaxPooling2D(name="gmp")(last)
    if dropout:
        pooled = keras.layers.Dropout(dropout, name="head_dropout")(pooled)
    if head == "mlgcn":
        if linear_l2:
            # The name's suffix is what `fit_feature_standardization` looks for.
            pooled = keras.layers.Normalization(axis=-1, dtype="float32",
                                                name="static_graph_standardization")(pooled)
        classifier = StaticGraphClassifier(
            len(class_names), hidden_units=hidden_units, label_prior=label_prior,
            label_embeddings=label_embeddings, use_bias=bool(linear_l2), name="static_graph",
        )
        logits = classifier(pooled)
        if linear_l2:
            penalize_head_kernels([classifier], linear_l2)
    else:
        logits = standardized_linear(pooled, len(class_names), linear_l2, name="classifier")
    return LabelledLogits(class_names, calibration=score_calibration, name=OUTPUT_LAYER)(logits)
