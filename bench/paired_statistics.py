"""Pooled out-of-fold metrics and paired bootstrap intervals for the quality bench."""

import warnings

import numpy as np

from mmdsr_keras.evaluation import AveragePrecisionMeter


def metrics(scores, labels, ignore, columns=None):
    """ML-GCN's mAP, CF1 and OF1 (percent) of `scores`, on all classes or `columns`."""
    if columns is not None:
        scores, labels, ignore = scores[:, columns], labels[:, columns], ignore[:, columns]
    meter = AveragePrecisionMeter()
    meter.add(scores, labels, ignore)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = meter.compute()
    return {k: float(values[k]) for k in ("mAP", "CF1", "OF1")}, np.asarray(values["AP"])


def _average_precisions(scores, positive, ignore):
    """Per-class ML-GCN AP in percent, vectorised; NaN where a class has no positive."""
    n, c = scores.shape
    # Ignored entries sort last and count as neither hit nor rank.
    keyed = np.where(ignore, -np.inf, scores)
    order = np.argsort(-keyed, axis=0, kind="stable")
    hits = np.take_along_axis(positive & ~ignore, order, axis=0)
    ranked = np.take_along_axis(~ignore, order, axis=0)
    ranks = np.cumsum(ranked, axis=0)
    precision = np.cumsum(hits, axis=0) / np.maximum(ranks, 1)
    num_pos = hits.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * np.where(num_pos > 0, (precision * hits).sum(axis=0) / num_pos, np.nan)


def paired_bootstrap(scores_a, scores_b, labels, ignore, rounds=1000, seed=0):
    """Mean and 95% interval of mAP(a) - mAP(b) over images resampled with replacement.

    Both heads are scored on the same resample; classes without a positive in
    a resample are skipped (for both).

    Returns:
        (observed difference, low, high), in mAP points.
    """
    positive, ignore = labels > 0, ignore > 0
    rng = np.random.default_rng(seed)
    differences = np.empty(rounds)
    for r in range(rounds):
        rows = rng.integers(0, len(labels), len(labels))
        ap_a = _average_precisions(scores_a[rows], positive[rows], ignore[rows])
        ap_b = _average_precisions(scores_b[rows], positive[rows], ignore[rows])
        differences[r] = np.nanmean(ap_a) - np.nanmean(ap_b)
    observed = np.nanmean(_average_precisions(scores_a, positive, ignore)) - np.nanmean(
        _average_precisions(scores_b, positive, ignore))
    low, high = np.percentile(differences, [2.5, 97.5])
    return float(observed), float(low), float(high)
