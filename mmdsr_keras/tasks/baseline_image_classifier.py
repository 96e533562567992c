"""`BaselineImageClassifier`: the GAP, GMP and ML-GCN heads as tasks, and `build_baseline`."""

import keras

from mmdsr_keras.backbones.feature_extractor import resolve_backbone
from mmdsr_keras.label_prior import ml_gcn_label_prior
from mmdsr_keras.models.baselines import BASELINE_HEADS, baseline_head
from mmdsr_keras.models.mmdsr import resolve_class_names
from mmdsr_keras.tasks.multi_label_image_classifier import MultiLabelImageClassifier


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class BaselineImageClassifier(MultiLabelImageClassifier):
    """A plain head on the backbone's last stage: GAP, GMP or ML-GCN.

    - `"gap"`: global average pooling + Dense(C), s = W GAP(X) + b;
    - `"gmp"`: global max pooling + Dense(C) (the ResNet-101 baseline of the
      ML-GCN and ADD-GCN papers);
    - `"mlgcn"`: GMP + ML-GCN's static-graph classifier, s = W(A0, E) GMP(X)
      (`StaticGraphClassifier`).

    Args:
        backbone: a `keras.Model` (see `MMDSRImageClassifier`).
        class_names: the C class names.
        head: `"gap"`, `"gmp"` or `"mlgcn"`. Defaults to `"gap"`.
        stages: backbone layers or pyramid keys (only the last is used).
        image_size: `(height, width)`. Defaults to the backbone's input size.
        preprocessing: `ImagePreprocessing` mode or layer. Defaults to `"none"`.
        label_prior: `(C, C)` symmetric-normalised A0 for `"mlgcn"` (a weight).
        label_embeddings: `(C, e)` label embeddings for `"mlgcn"` (one-hot
            when None; a weight).
        label_embedding_dim: e when the embeddings come with saved weights.
        hidden_units: first GCN width of `"mlgcn"`. Defaults to 1024.
        dropout: dropout rate on the pooled features. Defaults to 0.0.
        linear_l2: L2 coefficient of the classifier on standardised pooled
            features (`"gap"`/`"gmp"`: the Dense kernel; `"mlgcn"`: the GCN's
            kernels; the frozen-backbone phase sets the statistics).
            Defaults to 0.0.
        score_calibration: a per-class scale a_c > 0 and bias b_c on the
            logits, s'_c = a_c * s_c + b_c (`LabelledLogits`), identity until
            fitted by `fit_score_calibration`. Defaults to False.
        **kwargs: `keras.Model` arguments (`name`).

    Example:
    >>> import keras
    >>> network = keras.applications.MobileNet(input_shape=(64, 64, 3), alpha=0.25,
    ...                                        include_top=False, weights=None)
    >>> model = BaselineImageClassifier(network, ["cat", "dog"], head="gmp",
    ...                                 stages=["conv_pw_13_relu"])
    >>> model.output_shape
    (None, 2)
    """

    def __init__(self, backbone, class_names, head="gap", stages=None, image_size=None,
                 preprocessing="none", label_prior=None, label_embeddings=None,
                 label_embedding_dim=None, hidden_units=1024, dropout=0.0, linear_l2=0.0,
                 score_calibration=False, **kwargs):
        if head not in BASELINE_HEADS:
            raise ValueError(f"head={head!r}; expected one of {BASELINE_HEADS}.")
        class_names = resolve_class_names(None, class_names)
        if stages is None:
            _, stages, _, _ = resolve_backbone(backbone, image_size or 32)
        inputs, features = self._stage_features(backbone, stages, image_size, preprocessing)
        if label_embeddings is None and label_embedding_dim:
            label_embeddings = keras.ops.zeros((len(class_names), int(label_embedding_dim)))
        outputs = baseline_head(features, class_names, head=head, label_prior=label_prior,
                                label_embeddings=label_embeddings, hidden_units=hidden_units,
                                dropout=dropout, linear_l2=linear_l2,
                                score_calibration=score_calibration)
        super().__init__(inputs, outputs, **kwargs)
        # === Config ===
        self._class_names = class_names
        self.head_type = head
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.linear_l2 = linear_l2
        self.score_calibration = bool(score_calibration)
        self.label_embedding_dim = (None if label_embeddings is None
                                      else int(keras.ops.shape(label_embeddings)[-1]))

    @property
    def model_type(self):
        return self.head_type

    def get_config(self):
        return self._task_config({
            "head": self.head_type, "hidden_units": self.hidden_units, "dropout": self.dropout,
            "linear_l2": self.linear_l2, "score_calibration": self.score_calibration,
            "label_embedding_dim": self.label_embedding_dim,
        })

    @classmethod
    def from_dataset(cls, train, head="gap", backbone="efficientnet_lite0", image_size=224,
                     weights="imagenet", **kwargs):
        """The baseline for `train`: its class names and (ML-GCN) symmetric prior A0.

        Example:
        >>> import mmdsr_keras
        >>> from mmdsr_keras.data import load_shapes
        >>> train = load_shapes("train", num_images=16, image_size=64)
        >>> model = BaselineImageClassifier.from_dataset(
        ...     train, head="mlgcn", backbone="mobilenet_0.25", image_size=64, weights=None)
        >>> model.output_shape[-1] == train.num_classes
        True
        """
        if head == "mlgcn":
            kwargs.setdefault("label_prior", ml_gcn_label_prior(
                train.labels, normalization="symmetric"))
        return build_baseline(head, class_names=train.class_names, backbone=backbone,
                              image_size=image_size, weights=weights, **kwargs)


def build_baseline(head="gap", num_classes=None, class_names=None, backbone="resnet101",
                   image_size=448, weights="imagenet", freeze_backbone=False, stages=None,
                   label_prior=None, label_embeddings=None, hidden_units=1024,
                   dropout=0.0, linear_l2=0.0, preprocessing=None, name=None,
                   score_calibration=False):
    """Builds a `BaselineImageClassifier` on a registered or given backbone.

    Takes raw RGB pixels in [0, 255] like `build_mmdsr`.

    Args:
        head: one of `"gap"`, `"gmp"`, `"mlgcn"`. Defaults to `"gap"`.
        num_classes, class_names, backbone, image_size, weights,
        freeze_backbone, stages, preprocessing: as in `build_mmdsr` (only the
            last stage is used).
        label_prior: `(C, C)` symmetric-normalised A0 for `"mlgcn"`.
        label_embeddings: `(C, e)` label embeddings for `"mlgcn"`.
        hidden_units: first GCN width of `"mlgcn"`. Defaults to 1024.
        dropout: dropout rate on the pooled features. Defaults to 0.0.
        linear_l2: L2 coefficient of the classifier on standardised pooled
            features (for `"mlgcn"` the GCN's kernels). Defaults to 0.0.
        score_calibration: a per-class scale and bias on the logits, identity
            until fitted (`fit_score_calibration`). Defaults to False.
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
    network, stages, mode, _ = resolve_backbone(backbone, image_size, weights, stages,
                                                preprocessing)
    if freeze_backbone:
        network.trainable = False
    return BaselineImageClassifier(
        network, class_names, head=head, stages=stages, image_size=image_size,
        preprocessing=mode, label_prior=label_prior if head == "mlgcn" else None,
        label_embeddings=label_embeddings, hidden_units=hidden_units, dropout=dropout,
        linear_l2=linear_l2, score_calibration=score_calibration,
        name=name or f"baseline_{head}")
