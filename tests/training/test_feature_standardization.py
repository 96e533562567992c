"""The standardised, L2-penalised linear path (`linear_l2`), against numpy."""

import keras
import numpy as np
import pytest

import mmdsr_keras
from mmdsr_keras.data import MultiLabelDataset
from mmdsr_keras.models.head_model import build_head_model
from mmdsr_keras.training.feature_standardization import (
    fit_feature_standardization,
    standardization_layers,
)
from mmdsr_keras.training.frozen_backbone_phase import _fit_linear_path, fit_frozen_phase
from mmdsr_keras.training.multi_label_trainer import TrainingConfig
from mmdsr_keras.training.stage_feature_cache import StageFeatureCache
from tests.shared_data import shared_path

L2 = 5e-3
SIZE = 64


def _weights():
    # Randomly initialised backbones give all-zero top features on tiny
    # images; the real MobileNet weights give channels that vary.
    return str(shared_path("weights", "mobilenet_2_5_224_tf_no_top.h5"))


def _data(n=10):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, SIZE + 8, SIZE + 8, 3), dtype=np.uint8)
    labels = (rng.random((n, 3)) < 0.5).astype("float32")
    return MultiLabelDataset(["a", "b", "c"], labels, images=images)


def _gap(linear_l2=L2, pretrained=True):
    keras.utils.set_random_seed(0)
    return mmdsr_keras.build_baseline("gap", num_classes=3, backbone="mobilenet_0.25",
                                      image_size=SIZE, weights=_weights() if pretrained else None,
                                      linear_l2=linear_l2)


def _mmdsr():
    keras.utils.set_random_seed(0)
    return mmdsr_keras.build_mmdsr(num_classes=3, backbone="mobilenet_0.25", image_size=SIZE,
                                   weights=_weights(), units=8, num_heads=2, global_linear=True,
                                   linear_l2=L2)


def _pooled(cache, rows, view=0):
    return np.asarray(cache.stages[-1][view][rows], np.float64).mean(axis=(1, 2))


def _expected_statistics(pooled):
    mean, variance = pooled.mean(0), pooled.var(0)
    variance[variance <= 1e-12 * np.maximum(mean ** 2, 1.0)] = 1.0
    return mean, variance


def test_no_standardisation_or_penalty_without_linear_l2():
    model = _gap(linear_l2=0.0, pretrained=False)
    assert standardization_layers(model) == []
    assert model.losses == []


@pytest.mark.parametrize("build", [_gap, _mmdsr], ids=["gap", "mmdsr_global_linear"])
def test_statistics_are_the_training_rows_mean_and_variance(build, tmp_path):
    model, data = build(), _data()
    cache = StageFeatureCache.compute(model, data, SIZE, tmp_path / "c", views=2, batch_size=4)
    rows = np.array([0, 2, 3, 5, 7, 8, 9])
    assert fit_feature_standardization(model, cache, rows, batch_size=3) == 1
    (layer,) = standardization_layers(model)
    mean, variance = _expected_statistics(_pooled(cache, rows))
    np.testing.assert_allclose(np.asarray(layer.adapt_mean), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer.adapt_variance), variance, rtol=1e-4, atol=1e-6)
    # Most channels vary, so the comparison is not just the constant-channel rule.
    assert (_pooled(cache, rows).var(0) > 1e-8).sum() >= 20


def test_logits_and_penalty_are_a_probe_on_standardised_features(tmp_path):
    model, data = _gap(), _data()
    cache = StageFeatureCache.compute(model, data, SIZE, tmp_path / "c", views=1, batch_size=4)
    rows = np.arange(len(data))
    fit_feature_standardization(model, cache, rows)
    (layer,) = standardization_layers(model)
    dense = model.get_layer("classifier")
    dense.kernel.assign(np.random.default_rng(2).normal(size=dense.kernel.shape))
    dense.bias.assign([0.1, -0.2, 0.3])
    kernel, bias = np.asarray(dense.kernel, np.float64), np.asarray(dense.bias, np.float64)
    mean, variance = np.asarray(layer.adapt_mean), np.asarray(layer.adapt_variance)
    expected = (_pooled(cache, rows) - mean) / np.sqrt(variance) @ kernel + bias
    logits = build_head_model(model).predict_on_batch(cache.features(rows, 0))
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-4, atol=1e-4)
    (penalty,) = model.losses
    np.testing.assert_allclose(float(penalty), L2 * (kernel ** 2).sum(), rtol=1e-5)


def test_frozen_phase_sets_the_statistics_of_its_rows(tmp_path):
    model, data = _gap(), _data()
    cache = StageFeatureCache.compute(model, data, SIZE, tmp_path / "c", views=2, batch_size=4)
    rows = np.arange(6)
    fit_frozen_phase(model, cache, TrainingConfig(frozen_epochs=1, batch_size=4), rows=rows)
    (layer,) = standardization_layers(model)
    mean, _ = _expected_statistics(_pooled(cache, rows))
    np.testing.assert_allclose(np.asarray(layer.adapt_mean), mean, rtol=1e-5, atol=1e-6)


def test_statistics_and_predictions_survive_a_keras_file(tmp_path):
    model, data = _mmdsr(), _data()
    cache = StageFeatureCache.compute(model, data, SIZE, tmp_path / "c", views=1, batch_size=4)
    fit_feature_standardization(model, cache)
    model.get_layer("global_linear").kernel.assign(
        np.random.default_rng(3).normal(size=model.get_layer("global_linear").kernel.shape))
    images = data.images[:4].astype("float32")[:, :SIZE, :SIZE]
    before = np.asarray(model.predict_on_batch(images))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(loaded.predict_on_batch(images)), before,
                               rtol=1e-5, atol=1e-5)
    (layer,) = standardization_layers(loaded)
    np.testing.assert_allclose(np.asarray(layer.adapt_mean),
                               np.asarray(standardization_layers(model)[0].adapt_mean))
    assert loaded.head_args["linear_l2"] == L2


def test_linear_first_fits_the_path_alone_then_keeps_it_fixed(tmp_path):
    data = _data()
    cache = StageFeatureCache.compute(_mmdsr(), data, SIZE, tmp_path / "c", views=2, batch_size=4)
    config = TrainingConfig(frozen_epochs=3, batch_size=4, frozen_learning_rate=1e-2,
                            linear_first=True)
    alone = _mmdsr()
    fit_feature_standardization(alone, cache)
    _fit_linear_path(alone, alone.get_layer("global_linear"), cache, config, None, 0)
    expected = np.asarray(alone.get_layer("global_linear").kernel)
    assert np.abs(expected).max() > 0  # it starts at zero and learned

    model = _mmdsr()
    graph_before = np.asarray(model.get_layer("semantic_graph").trainable_weights[0])
    fit_frozen_phase(model, cache, config)
    np.testing.assert_allclose(np.asarray(model.get_layer("global_linear").kernel), expected,
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(model.get_layer("semantic_graph").trainable_weights[0]),
                           graph_before)
    assert model.get_layer("global_linear").trainable


def test_mlgcn_is_a_gcn_made_classifier_on_standardised_max_pooled_features(tmp_path):
    keras.utils.set_random_seed(0)
    prior = np.array([[0.6, 0.3, 0.1], [0.3, 0.5, 0.2], [0.1, 0.2, 0.7]])
    model = mmdsr_keras.build_baseline("mlgcn", num_classes=3, backbone="mobilenet_0.25",
                                       image_size=SIZE, weights=_weights(), linear_l2=L2,
                                       hidden_units=16, label_prior=prior)
    data = _data()
    cache = StageFeatureCache.compute(model, data, SIZE, tmp_path / "c", views=1, batch_size=4)
    rows = np.arange(len(data))
    assert fit_feature_standardization(model, cache, rows) == 1
    (layer,) = standardization_layers(model)
    pooled = np.asarray(cache.stages[-1][0][rows], np.float64).max(axis=(1, 2))
    mean, variance = _expected_statistics(pooled)
    np.testing.assert_allclose(np.asarray(layer.adapt_mean), mean, rtol=1e-5, atol=1e-6)
    graph = model.get_layer("static_graph")
    graph.bias.assign([0.1, -0.2, 0.3])
    w1, w2, bias = (np.asarray(w, np.float64) for w in (graph.kernel_1, graph.kernel_2,
                                                       graph.bias))
    hidden = prior @ np.eye(3) @ w1
    classifiers = prior @ np.where(hidden > 0, hidden, 0.2 * hidden) @ w2
    expected = (pooled - mean) / np.sqrt(variance) @ classifiers.T + bias
    logits = build_head_model(model).predict_on_batch(cache.features(rows, 0))
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-4, atol=1e-4)
    # W1 and W2 are penalised; the bias, prior and embeddings are not.
    np.testing.assert_allclose(sum(float(p) for p in model.losses),
                               L2 * ((w1 ** 2).sum() + (w2 ** 2).sum()), rtol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        np.asarray(build_head_model(loaded).predict_on_batch(cache.features(rows, 0))),
        np.asarray(logits), rtol=1e-5, atol=1e-5)
    assert len(loaded.losses) == 2


def test_mlgcn_without_linear_l2_is_ml_gcn_as_published():
    model = mmdsr_keras.build_baseline("mlgcn", num_classes=3, backbone="mobilenet_0.25",
                                       image_size=SIZE, weights=None, hidden_units=16)
    assert standardization_layers(model) == [] and model.losses == []
    assert model.get_layer("static_graph").bias is None
