"""`MMDSRImageClassifier`: MMDSR as a keras-hub-style task, and `build_mmdsr`."""

import keras

from mmdsr_keras.backbones.feature_extractor import resolve_backbone
from mmdsr_keras.label_prior import ml_gcn_label_prior
from mmdsr_keras.models.mmdsr import MMDSR_HEAD_DEFAULTS, mmdsr_head, resolve_class_names
from mmdsr_keras.tasks.multi_label_image_classifier import MultiLabelImageClassifier


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class MMDSRImageClassifier(MultiLabelImageClassifier):
    """MMDSR: backbone stages -> cross-layer attention -> dual-branch -> semantic graph.

    Takes raw RGB pixels in [0, 255] (`(batch, H, W, 3)`, input `"image"`;
    preprocessing is inside) and returns per-class logits `(batch, C)`:

        s = alpha * s_m + (1 - alpha) * s_r

    with s_m the class-map logits and s_r the graph logits of
    `DynamicSemanticGCN` (see the three layers' docstrings for the equations).
    `build_mmdsr(...)` builds one from a registered backbone name;
    `from_dataset(train, ...)` also takes the prior and label density from the
    training labels.

    Args:
        backbone: a `keras.Model`: a keras-hub `FeaturePyramidBackbone`
            (stages default to its `"P3"`, `"P4"`, `"P5"` pyramid outputs) or
            any model with `stages` layer names.
        class_names: the C class names.
        stages: layer names or pyramid keys fused, shallow to deep.
        image_size: `(height, width)` of the input. Defaults to the
            backbone's input size.
        preprocessing: an `ImagePreprocessing` mode or a Keras layer mapping
            [0, 255] pixels to the backbone's input (e.g. a keras-hub
            `ImageConverter`). Defaults to `"none"`.
        units: working width d. Defaults to 512.
        node_units: graph node width d_v. Defaults to d.
        num_heads: cross-layer attention heads. Defaults to 4.
        key_units: query/key width d_qk. Defaults to d / 4.
        reduction: dual-branch reduction r. Defaults to 4.
        share_branches: reuse the branch weights in the cross step. Defaults to True.
        num_perspectives: K of the weighted cosine. Defaults to 8.
        sparsity_threshold: eps. Defaults to 0.
        prior_weight: lambda (static prior vs dynamic graph). Defaults to 0.5.
        trainable_prior_weight: learn lambda. Defaults to False.
        global_weight: alpha (class-map logits vs graph logits). Defaults to 0.5.
        trainable_global_weight: learn alpha. Defaults to False.
        label_prior: `(C, C)` static prior A0 (`ml_gcn_label_prior(train_labels)`),
            kept as a weight (not in the config).
        label_embeddings: `(C, e)` label word embeddings, kept as a weight.
        label_embedding_dim: e when `label_embeddings` is only known from
            saved weights (set by `get_config`).
        label_density: mean label density pi, or `(C,)` frequencies, setting
            the initial bias. Defaults to 0.05.
        cross_layer: fuse all stages (False: the last one only). Defaults to True.
        dual_branch: use the channel dual-branch cross-attention. Defaults to True.
        graph: `"dynamic"`, `"static"` or `"none"`. Defaults to `"dynamic"`.
        global_linear: a design variant: add a zero-initialised linear
            classifier on the deepest stage's pooled features (see
            `global_pooling`) to the logits. Defaults to False (MMDSR as designed).
        global_pooling: how that path pools the deepest stage: `"average"`,
            `"max"` or `"average_max"` (both, concatenated). Defaults to
            `"average"`.
        dropout: dropout rate on whole channels of the map the graph head
            reads (and on the global linear path's pooled features).
            Defaults to 0.0.
        linear_l2: with `global_linear`, the L2 coefficient of the global
            linear path's kernel, on standardised pooled features
            (`standardized_linear`; the frozen-backbone phase sets the
            statistics). Defaults to 0.0.
        head_l2: L2 coefficient mu on the kernels of the head's cross-layer
            attention, dual-branch and graph layers: the loss gains
            mu * sum(W^2) over every kernel W (`penalize_head_kernels`; not
            the biases, norms or perspectives). Defaults to 0.0.
        score_calibration: a per-class scale a_c > 0 and bias b_c on the
            logits, s'_c = a_c * s_c + b_c (`LabelledLogits`), identity until
            fitted by `fit_score_calibration`. Defaults to False.
        **kwargs: `keras.Model` arguments (`name`).

    Example:
    >>> import keras, mmdsr_keras
    >>> network = keras.applications.MobileNet(input_shape=(64, 64, 3), alpha=0.25,
    ...                                        include_top=False, weights=None)
    >>> model = MMDSRImageClassifier(
    ...     network, ["cat", "dog"], stages=["conv_pw_5_relu", "conv_pw_13_relu"],
    ...     preprocessing="tf", units=16, num_heads=2)
    >>> model.output_shape, model.class_names
    ((None, 2), ['cat', 'dog'])
    """

    model_type = "mmdsr"

    def __init__(self, backbone, class_names, stages=None, image_size=None,
                 preprocessing="none", label_prior=None, label_embeddings=None,
                 label_embedding_dim=None, default_units=512, **kwargs):
        head_args = {k: kwargs.pop(k) for k in list(kwargs) if k in MMDSR_HEAD_DEFAULTS}
        class_names = resolve_class_names(None, class_names)
        if stages is None:
            _, stages, _, _ = resolve_backbone(backbone, image_size or 32)
        inputs, features = self._stage_features(backbone, stages, image_size, preprocessing)
        if label_embeddings is None and label_embedding_dim:
            # The real vectors come with the saved weights.
            label_embeddings = keras.ops.zeros((len(class_names), int(label_embedding_dim)))
        outputs = mmdsr_head(features, class_names, default_units=default_units,
                             label_prior=label_prior, label_embeddings=label_embeddings,
                             **head_args)
        super().__init__(inputs, outputs, **kwargs)
        # === Config ===
        self._class_names = class_names
        self.default_units = default_units
        self.label_embedding_dim = (None if label_embeddings is None
                                      else int(keras.ops.shape(label_embeddings)[-1]))
        self.head_args = {**MMDSR_HEAD_DEFAULTS, **head_args}

    def get_config(self):
        return self._task_config({
            **self.head_args, "default_units": self.default_units,
            "label_embedding_dim": self.label_embedding_dim,
        })

    @classmethod
    def from_dataset(cls, train, backbone="efficientnet_lite0", image_size=224,
                     weights="imagenet", **kwargs):
        """MMDSR for `train` (a `MultiLabelDataset`): its class names, prior A0, density.

        A0 is ML-GCN's row-normalised co-occurrence prior of `train.labels`
        and pi its mean label density; `kwargs` go to `build_mmdsr`.

        Example:
        >>> import mmdsr_keras
        >>> from mmdsr_keras.data import load_shapes
        >>> train = load_shapes("train", num_images=16, image_size=64)
        >>> model = MMDSRImageClassifier.from_dataset(
        ...     train, backbone="mobilenet_0.25", image_size=64, weights=None, units=8,
        ...     num_heads=2)
        >>> len(model.class_names) == train.num_classes
        True
        """
        kwargs = {**cls.dataset_arguments(train), **kwargs}
        return build_mmdsr(backbone=backbone, image_size=image_size, weights=weights, **kwargs)

    @staticmethod
    def dataset_arguments(train):
        """`class_names`, `label_prior` (row-normalised A0) and `label_density` of `train`.

        What `from_dataset` takes from the training labels, for code that
        builds many models on one dataset (`MMDSRHyperModel`).
        """
        return dict(class_names=list(train.class_names),
                    label_prior=ml_gcn_label_prior(train.labels, normalization="row"),
                    label_density=float(train.label_density()))


def build_mmdsr(num_classes=None, class_names=None, backbone="resnet101", image_size=448,
                weights="imagenet", freeze_backbone=False, stages=None, preprocessing=None,
                name="mmdsr", **head_args):
    """Builds an `MMDSRImageClassifier` on a registered or given backbone.

    Args:
        num_classes: C (or give `class_names`).
        class_names: names of the C classes, stored in the model.
        backbone: registered name (`mmdsr_keras.available_backbones()`), a
            keras-hub `FeaturePyramidBackbone`, or a `keras.Model` with
            `stages`. Defaults to `"resnet101"`.
        image_size: int or `(height, width)`. Defaults to 448.
        weights: `"imagenet"`, `None` or a local backbone weights file
            (registered backbones). Defaults to `"imagenet"`.
        freeze_backbone: train the head only. Defaults to False.
        stages: backbone layers (or pyramid keys) fused, shallow to deep.
            Defaults to the backbone's stride-8/16/32 outputs.
        preprocessing: `ImagePreprocessing` mode or layer. Defaults to the
            registered backbone's mode, `"none"` for a model of your own.
        name: model name. Defaults to `"mmdsr"`.
        **head_args: `MMDSRImageClassifier`'s head arguments (`units`,
            `num_heads`, `label_prior`, `global_weight`, ...; d defaults to
            512 on ResNet-class backbones, 256 on mobile ones).

    Returns:
        An `MMDSRImageClassifier`.

    Example:
    >>> model = build_mmdsr(num_classes=3, backbone="mobilenet_0.25",
    ...                     image_size=64, weights=None, units=32)
    >>> model.output_shape
    (None, 3)
    """
    class_names = resolve_class_names(num_classes, class_names)
    network, stages, mode, default_units = resolve_backbone(
        backbone, image_size, weights, stages, preprocessing)
    if freeze_backbone:
        network.trainable = False
    return MMDSRImageClassifier(
        network, class_names, stages=stages, image_size=image_size, preprocessing=mode,
        default_units=default_units, name=name, **head_args)
