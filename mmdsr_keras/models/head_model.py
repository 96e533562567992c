"""The two halves of a package model: images -> stage features, and stage features -> logits."""

import keras

BACKBONE_LAYER = "backbone"


def stage_tensors(model, backbone_layer=BACKBONE_LAYER):
    """The backbone's stage feature tensors in `model`'s graph (the head's inputs)."""
    try:
        backbone = model.get_layer(backbone_layer)
    except ValueError:
        raise ValueError(
            f"model {model.name!r} has no layer named {backbone_layer!r}: build it with "
            "mmdsr_keras.build_mmdsr or build_baseline."
        ) from None
    # The node of the outer call holds the tensors of `model`'s own graph; the
    # backbone's `outputs` belong to its inner graph.
    return list(backbone._inbound_nodes[-1].output_tensors)


def build_stage_feature_model(model, backbone_layer=BACKBONE_LAYER):
    """Raw images -> the backbone's stage feature maps (preprocessing included).

    Shares its weights with `model`; used to cache the frozen backbone's
    features once so that the head can be trained on them (`StageFeatureCache`).

    Example:
    >>> import mmdsr_keras
    >>> model = mmdsr_keras.build_mmdsr(num_classes=2, backbone="mobilenet_0.25",
    ...                                 image_size=64, weights=None, units=8, num_heads=2)
    >>> [tuple(s[1:]) for s in build_stage_feature_model(model).output_shape]
    [(8, 8, 64), (4, 4, 128), (2, 2, 256)]
    """
    return keras.Model(model.inputs, stage_tensors(model, backbone_layer),
                       name=f"{model.name}_stage_features")


def build_head_model(model, backbone_layer=BACKBONE_LAYER):
    """Stage feature maps -> logits: everything of `model` after its backbone.

    The head model shares every weight with `model`, so training it on cached
    features trains `model`'s head in place (the frozen-backbone phase).

    Example:
    >>> import mmdsr_keras
    >>> model = mmdsr_keras.build_baseline("gap", num_classes=2, backbone="mobilenet_0.25",
    ...                                    image_size=64, weights=None)
    >>> build_head_model(model).output_shape
    (None, 2)
    """
    return keras.Model(stage_tensors(model, backbone_layer), model.outputs,
                       name=f"{model.name}_head")
