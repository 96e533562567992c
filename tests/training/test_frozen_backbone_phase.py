"""Feature cache, frozen-backbone phase and BatchNorm freezing, on tiny real computations."""

import keras
import numpy as np
import pytest

import mmdsr_keras
from mmdsr_keras.data import MultiLabelDataset
from mmdsr_keras.models.head_model import build_stage_feature_model
from mmdsr_keras.training.frozen_backbone_phase import (
    fit_frozen_phase,
    freeze_backbone_batchnorm,
    predict_cached,
)
from mmdsr_keras.training.multi_label_trainer import TrainingConfig
from mmdsr_keras.training.stage_feature_cache import CachedFeatureBatches, StageFeatureCache


def _data(n=6):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 40, 40, 3), dtype=np.uint8)
    labels = (rng.random((n, 2)) < 0.5).astype("float32")
    return MultiLabelDataset(["a", "b"], labels, images=images)


def _model():
    return mmdsr_keras.build_baseline("gap", num_classes=2, backbone="mobilenet_0.25",
                                      image_size=32, weights=None)


def test_cache_holds_the_backbone_features_of_each_view(tmp_path):
    data, model = _data(), _model()
    cache = StageFeatureCache.compute(model, data, 32, tmp_path / "c", views=3, batch_size=4)
    assert [s.shape[:2] for s in cache.stages] == [(3, 6)] * 3
    plain = data.to_tf_dataset(32, 6).map(lambda x, y: x)
    expected = build_stage_feature_model(model).predict_on_batch(next(iter(plain)))
    for stored, reference in zip(cache.features(np.arange(6), view=0), expected):
        np.testing.assert_allclose(stored, np.asarray(reference), rtol=2e-3, atol=2e-3)
    flipped = cache.features(np.arange(6), view=1)[0]
    assert not np.allclose(flipped, cache.features(np.arange(6), view=0)[0])
    # Reopening the same cache reuses it; another backbone's features are refused.
    again = StageFeatureCache.compute(model, data, 32, tmp_path / "c", views=3)
    np.testing.assert_array_equal(again.stages[0], cache.stages[0])
    with pytest.raises(ValueError, match="fingerprint"):
        StageFeatureCache.compute(_model(), data, 32, tmp_path / "c", views=3)


def test_batches_are_a_pure_function_of_seed_and_epoch(tmp_path):
    cache = StageFeatureCache.compute(_model(), _data(), 32, tmp_path / "c", views=2)
    a = CachedFeatureBatches(cache, batch_size=6, seed=1)
    a.on_epoch_end()
    b = CachedFeatureBatches(cache, batch_size=6, seed=1, first_epoch=1)
    np.testing.assert_array_equal(a[0][0][0], b[0][0][0])
    np.testing.assert_array_equal(a[0][1], b[0][1])
    assert sorted(a._order.tolist()) == list(range(6))


def test_frozen_phase_trains_the_head_only_and_lowers_the_loss(tmp_path):
    data, model = _data(), _model()
    cache = StageFeatureCache.compute(model, data, 32, tmp_path / "c", views=2)
    backbone_before = [np.array(v) for v in model.get_layer("backbone").weights]
    head_before = np.array(model.get_layer("classifier").kernel)
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    before = float(loss(cache.labels, predict_cached(model, cache)))
    config = TrainingConfig(frozen_epochs=30, frozen_learning_rate=1e-2, batch_size=6)
    fit_frozen_phase(model, cache, config)
    after = float(loss(cache.labels, predict_cached(model, cache)))
    assert after < before
    assert not np.allclose(head_before, np.array(model.get_layer("classifier").kernel))
    for old, new in zip(backbone_before, model.get_layer("backbone").weights):
        np.testing.assert_array_equal(old, np.array(new))


def test_frozen_batchnorm_keeps_its_moving_statistics_during_fit():
    model = _model()
    count = freeze_backbone_batchnorm(model)
    assert count > 0
    bns = [l for l in model.get_layer("backbone")._flatten_layers()
           if isinstance(l, keras.layers.BatchNormalization)]
    stats = [(np.array(b.moving_mean), np.array(b.moving_variance)) for b in bns]
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    data = _data(8)
    x = np.asarray(data.images[:, :32, :32], "float32")
    model.fit(x, data.labels, batch_size=4, epochs=2, verbose=0)
    for b, (mean, var) in zip(bns, stats):
        np.testing.assert_array_equal(mean, np.array(b.moving_mean))
        np.testing.assert_array_equal(var, np.array(b.moving_variance))
    # Without freezing, the same fit does move them (the check can fail).
    other = _model()
    other.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    first = [l for l in other.get_layer("backbone")._flatten_layers()
             if isinstance(l, keras.layers.BatchNormalization)][0]
    before = np.array(first.moving_mean)
    other.fit(x, data.labels, batch_size=4, epochs=1, verbose=0)
    assert not np.allclose(before, np.array(first.moving_mean))
