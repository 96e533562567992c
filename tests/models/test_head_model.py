"""The two halves of a model compose to the whole and share its weights."""

import numpy as np

import mmdsr_keras
from mmdsr_keras.models.head_model import build_head_model, build_stage_feature_model


def _model(head):
    if head == "mmdsr":
        return mmdsr_keras.build_mmdsr(num_classes=3, backbone="mobilenet_0.25", image_size=64,
                                       weights=None, units=8, num_heads=2)
    return mmdsr_keras.build_baseline(head, num_classes=3, backbone="mobilenet_0.25",
                                      image_size=64, weights=None)


def test_head_of_stage_features_equals_the_whole_model():
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    for head in ("mmdsr", "gap"):
        model = _model(head)
        features = build_stage_feature_model(model).predict_on_batch(images)
        composed = build_head_model(model).predict_on_batch(features)
        np.testing.assert_allclose(composed, model.predict_on_batch(images), atol=1e-5)


def test_head_model_shares_the_weights():
    model = _model("gap")
    head = build_head_model(model)
    kernel = model.get_layer("classifier").kernel
    assert any(v is kernel for v in head.trainable_variables)
    # No backbone weight is trainable through the head model.
    backbone_paths = {v.path for v in model.get_layer("backbone").weights}
    assert not backbone_paths & {v.path for v in head.weights}
