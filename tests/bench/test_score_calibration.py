"""Platt calibration of the score-calibration experiment, against an independent optimiser."""

import numpy as np
from scipy.optimize import minimize

from tests.bench.bench_scripts import load_module

calibration = load_module("score_calibration")


def smoothed_log_loss(params, s, y):
    positives, negatives = y.sum(), (1 - y).sum()
    target = np.where(y > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    z = params[0] * s + params[1]
    return np.sum(np.logaddexp(0, z) - target * z)


def test_platt_matches_a_general_optimiser_of_platts_objective():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(np.float64)
    # Under-confident logits, as an L2-shrunk head gives: the fit must scale them up.
    s = 0.3 * (2.0 * y - 1.0) + 0.4 * rng.standard_normal(400) - 0.5
    a, b = calibration.platt(s, y, np.ones(400, bool))
    reference = minimize(smoothed_log_loss, x0=[1.0, 0.0], args=(s, y), method="Nelder-Mead",
                         options=dict(xatol=1e-8, fatol=1e-10, maxiter=20_000)).x
    np.testing.assert_allclose([a, b], reference, atol=1e-4)
    assert a > 1.0


def test_bias_only_platt_keeps_the_scale_and_ignores_masked_entries():
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.3).astype(np.float64)
    s = rng.standard_normal(300) + y
    valid = np.ones(300, bool)
    valid[:50] = False
    a, b = calibration.platt(s, y, valid, fit_scale=False)
    reference = minimize(lambda p: smoothed_log_loss([1.0, p[0]], s[valid], y[valid]),
                         x0=[0.0], method="Nelder-Mead",
                         options=dict(xatol=1e-9, fatol=1e-12)).x[0]
    assert a == 1.0
    np.testing.assert_allclose(b, reference, atol=1e-5)
