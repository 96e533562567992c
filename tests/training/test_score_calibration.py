"""Per-class Platt calibration: the fit against an independent optimiser, and its place in a model."""

import keras
import numpy as np
import pytest
from scipy.optimize import minimize

import mmdsr_keras
from mmdsr_keras.data import MultiLabelDataset
from mmdsr_keras.training import (
    StageFeatureCache,
    calibrate_on_batches,
    calibrate_on_cache,
    fit_score_calibration,
    platt_scaling,
    predict_cached,
)


def smoothed_log_loss(params, s, y):
    """Platt's objective, written independently: log loss on the smoothed targets."""
    positives, negatives = y.sum(), (1 - y).sum()
    target = np.where(y > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    z = params[0] * s + params[1]
    return np.sum(np.logaddexp(0, z) - target * z)


def reference_platt(s, y):
    # Bounded as documented: a >= 1e-3 never reverses a class's ranking.
    return minimize(smoothed_log_loss, x0=[1.0, 0.0], args=(s, y), method="L-BFGS-B",
                    bounds=[(1e-3, None), (None, None)],
                    options=dict(ftol=1e-15, gtol=1e-10, maxiter=10_000)).x


def test_platt_matches_a_general_optimiser_of_platts_objective():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(np.float64)
    # Under-confident logits, as an L2-shrunk head gives: the fit must scale them up.
    s = 0.3 * (2.0 * y - 1.0) + 0.4 * rng.standard_normal(400) - 0.5
    a, b = platt_scaling(s, y)
    np.testing.assert_allclose([a, b], reference_platt(s, y), atol=1e-4)
    assert a > 1.0


def test_anti_correlated_logits_stop_at_the_smallest_scale_with_the_bias_refitted():
    rng = np.random.default_rng(6)
    y = (rng.random(300) < 0.4).astype(np.float64)
    s = -(2.0 * y - 1.0) + 0.5 * rng.standard_normal(300)
    a, b = platt_scaling(s, y)
    assert a == pytest.approx(1e-3)
    np.testing.assert_allclose([a, b], reference_platt(s, y), atol=1e-4)


def test_ignored_entries_are_left_out_and_one_sided_classes_keep_the_identity():
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.3).astype(np.float64)
    s = rng.standard_normal(300) + y
    valid = np.ones(300, bool)
    valid[:60] = False
    y_noisy = y.copy()
    y_noisy[:60] = 1 - y_noisy[:60]  # garbage where ignored
    np.testing.assert_allclose(platt_scaling(s, y_noisy, valid),
                               reference_platt(s[valid], y[valid]), atol=1e-4)
    assert platt_scaling(s, np.zeros(300)) == (1.0, 0.0)
    assert platt_scaling(s, np.ones(300)) == (1.0, 0.0)


def _model(calibration=True):
    return mmdsr_keras.build_baseline("gap", num_classes=2, backbone="mobilenet_0.25",
                                      image_size=32, weights=None, score_calibration=calibration)


def test_fit_sets_the_output_layer_and_a_refit_on_calibrated_logits_changes_nothing():
    rng = np.random.default_rng(2)
    labels = (rng.random((200, 2)) < [0.3, 0.6]).astype(np.float32)
    logits = 0.2 * (2 * labels - 1) + 0.3 * rng.standard_normal((200, 2))
    model = _model()
    scale, bias = fit_score_calibration(model, logits, labels)
    for c in range(2):
        np.testing.assert_allclose([scale[c], bias[c]],
                                   reference_platt(logits[:, c], labels[:, c]), atol=1e-4)
    layer = model.get_layer("logits")
    out = keras.ops.convert_to_numpy(layer(logits.astype(np.float32)))
    np.testing.assert_allclose(out, logits * scale + bias, rtol=1e-5, atol=1e-5)
    # The model's own (calibrated) outputs are already calibrated: the fit composes to itself.
    again_scale, again_bias = fit_score_calibration(model, out, labels)
    np.testing.assert_allclose(again_scale, scale, rtol=1e-4)
    np.testing.assert_allclose(again_bias, bias, atol=1e-4)


def test_a_model_without_calibration_is_refused():
    with pytest.raises(ValueError, match="score_calibration=True"):
        fit_score_calibration(_model(calibration=False), np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="must both be"):
        fit_score_calibration(_model(), np.zeros((4, 2)), np.zeros((4, 3)))


def _data(n=24):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (n, 40, 40, 3), dtype=np.uint8)
    labels = (rng.random((n, 2)) < 0.5).astype("float32")
    return MultiLabelDataset(["a", "b"], labels, images=images)


def test_calibration_on_the_cache_fits_every_view_of_the_chosen_rows(tmp_path):
    data, model = _data(), _model()
    cache = StageFeatureCache.compute(model, data, 32, tmp_path / "c", views=3)
    # An untrained random backbone's features are ~0: spread them so the logits differ.
    rng = np.random.default_rng(4)
    cache.stages = [rng.normal(size=s.shape).astype(s.dtype) for s in cache.stages]
    rows = np.arange(4, 24)
    raw = np.concatenate([predict_cached(model, cache, rows, views=(v,)) for v in range(3)])
    labels = np.tile(data.labels[rows], (3, 1))
    scale, bias = calibrate_on_cache(model, cache, rows=rows)
    for c in range(2):
        np.testing.assert_allclose([scale[c], bias[c]], reference_platt(raw[:, c], labels[:, c]),
                                   atol=1e-3)
    np.testing.assert_allclose(predict_cached(model, cache, rows, views=(0,)),
                               raw[:len(rows)] * scale + bias, rtol=1e-4, atol=1e-4)


def test_calibration_on_batches_leaves_out_ignored_labels():
    from mmdsr_keras.layers import LabelledLogits

    inputs = keras.Input((5,))
    model = keras.Model(inputs, LabelledLogits(["a", "b"], calibration=True, name="logits")(
        keras.layers.Dense(2)(inputs)))
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    raw = keras.ops.convert_to_numpy(model.predict_on_batch(x))
    truth = (raw + 0.5 * rng.standard_normal(raw.shape) > 0).astype(np.float32)
    ignore = np.zeros_like(truth)
    ignore[:8, 0] = 1
    labels = truth.copy()
    labels[:8, 0] = 1 - labels[:8, 0]  # wrong where ignored: must not matter
    batches = [(x[:16], labels[:16], ignore[:16]), (x[16:], labels[16:], ignore[16:])]
    scale, bias = calibrate_on_batches(model, batches)
    keep = ignore[:, 0] == 0
    np.testing.assert_allclose([scale[0], bias[0]],
                               reference_platt(raw[keep, 0], truth[keep, 0]), atol=1e-3)
    np.testing.assert_allclose([scale[1], bias[1]],
                               reference_platt(raw[:, 1], truth[:, 1]), atol=1e-3)
