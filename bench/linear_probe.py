"""The linear-probe floor of the quality bench: logistic regression on frozen GAP features.

Per class, scikit-learn `LogisticRegression` (lbfgs, max_iter 3000) on the
standardised global-average-pooled features of the backbone's last registered
stage, images warped to the square input size, no test-time augmentation. One
C for all classes is chosen by an inner K-fold CV on the training rows
(highest pooled inner out-of-fold mAP).
"""

import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from mmdsr_keras.evaluation import AveragePrecisionMeter

C_GRID = (0.001, 0.01, 0.1, 1.0)


def gap_features(cache, view=0):
    """(N, C) float32: the last cached stage, averaged over its positions."""
    return np.asarray(cache.stages[-1][view], np.float32).mean(axis=(1, 2))


def _mean_ap(scores, labels, ignore):
    meter = AveragePrecisionMeter()
    meter.add(scores, labels, ignore)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(np.nanmean(meter.average_precision()))


def fit_predict(train_x, train_y, test_x, c):
    """Decision scores `(len(test_x), classes)` of per-class logistic regressions."""
    scaler = StandardScaler().fit(train_x)
    train_x, test_x = scaler.transform(train_x), scaler.transform(test_x)
    scores = np.zeros((len(test_x), train_y.shape[1]), np.float32)
    for k in range(train_y.shape[1]):
        column = train_y[:, k]
        if column.min() == column.max():
            # One label value only: no ranking to learn, a constant score.
            scores[:, k] = 10.0 if column[0] else -10.0
            continue
        model = LogisticRegression(C=c, solver="lbfgs", max_iter=3000)
        scores[:, k] = model.fit(train_x, column).decision_function(test_x)
    return scores


def choose_c(train_x, train_y, train_ignore, grid=C_GRID, folds=3, seed=0):
    """The C of `grid` with the best pooled inner out-of-fold mAP."""
    splits = list(KFold(folds, shuffle=True, random_state=seed).split(train_x))
    best, best_map = grid[0], -1.0
    for c in grid:
        oof = np.zeros(train_y.shape, np.float32)
        for inner_train, inner_test in splits:
            oof[inner_test] = fit_predict(train_x[inner_train], train_y[inner_train],
                                          train_x[inner_test], c)
        value = _mean_ap(oof, train_y, train_ignore)
        if value > best_map:
            best, best_map = c, value
    return best


def probe_scores(cache, train_rows, test_rows, grid=C_GRID):
    """(test scores, chosen C) of the linear probe trained on `train_rows` of `cache`."""
    x = gap_features(cache)
    # Difficult-only labels count as positives in training (as for the heads).
    y = cache.labels
    c = choose_c(x[train_rows], y[train_rows], cache.ignore_mask[train_rows] > 0, grid)
    return fit_predict(x[train_rows], y[train_rows], x[test_rows], c), c
