"""The quality bench's statistics against the package's AP meter and hand-made cases."""

import numpy as np

from tests.bench.bench_scripts import load_module

statistics = load_module("paired_statistics")


def test_vectorised_ap_equals_the_meter_with_ties_and_ignored_entries():
    from mmdsr_keras.evaluation import AveragePrecisionMeter

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, (60, 7)).astype(np.float32)  # many ties
    labels = rng.random((60, 7)) < 0.3
    ignore = rng.random((60, 7)) < 0.1
    labels[:, 6] = False  # a class without a positive: NaN in both
    meter = AveragePrecisionMeter()
    meter.add(scores, labels.astype(np.float32), ignore.astype(np.float32))
    expected = 100 * meter.average_precision()
    got = statistics._average_precisions(scores, labels, ignore)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert np.isnan(got[6])


def test_bootstrap_of_a_head_against_itself_and_against_noise():
    rng = np.random.default_rng(1)
    labels = (rng.random((200, 5)) < 0.3).astype(np.float32)
    ignore = np.zeros_like(labels)
    good = labels + rng.normal(scale=0.3, size=labels.shape)
    noise = rng.normal(size=labels.shape)
    assert statistics.paired_bootstrap(good, good, labels, ignore, rounds=50) == (0.0, 0.0, 0.0)
    observed, low, high = statistics.paired_bootstrap(good, noise, labels, ignore, rounds=200)
    assert 0 < low < observed < high
    full_good = np.nanmean(statistics._average_precisions(good, labels > 0, ignore > 0))
    full_noise = np.nanmean(statistics._average_precisions(noise, labels > 0, ignore > 0))
    assert observed == full_good - full_noise
