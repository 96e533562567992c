"""Multi-label metrics of the field: ML-GCN's `AveragePrecisionMeter` in pure numpy.

This module re-implements (it does not copy) the semantics of the `AveragePrecisionMeter` of
ML-GCN (Chen et al., CVPR 2019), whose numbers every paper of the field (SSGRL, ADD-GCN, MSRN,
Q2L, MMDSR) reports, so that our mAP / CP / CR / CF1 / OP / OR / OF1 are comparable with the
published tables.

Notation, per class `c` over the `N` accumulated examples (`s` a logit, `y` a {0, 1} target,
`d` the "difficult" / ignore flag):

* AP (non-interpolated): sort the non-ignored examples of class `c` by descending score;
  `AP_c = (1 / P_c) Σ_{i : y_(i) = 1} prec@i` with `prec@i = (#positives in the first i) / i`
  and `P_c` the number of (non-ignored) positives. `mAP = 100 · mean_c AP_c`.
* Threshold metrics (a label is predicted when `s ≥ 0`, i.e. `sigmoid(s) ≥ 0.5`): `Ng_c`
  ground-truth positives, `Np_c` predicted positives, `Nc_c` correct predictions;
  `CP = mean_c Nc_c / Np_c`, `CR = mean_c Nc_c / Ng_c`, `CF1 = 2·CP·CR / (CP + CR)`,
  `OP = Σ Nc / Σ Np`, `OR = Σ Nc / Σ Ng`, `OF1 = 2·OP·OR / (OP + OR)`, with `Np_c` replaced by
  1 where it is 0 (as ML-GCN, also inside `Σ Np`).
* Top-k variants: only each image's k highest scores may be predicted, each of them only if its
  logit is ≥ 0 (ML-GCN's `overall_topk`); then the same formulas.

Conventions, and where they depart from (or settle what is undefined in) ML-GCN:

* **Ignored / difficult labels.** They are skipped in AP (they neither count as a positive nor
  take a rank), exactly as ML-GCN's `difficult_examples=True`. In the *threshold* metrics ML-GCN
  only maps the target -1 to 0, so a difficult label (target 0 there) counts as a **negative**: a
  prediction on it is a false positive. We reproduce that: for the threshold metrics the
  effective target is `targets · (1 − ignore_mask)`.
* **Ties.** Examples are ranked with the stable `np.argsort(-scores, kind="stable")`: equal
  scores keep the order in which the examples were added (first added ranks first). ML-GCN uses
  `torch.sort`, whose order among ties is unspecified, and scikit-learn's
  `average_precision_score` treats a run of ties as one threshold, so with ties the three can
  differ (never without ties). The top-k selection is stable too: among equal scores the lower
  class index wins.
* **Classes without positives.** (After ignoring difficult labels.) Their AP is undefined
  (ML-GCN divides by zero and crashes) and their `Nc/Ng` is 0/0 (ML-GCN produces NaN, which
  makes CR and CF1 NaN). We report NaN for their AP and leave them out of **every
  class-averaged metric**: mAP, CP and CR average over the classes with at least one positive (a
  `RuntimeWarning` is issued once per meter). The overall metrics OP/OR/OF1 still count all
  classes (a class without positives can only add false positives to `Σ Np`). Whenever every
  class has a positive the numbers are exactly ML-GCN's.
* **0/0 elsewhere.** `Np = 0` → `Nc/Np = 0` (ML-GCN's `Np = 1`); `F1 = 0` when `P + R = 0`;
  `OR` (and so `OF1`) is NaN when there is no positive at all, as are mAP/CP/CR/CF1.
* **OP is not scikit-learn's micro precision** when some class predicts nothing: the ML-GCN rule
  `Np = 1 where 0` is applied before the sum, so each such class adds 1 to the denominator.
* **NaN or infinite scores** (a diverged model) are refused with a `ValueError` in `add`:
  ranked anywhere, they would turn a broken model into a plausible-looking mAP.
* All returned metrics are percentages (×100); ML-GCN reports the threshold metrics as fractions.
"""

import math
import warnings

import numpy as np

THRESHOLD_METRICS = ("CP", "CR", "CF1", "OP", "OR", "OF1")


def from_ml_gcn_targets(t, zero_is_difficult=True):
    """Converts ML-GCN's {-1, 0, 1} targets to `(targets, ignore_mask)`.

    ML-GCN encodes a label as 1 (present), -1 (absent) and, on VOC, 0 ("difficult": ignored in
    AP, a negative in the threshold metrics). Its COCO loader only uses {-1, 1}.

    Args:
        t: array-like of shape `(N, C)` with values in {-1, 0, 1}.
        zero_is_difficult: whether 0 marks a difficult label (`ignore_mask` is 1 there), as
            ML-GCN's `difficult_examples=True`; if False, 0 is a plain negative. Defaults to
            True.

    Returns:
        `(targets, ignore_mask)`: `targets` is `uint8` with 1 exactly where `t == 1`;
        `ignore_mask` is `bool`, True where `t == 0` (all False if not `zero_is_difficult`).

    Raises:
        ValueError: if `t` holds a value outside {-1, 0, 1}.

    Example:
    >>> targets, ignore = from_ml_gcn_targets([[1, -1, 0]])
    >>> targets.tolist(), ignore.tolist()
    ([[1, 0, 0]], [[False, False, True]])
    """
    t = np.asarray(t)
    if not np.isin(t, (-1, 0, 1)).all():
        raise ValueError("ML-GCN targets must only contain -1, 0 and 1.")
    targets = (t == 1).astype(np.uint8)
    if zero_is_difficult:
        ignore_mask = t == 0
    else:
        ignore_mask = np.zeros(t.shape, dtype=bool)
    return targets, ignore_mask


def _binary(name, a, shape):
    """Validates a {0, 1} array of the given shape and returns it as bool."""
    a = np.asarray(a)
    if a.shape != shape:
        raise ValueError(f"`{name}` has shape {a.shape}, expected {shape} (the shape of `scores`).")
    if a.dtype == bool:
        return a.copy()
    if not np.isin(a, (0, 1)).all():
        hint = ""
        if np.any(a == -1):
            hint = (
                " It contains -1: for ML-GCN's {-1, 0, 1} convention use "
                "`from_ml_gcn_targets(t)` to get (targets, ignore_mask)."
            )
        raise ValueError(f"`{name}` must only contain 0 and 1.{hint}")
    return a == 1


def ranked_hits(scores, positive):
    """The positive flags of one class in stable descending-score order (the AP's ranking).

    Example:
    >>> ranked_hits(np.array([0.1, 0.9, 0.5]), np.array([True, False, True])).tolist()
    [False, True, True]
    """
    order = np.argsort(-scores, kind="stable")
    return positive[order]


def average_precision_of_hits(hits):
    """Non-interpolated AP (a fraction) of a ranked list of positive flags; NaN without positives.

    Example:
    >>> round(average_precision_of_hits(np.array([False, True, True])), 4)
    0.5833
    """
    num_pos = int(hits.sum())
    if num_pos == 0:
        return math.nan
    precision_at_i = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float(precision_at_i[hits].sum() / num_pos)


def _f1(p, r):
    if math.isnan(p) or math.isnan(r):
        return math.nan
    if p + r == 0:
        return 0.0
    return 2.0 * p * r / (p + r)


def _threshold_metrics(predicted, positive, valid):
    """CP/CR/CF1/OP/OR/OF1 (×100) from boolean `(N, C)` predictions and effective targets.

    `valid` marks the classes (with ≥ 1 positive) averaged in CP and CR.
    """
    n_g = positive.sum(axis=0).astype(np.float64)
    n_p = predicted.sum(axis=0).astype(np.float64)
    n_c = (positive & predicted).sum(axis=0).astype(np.float64)
    n_p[n_p == 0] = 1.0  # ML-GCN: Np = 1 where 0 (also inside Σ Np).
    op = n_c.sum() / n_p.sum()
    o_r = n_c.sum() / n_g.sum() if n_g.sum() > 0 else math.nan
    if valid.any():
        cp = float(np.mean(n_c[valid] / n_p[valid]))
        cr = float(np.mean(n_c[valid] / n_g[valid]))
    else:
        cp = cr = math.nan
    out = {
        "CP": cp,
        "CR": cr,
        "CF1": _f1(cp, cr),
        "OP": float(op),
        "OR": float(o_r),
        "OF1": _f1(float(op), float(o_r)),
    }
    return {k: 100.0 * v for k, v in out.items()}


class AveragePrecisionMeter:
    """Accumulates multi-label scores and computes ML-GCN's mAP and threshold metrics.

    Per class c, over the non-ignored examples sorted by descending score (stable sort),
    `AP_c = (1 / P_c) Σ_{i : y_(i) = 1} prec@i` and `mAP = 100 · mean_c AP_c`. With a label
    predicted when its logit is ≥ 0: `CP = mean_c Nc/Np`, `CR = mean_c Nc/Ng`,
    `CF1 = 2·CP·CR/(CP+CR)`, `OP = ΣNc/ΣNp`, `OR = ΣNc/ΣNg`, `OF1 = 2·OP·OR/(OP+OR)`
    (`Np = 1` where 0). The `_top{k}` variants only let each image's k highest scores be
    predicted (each still needs a logit ≥ 0). See the module docstring for ties, difficult
    labels and classes without positives.

    Args:
        num_classes: the number of classes C, checked on every `add`. Defaults to None: taken
            from the first batch.

    Example:
    >>> meter = AveragePrecisionMeter()
    >>> meter.add(np.array([[2.0, -1.0], [0.5, 1.0], [-3.0, 0.2]]),
    ...           np.array([[1, 0], [0, 1], [1, 1]]))
    >>> meter.average_precision().round(4).tolist()
    [0.8333, 1.0]
    >>> round(meter.compute()["mAP"], 2)
    91.67
    """

    def __init__(self, num_classes=None):
        if num_classes is not None and int(num_classes) < 1:
            raise ValueError(f"`num_classes` must be ≥ 1, got {num_classes}.")
        self._fixed_num_classes = None if num_classes is None else int(num_classes)
        self._warned = set()
        self.reset()

    def reset(self):
        """Forgets every accumulated example (the warn-once state is kept)."""
        self._scores = []
        self._targets = []
        self._ignore = []
        self._num_classes = self._fixed_num_classes
        self._cache = None

    def add(self, scores, targets, ignore_mask=None):
        """Accumulates one batch.

        Args:
            scores: array-like `(N, C)` of logits (anything monotone in them ranks the same,
                but the threshold metrics threshold at 0): numpy, eager TensorFlow, CPU torch
                or JAX.
            targets: array-like `(N, C)` multi-hot in {0, 1} (bool accepted). ML-GCN's
                {-1, 0, 1} targets go through `from_ml_gcn_targets` first.
            ignore_mask: `(N, C)` in {0, 1}: 1 where the label is "difficult" / ignored.
                Defaults to None: nothing ignored.

        Raises:
            ValueError: on a shape mismatch, a number of classes that differs from earlier
                batches, targets / mask outside {0, 1}, or a NaN / infinite score (a diverged
                model: ranking NaN last would report a meaningless mAP).
        """
        scores = np.array(scores, dtype=np.float64)  # a copy: later edits by the caller are harmless
        if scores.ndim != 2:
            raise ValueError(f"`scores` must have shape (N, C), got {scores.shape}.")
        if not np.all(np.isfinite(scores)):
            bad = int(np.sum(~np.isfinite(scores)))
            raise ValueError(
                f"`scores` holds {bad} NaN or infinite value(s) of {scores.size}: the model "
                "diverged or its inputs are broken; mAP of such scores means nothing."
            )
        targets = _binary("targets", targets, scores.shape)
        if ignore_mask is None:
            ignore = np.zeros(scores.shape, dtype=bool)
        else:
            ignore = _binary("ignore_mask", ignore_mask, scores.shape)
        if self._num_classes is None:
            self._num_classes = scores.shape[1]
        elif scores.shape[1] != self._num_classes:
            raise ValueError(
                f"Got {scores.shape[1]} classes, expected {self._num_classes} (earlier batches "
                "or `num_classes`)."
            )
        self._scores.append(scores)
        self._targets.append(targets)
        self._ignore.append(ignore)
        self._cache = None

    @property
    def num_examples(self):
        """Number of accumulated examples."""
        return int(sum(s.shape[0] for s in self._scores))

    @property
    def num_classes(self):
        """Number of classes (None before the first batch unless given)."""
        return self._num_classes

    def arrays(self):
        """The accumulated `(scores float64, targets bool, ignore_mask bool)`, `(N, C)` each."""
        if not self._scores:
            raise ValueError("The meter is empty: call `add()` first.")
        if self._cache is None:
            self._cache = (
                np.concatenate(self._scores, axis=0),
                np.concatenate(self._targets, axis=0),
                np.concatenate(self._ignore, axis=0),
            )
        return self._cache

    def _warn_once(self, key, message):
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    def _prepare(self):
        scores, targets, ignore = self.arrays()
        positive = targets & ~ignore  # effective targets: difficult → negative (ML-GCN)
        valid = positive.any(axis=0)
        if not valid.all():
            missing = np.flatnonzero(~valid).tolist()
            self._warn_once(
                "no_positive",
                f"{len(missing)} class(es) have no (non-ignored) positive example: {missing[:20]}"
                f"{' ...' if len(missing) > 20 else ''}. Their AP is NaN and they are left out of "
                "mAP, CP and CR.",
            )
        return scores, positive, ignore, valid

    def average_precision(self):
        """Per-class non-interpolated AP as fractions in [0, 1] (ML-GCN's `value()`).

        Returns:
            Array of shape `(C,)`; NaN for a class without a (non-ignored) positive.
        """
        scores, positive, ignore, _ = self._prepare()
        return self._average_precision(scores, positive, ignore)

    @staticmethod
    def _average_precision(scores, positive, ignore):
        ap = np.empty(scores.shape[1], dtype=np.float64)
        for c in range(scores.shape[1]):
            keep = ~ignore[:, c]  # difficult examples are skipped: no rank, no positive
            ap[c] = average_precision_of_hits(ranked_hits(scores[keep, c], positive[keep, c]))
        return ap

    def compute(self, top_k=3):
        """Computes every metric over the accumulated examples.

        Args:
            top_k: k of the top-k variants, clipped to C. Defaults to 3 (the field's).

        Returns:
            dict of Python floats, in percent: `mAP, CP, CR, CF1, OP, OR, OF1` and
            `CP_top{k}, CR_top{k}, CF1_top{k}, OP_top{k}, OR_top{k}, OF1_top{k}` (`_top3` by
            default), plus `AP`: the list of per-class APs in percent (NaN where undefined;
            `mAP` is their NaN-skipping mean).

        Raises:
            ValueError: if the meter is empty or `top_k < 1`.
        """
        top_k = int(top_k)
        if top_k < 1:
            raise ValueError(f"`top_k` must be ≥ 1, got {top_k}.")
        scores, positive, ignore, valid = self._prepare()
        ap = self._average_precision(scores, positive, ignore)
        metrics = {"mAP": float(100.0 * np.mean(ap[valid])) if valid.any() else math.nan}
        predicted = scores >= 0  # NaN → False
        metrics.update(_threshold_metrics(predicted, positive, valid))

        k = min(top_k, scores.shape[1])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        in_top = np.zeros_like(predicted)
        np.put_along_axis(in_top, top, True, axis=1)
        top_metrics = _threshold_metrics(predicted & in_top, positive, valid)
        metrics.update({f"{name}_top{top_k}": value for name, value in top_metrics.items()})
        metrics["AP"] = [float(100.0 * a) for a in ap]
        return metrics
