"""DeepSupervisionLoss against a numpy BCE, and its use in the frozen phase."""

import keras
import numpy as np
import pytest

import mmdsr_keras
from mmdsr_keras.data import MultiLabelDataset
from mmdsr_keras.models.head_model import stage_tensors
from mmdsr_keras.models.mmdsr import build_deep_supervision_model
from mmdsr_keras.training.deep_supervision_loss import DeepSupervisionLoss
from mmdsr_keras.training.frozen_backbone_phase import fit_frozen_phase
from mmdsr_keras.training.multi_label_trainer import TrainingConfig
from mmdsr_keras.training.stage_feature_cache import StageFeatureCache


def _bce(y, logits):
    p = 1.0 / (1.0 + np.exp(-logits))
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


@pytest.mark.parametrize("weight", [0.0, 0.5, 2.0])
def test_matches_numpy(weight):
    rng = np.random.default_rng(0)
    y = (rng.random((5, 4)) < 0.4).astype("float32")
    scores = rng.normal(size=(5, 3, 4)).astype("float32")
    expected = _bce(y, scores[:, 0]) + weight * (_bce(y, scores[:, 1]) + _bce(y, scores[:, 2]))
    loss = DeepSupervisionLoss(keras.losses.BinaryCrossentropy(from_logits=True), weight)
    assert float(loss(y, scores)) == pytest.approx(expected, rel=1e-5)
    restored = DeepSupervisionLoss.from_config(loss.get_config())
    assert float(restored(y, scores)) == pytest.approx(expected, rel=1e-5)


def test_negative_weight_is_refused():
    with pytest.raises(ValueError, match="weight must be >= 0"):
        DeepSupervisionLoss(weight=-1.0)


def _data(n=8):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 40, 40, 3), dtype=np.uint8)
    labels = (rng.random((n, 3)) < 0.5).astype("float32")
    return MultiLabelDataset(["a", "b", "c"], labels, images=images)


def test_frozen_phase_with_deep_supervision_trains_both_branches(tmp_path):
    data = _data()
    model = mmdsr_keras.build_mmdsr(num_classes=3, backbone="mobilenet_0.25", image_size=32,
                                    weights=None, units=16, num_heads=2)
    cache = StageFeatureCache.compute(model, data, 32, tmp_path / "c", views=2)
    scores = build_deep_supervision_model(model, inputs=stage_tensors(model))

    def branch_losses():
        out = np.asarray(scores.predict_on_batch(cache.features(np.arange(8), 0)), "float64")
        return [_bce(cache.labels, out[:, k]) for k in range(3)]

    before = branch_losses()
    config = TrainingConfig(frozen_epochs=25, frozen_learning_rate=1e-2, batch_size=8,
                            deep_supervision=0.5)
    fit_frozen_phase(model, cache, config)
    after = branch_losses()
    assert all(a < b for a, b in zip(after, before)), (before, after)


def test_deep_supervision_needs_an_mmdsr_model(tmp_path):
    model = mmdsr_keras.build_baseline("gap", num_classes=3, backbone="mobilenet_0.25",
                                       image_size=32, weights=None)
    cache = StageFeatureCache.compute(model, _data(), 32, tmp_path / "c", views=1)
    with pytest.raises(ValueError, match="only MMDSR models"):
        fit_frozen_phase(model, cache, TrainingConfig(frozen_epochs=1, deep_supervision=0.5))
