"""Per-class Platt calibration of a trained model's logits, fitted on its training images.

The transfer recipe's heads are fitted under strong L2 penalties: their
sigmoid scores are shrunk towards each class's base rate, so few labels pass
0.5 (CF1 collapses on COCO's 80 classes) and the scores of different classes
or models are not on one scale. After training, each class c gets a scale
a_c > 0 and a bias b_c by Platt's method: a one-variable logistic regression
of the label y on the logit s over the training images,

    p_c(x) = sigmoid(a_c * s_c(x) + b_c),

with Platt's smoothed targets t+ = (N+ + 1) / (N+ + 2) and t- = 1 / (N- + 2)
(N+/N- the class's positives and negatives), which keep a separable class
from pushing a_c to infinity. The pair goes into the model's output layer
(`LabelledLogits(calibration=True)`), so a saved or exported model serves the
calibrated logits. a_c > 0 keeps each class's ranking: a model's per-class AP
is unchanged; thresholded metrics and pooled scores move (docs/BENCHMARKS.md).
"""

import keras
import numpy as np

from mmdsr_keras.models.mmdsr import OUTPUT_LAYER
from mmdsr_keras.training.frozen_backbone_phase import predict_cached

MIN_SCALE = 1e-3


def platt_scaling(scores, labels, valid=None, iterations=50):
    """Platt's `(a, b)` for one class: minimises the smoothed-target log loss of sigmoid(a s + b).

    Newton's method from (1, 0) on the convex objective

        L(a, b) = -sum_i t_i log p_i + (1 - t_i) log(1 - p_i),  p_i = sigmoid(a s_i + b)

    subject to a >= 1e-3 (a ranking is never reversed). A class without a
    positive or without a negative keeps the identity (1, 0): nothing on the
    training images says how to move it.

    Args:
        scores: `(N,)` logits.
        labels: `(N,)` 0/1 labels.
        valid: `(N,)` bool, the entries to fit on (False: ignored, e.g. VOC's
            difficult objects). Defaults to all.
        iterations: Newton steps. Defaults to 50.

    Returns:
        `(a, b)` floats, with `a >= 1e-3`.

    Example:
    >>> import numpy as np
    >>> s = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    >>> a, b = platt_scaling(s, np.array([0, 0, 1, 0, 1, 1]))
    >>> bool(a > 0), platt_scaling(s, np.zeros(6))
    (True, (1.0, 0.0))
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    labels = np.asarray(labels, np.float64).reshape(-1)
    if valid is not None:
        keep = np.asarray(valid, bool).reshape(-1)
        scores, labels = scores[keep], labels[keep]
    positives = float((labels > 0).sum())
    negatives = float(len(labels) - positives)
    if positives == 0 or negatives == 0:
        return 1.0, 0.0
    target = np.where(labels > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(a, b):
        z = a * scores + b
        return float(np.sum(np.logaddexp(0, z) - target * z))

    def newton(a, b, fit_scale):
        # Damped Newton: a full step can overshoot on the logistic loss, so
        # it is halved until the loss goes down (the loss is convex).
        current = loss(a, b)
        for _ in range(iterations):
            p = 1 / (1 + np.exp(-np.clip(a * scores + b, -60, 60)))
            residual, curvature = p - target, p * (1 - p) + 1e-12
            if fit_scale:
                gradient = np.array([(residual * scores).sum(), residual.sum()])
                hessian = np.array([[(curvature * scores * scores).sum(),
                                     (curvature * scores).sum()],
                                    [(curvature * scores).sum(), curvature.sum()]])
                step = np.linalg.solve(hessian + 1e-9 * np.eye(2), gradient)
            else:
                step = np.array([0.0, residual.sum() / curvature.sum()])
            size = 1.0
            while size > 1e-8 and loss(a - size * step[0], b - size * step[1]) > current:
                size /= 2
            a, b = a - size * step[0], b - size * step[1]
            previous, current = current, loss(a, b)
            if previous - current < 1e-12 * max(1.0, abs(previous)):
                break
        return a, b

    a, b = newton(1.0, 0.0, fit_scale=True)
    if not (np.isfinite(a) and np.isfinite(b)):
        return 1.0, 0.0
    if a < MIN_SCALE:
        # Anti-correlated logits: the constrained optimum lies on a = MIN_SCALE,
        # with the bias refitted there.
        a, b = newton(MIN_SCALE, b, fit_scale=False)
    return float(a), float(b)


def fit_score_calibration(model, logits, labels, ignore_mask=None):
    """Fits the per-class calibration of `model`'s output layer from its own logits.

    `logits` are what `model` outputs now, so a model calibrated before is
    re-calibrated: the fit (a, b) on its outputs composes with the current
    (a0, b0) into a * a0 and a * b0 + b.

    Args:
        model: a model built with `score_calibration=True`.
        logits: `(N, C)` outputs of `model` on the training images (rows may
            repeat an image under several views).
        labels: `(N, C)` 0/1 labels.
        ignore_mask: `(N, C)`, 1 where a label is ignored. Defaults to none.

    Returns:
        `(scale, bias)`: the float32 `(C,)` arrays now in the output layer.

    Example:
    >>> import numpy as np, mmdsr_keras
    >>> model = mmdsr_keras.build_baseline("gap", num_classes=2, backbone="mobilenet_0.25",
    ...                                    image_size=32, weights=None, score_calibration=True)
    >>> logits = np.array([[3.0, -1.0], [1.0, 2.0], [-2.0, 0.5], [0.0, -3.0]])
    >>> scale, bias = fit_score_calibration(model, logits, np.array([[1, 0], [1, 1], [0, 1], [0, 0]]))
    >>> scale.shape, bool((scale > 0).all())
    ((2,), True)
    """
    layer = model.get_layer(OUTPUT_LAYER)
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
    if logits.ndim != 2 or logits.shape != labels.shape:
        raise ValueError(f"fit_score_calibration: logits {logits.shape} and labels "
                         f"{labels.shape} must both be (N, C).")
    valid = None if ignore_mask is None else np.asarray(ignore_mask) == 0
    fitted = np.array([platt_scaling(logits[:, c], labels[:, c],
                                     None if valid is None else valid[:, c])
                       for c in range(logits.shape[1])])
    scale0, bias0 = layer.get_calibration()
    scale = np.maximum(fitted[:, 0] * scale0, MIN_SCALE)
    bias = fitted[:, 0] * bias0 + fitted[:, 1]
    layer.set_calibration(scale, bias)
    return layer.get_calibration()


def calibrate_on_cache(model, cache, rows=None, views=None):
    """`fit_score_calibration` on the head's logits over every cached view of `rows`.

    The frozen phase's head sees the augmented views while training, so the
    views give the fit several near-independent samples per image.

    Args:
        model: a model built with `score_calibration=True`, its head trained.
        cache: the `StageFeatureCache` of the training images.
        rows: the cache rows to fit on. Defaults to all.
        views: the cached views. Defaults to all.

    Returns:
        `(scale, bias)` as `fit_score_calibration`.
    """
    rows = np.arange(len(cache)) if rows is None else np.asarray(rows)
    views = list(range(cache.num_views) if views is None else views)
    logits = np.concatenate([predict_cached(model, cache, rows, views=(v,)) for v in views])
    return fit_score_calibration(model, logits, np.tile(cache.labels[rows], (len(views), 1)),
                                 np.tile(cache.ignore_mask[rows], (len(views), 1)))


def calibrate_on_batches(model, batches):
    """`fit_score_calibration` on `model`'s logits over `(images, labels[, ignore_mask])` batches.

    For a model whose backbone was fine-tuned (cached features no longer
    match it): one pass over the training images, without augmentation.

    Returns:
        `(scale, bias)` as `fit_score_calibration`.
    """
    logits, labels, ignore = [], [], []
    for batch in batches:
        # NumPy in: a tf.data batch feeds the model on every backend.
        x, y = np.asarray(batch[0]), np.asarray(batch[1])
        logits.append(keras.ops.convert_to_numpy(model.predict_on_batch(x)).astype(np.float32))
        labels.append(y)
        ignore.append(np.asarray(batch[2]) if len(batch) > 2 else np.zeros_like(labels[-1]))
    return fit_score_calibration(model, np.concatenate(logits), np.concatenate(labels),
                                 np.concatenate(ignore))
