"""Tests of the numpy ML-GCN meter: hand-worked cases, scikit-learn and a loop re-statement."""

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from mmdsr_keras.evaluation import AveragePrecisionMeter, format_metric_table, from_ml_gcn_targets

KEYS = ["mAP", "CP", "CR", "CF1", "OP", "OR", "OF1",
        "CP_top3", "CR_top3", "CF1_top3", "OP_top3", "OR_top3", "OF1_top3"]


def _meter(scores, targets, ignore=None, **kw):
    meter = AveragePrecisionMeter(**kw)
    meter.add(np.asarray(scores, dtype=np.float64), np.asarray(targets), ignore)
    return meter


# --------------------------------------------------------------------------------------------
# A straightforward loop re-statement of ML-GCN's meter (its {-1, 0, 1} targets, difficult = 0),
# used as an independent oracle. Order among ties: stable (first added first), as ours.
def _loop_ap(scores, targets_ml_gcn):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # Python's sort is stable
    pos = total = 0
    acc = 0.0
    for i in order:
        if targets_ml_gcn[i] == 0:  # difficult: skipped
            continue
        total += 1
        if targets_ml_gcn[i] == 1:
            pos += 1
            acc += pos / total
    return acc / pos


def _loop_threshold(pred_scores, targets_ml_gcn):
    t = np.where(targets_ml_gcn == -1, 0, targets_ml_gcn)  # difficult (0) stays 0: a negative
    n_class = t.shape[1]
    nc, np_, ng = np.zeros(n_class), np.zeros(n_class), np.zeros(n_class)
    for k in range(n_class):
        ng[k] = np.sum(t[:, k] == 1)
        np_[k] = np.sum(pred_scores[:, k] >= 0)
        nc[k] = np.sum(t[:, k] * (pred_scores[:, k] >= 0))
    np_[np_ == 0] = 1
    op, o_r = nc.sum() / np_.sum(), nc.sum() / ng.sum()
    cp, cr = np.sum(nc / np_) / n_class, np.sum(nc / ng) / n_class
    return {"CP": cp, "CR": cr, "CF1": 2 * cp * cr / (cp + cr),
            "OP": op, "OR": o_r, "OF1": 2 * op * o_r / (op + o_r)}


def _loop_topk_scores(scores, k):
    out = np.full(scores.shape, -1.0)
    for i in range(scores.shape[0]):
        top = sorted(range(scores.shape[1]), key=lambda j: -scores[i, j])[:k]
        for j in top:
            out[i, j] = 1.0 if scores[i, j] >= 0 else -1.0
    return out


# --------------------------------------------------------------------------------------------
# Hand-worked AP
def test_ap_five_examples_by_hand():
    # Sorted by score: 3(+) 2(-) 1(+) -1(+) -2(-); positives at ranks 1, 3, 4:
    # prec@1 = 1/1, prec@3 = 2/3, prec@4 = 3/4 -> AP = (1 + 2/3 + 3/4) / 3 = 29/36.
    # Given in a shuffled order so that the sort matters.
    scores = np.array([[-1.0], [3.0], [-2.0], [1.0], [2.0]])
    targets = np.array([[1], [1], [0], [1], [0]])
    meter = _meter(scores, targets)
    np.testing.assert_allclose(meter.average_precision(), [29 / 36])
    assert meter.compute()["mAP"] == pytest.approx(100 * 29 / 36)


def test_ap_difficult_examples_are_skipped():
    scores = np.array([[-1.0], [3.0], [-2.0], [1.0], [2.0]])
    targets = np.array([[1], [1], [0], [1], [0]])
    # Difficult negative (score 2): ranking 3(+) 1(+) -1(+) -2(-) -> AP = (1 + 1 + 1)/3 = 1.
    ignore = np.array([[0], [0], [0], [0], [1]])
    np.testing.assert_allclose(_meter(scores, targets, ignore).average_precision(), [1.0])
    # Difficult positive (score 1): ranking 3(+) 2(-) -1(+) -2(-) -> AP = (1 + 2/3)/2 = 5/6.
    ignore = np.array([[0], [0], [0], [1], [0]])
    np.testing.assert_allclose(_meter(scores, targets, ignore).average_precision(), [5 / 6])


def test_ties_keep_insertion_order():
    # Both examples score 0: stable sort ranks the first added first.
    # (+ then -) -> AP = 1; (- then +) -> AP = 1/2.
    assert _meter([[0.0], [0.0]], [[1], [0]]).average_precision()[0] == 1.0
    assert _meter([[0.0], [0.0]], [[0], [1]]).average_precision()[0] == 0.5


# --------------------------------------------------------------------------------------------
# Hand-worked threshold metrics
SCORES_4x3 = np.array([
    [2.0, -1.0, 0.5],
    [-0.5, 1.5, 3.0],
    [0.0, -0.1, -2.0],  # 0.0 is predicted (logit >= 0)
    [-3.0, -0.2, 0.1],
])
TARGETS_4x3 = np.array([
    [1, 0, 0],
    [0, 1, 1],
    [1, 1, 0],
    [0, 1, 1],
])


def test_threshold_metrics_4x3_by_hand():
    # Predicted (>= 0): [1,0,1] [0,1,1] [1,0,0] [0,0,1]
    # class 0: Ng=2 Np=2 Nc=2 -> P=1   R=1
    # class 1: Ng=3 Np=1 Nc=1 -> P=1   R=1/3
    # class 2: Ng=2 Np=3 Nc=2 -> P=2/3 R=1
    # CP = (1+1+2/3)/3 = 8/9, CR = (1+1/3+1)/3 = 7/9, CF1 = 2(8/9)(7/9)/(15/9) = 112/135
    # OP = 5/6, OR = 5/7, OF1 = 2(5/6)(5/7)/(5/6+5/7) = 10/13
    m = _meter(SCORES_4x3, TARGETS_4x3).compute()
    expected = {"CP": 8 / 9, "CR": 7 / 9, "CF1": 112 / 135, "OP": 5 / 6, "OR": 5 / 7, "OF1": 10 / 13}
    for key, value in expected.items():
        assert m[key] == pytest.approx(100 * value), key
    # With C = 3, top-3 keeps every class: identical.
    for key in expected:
        assert m[key + "_top3"] == pytest.approx(m[key])
    # AP: class 0 ranking 2(+) 0(+) -0.5 -3 -> 1; class 1: 1.5(+) -0.1(+) -0.2(+) -1 -> 1;
    # class 2: 3(+) 0.5(-) 0.1(+) -2 -> (1 + 2/3)/2 = 5/6.  mAP = (1 + 1 + 5/6)/3 = 17/18.
    assert m["AP"] == pytest.approx([100, 100, 100 * 5 / 6])
    assert m["mAP"] == pytest.approx(100 * 17 / 18)


def test_top1_on_4x3_by_hand_and_the_op_quirk():
    # Each image's best class: ex0 c0 (2.0), ex1 c2 (3.0), ex2 c0 (0.0 >= 0), ex3 c2 (0.1)
    # class 0: Ng=2 Np=2 Nc=2; class 1: Ng=3 Np=0 -> 1 Nc=0; class 2: Ng=2 Np=2 Nc=2
    # CP = CR = (1+0+1)/3 = 2/3; OP = 4/(2+1+2) = 4/5 (ML-GCN's Np=1 adds 1: sklearn's micro
    # precision would be 4/4); OR = 4/7; OF1 = 2(4/5)(4/7)/(4/5+4/7) = 2/3.
    m = _meter(SCORES_4x3, TARGETS_4x3).compute(top_k=1)
    assert "CP_top1" in m and "CP_top3" not in m
    expected = {"CP": 2 / 3, "CR": 2 / 3, "CF1": 2 / 3, "OP": 4 / 5, "OR": 4 / 7, "OF1": 2 / 3}
    for key, value in expected.items():
        assert m[key + "_top1"] == pytest.approx(100 * value), key


def test_top3_by_hand():
    scores = np.array([
        [3.0, 2.0, 1.0, 0.5, -1.0],    # top-3 = c0 c1 c2, all >= 0; c3 (0.5) is 4th
        [-2.0, -1.0, 0.5, -0.5, -3.0],  # top-3 = c2 c3 c1; only c2 >= 0
    ])
    targets = np.array([
        [1, 0, 0, 1, 0],
        [0, 1, 1, 1, 1],
    ])
    m = _meter(scores, targets).compute()
    # All labels, predicted: [1,1,1,1,0] [0,0,1,0,0]
    # c0 Ng1 Np1 Nc1 | c1 Ng1 Np1 Nc0 | c2 Ng1 Np2 Nc1 | c3 Ng2 Np1 Nc1 | c4 Ng1 Np0->1 Nc0
    # CP = (1+0+1/2+1+0)/5 = 1/2, CR = (1+0+1+1/2+0)/5 = 1/2, OP = 3/6, OR = 3/6.
    for key in ("CP", "CR", "CF1", "OP", "OR", "OF1"):
        assert m[key] == pytest.approx(50.0), key
    # Top-3, predicted: [1,1,1,0,0] [0,0,1,0,0]  (c3 of ex0 dropped: not in the top 3)
    # c0 Ng1 Np1 Nc1 | c1 Ng1 Np1 Nc0 | c2 Ng1 Np2 Nc1 | c3 Ng2 Np0->1 Nc0 | c4 Ng1 Np0->1 Nc0
    # CP = (1+0+1/2+0+0)/5 = 0.3, CR = (1+0+1+0+0)/5 = 0.4, CF1 = 0.24/0.7
    # OP = 2/(1+1+2+1+1) = 1/3, OR = 2/6 = 1/3, OF1 = 1/3
    expected = {"CP": 0.3, "CR": 0.4, "CF1": 0.24 / 0.7, "OP": 1 / 3, "OR": 1 / 3, "OF1": 1 / 3}
    for key, value in expected.items():
        assert m[key + "_top3"] == pytest.approx(100 * value), key


def test_topk_ties_prefer_lower_class_index():
    # All four scores tie: top-2 = classes 0 and 1, both wrong; the true classes 2, 3 are not
    # predicted -> OP_top2 = 0 / (1+1+1+1) = 0, OR_top2 = 0.
    with pytest.warns(RuntimeWarning):  # classes 0 and 1 have no positive
        m = _meter([[1.0, 1.0, 1.0, 1.0]], [[0, 0, 1, 1]]).compute(top_k=2)
    assert m["OP_top2"] == 0.0 and m["OR_top2"] == 0.0 and m["OF1_top2"] == 0.0
    # top_k above C is clipped to C: both classes predicted.
    m = _meter([[1.0, 2.0]], [[1, 1]]).compute(top_k=10)
    assert m["OP_top10"] == 100.0 and m["OR_top10"] == 100.0


def test_difficult_counts_as_negative_in_threshold_metrics():
    # One class. ex1 is difficult (target 1 but ignored) and predicted: a false positive.
    # Effective positives: ex0 only. Predicted: ex0, ex1.  Ng=1 Np=2 Nc=1 -> CP=OP=1/2, CR=OR=1.
    # AP skips ex1: ranking ex0(+) ex2(-) -> 1.
    m = _meter([[1.0], [1.0], [-1.0]], [[1], [1], [0]], ignore=[[0], [1], [0]]).compute()
    assert m["CP"] == pytest.approx(50) and m["OP"] == pytest.approx(50)
    assert m["CR"] == pytest.approx(100) and m["OR"] == pytest.approx(100)
    assert m["mAP"] == pytest.approx(100)


# --------------------------------------------------------------------------------------------
# Undefined classes, NaN, guards
def test_class_without_positives_is_nan_and_excluded():
    scores = np.array([[2.0, 1.0, -1.0], [-1.0, 0.5, 0.3], [0.5, -2.0, 2.0]])
    targets = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 1]])  # class 1 has no positive
    meter = _meter(scores, targets)
    with pytest.warns(RuntimeWarning, match="no .*positive"):
        m = meter.compute()
    assert math.isnan(m["AP"][1])
    # class 0: 2(+) 0.5(-) -1(-) -> 1; class 2: 2(+) 0.3(+) -1 -> 1; mAP over classes 0, 2.
    assert m["mAP"] == pytest.approx(100.0)
    # CP/CR average over classes 0 and 2 only: c0 Ng1 Np2 Nc1 (P 1/2, R 1); c2 Ng2 Np2 Nc2.
    # Class 1 (Np=2, Nc=0) still adds its false positives to OP: OP = 3/6, OR = 3/3.
    assert m["CP"] == pytest.approx(75.0) and m["CR"] == pytest.approx(100.0)
    assert m["OP"] == pytest.approx(50.0) and m["OR"] == pytest.approx(100.0)
    # CR matches scikit-learn's macro recall with undefined classes left out (zero_division=nan).
    pred = (scores >= 0).astype(int)
    assert m["CR"] == pytest.approx(100 * recall_score(targets, pred, average="macro", zero_division=np.nan))
    # Warned once per meter.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meter.compute()
        meter.average_precision()


def test_no_positive_at_all_gives_nan_not_a_crash():
    with pytest.warns(RuntimeWarning):
        m = _meter([[1.0, -1.0]], [[0, 0]]).compute()
    for key in ("mAP", "CP", "CR", "CF1", "OR", "OF1"):
        assert math.isnan(m[key]), key
    assert m["OP"] == 0.0


def test_f1_is_zero_when_precision_and_recall_are_zero():
    m = _meter([[-1.0, 2.0], [3.0, -1.0]], [[1, 0], [0, 1]]).compute()
    assert m["CP"] == 0 and m["CR"] == 0 and m["CF1"] == 0.0
    assert m["OP"] == 0 and m["OR"] == 0 and m["OF1"] == 0.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_are_refused(bad):
    meter = AveragePrecisionMeter()
    with pytest.raises(ValueError, match="1 NaN or infinite value"):
        meter.add([[bad, 0.0], [1.0, -1.0]], [[1, 0], [0, 1]])
    assert meter.num_examples == 0  # nothing of the refused batch was kept


def test_input_validation():
    meter = AveragePrecisionMeter()
    with pytest.raises(ValueError, match="empty"):
        meter.compute()
    with pytest.raises(ValueError, match="from_ml_gcn_targets"):
        meter.add([[0.1, 0.2]], [[1, -1]])
    with pytest.raises(ValueError, match="shape"):
        meter.add([[0.1, 0.2]], [[1, 0, 1]])
    with pytest.raises(ValueError, match="0 and 1"):
        meter.add([[0.1, 0.2]], [[0.9, 0.1]])
    meter.add([[0.1, 0.2]], [[1, 0]])
    with pytest.raises(ValueError, match="classes"):
        meter.add([[0.1, 0.2, 0.3]], [[1, 0, 0]])
    with pytest.raises(ValueError, match="top_k"):
        meter.compute(top_k=0)
    meter.reset()
    assert meter.num_examples == 0
    meter.add([[0.1, 0.2, 0.3]], [[1, 0, 0]])  # after reset, a new C is accepted
    with pytest.raises(ValueError, match="classes"):
        AveragePrecisionMeter(num_classes=2).add([[0.1, 0.2, 0.3]], [[1, 0, 0]])


def test_from_ml_gcn_targets():
    t = np.array([[1, -1, 0], [-1, 1, 1]])
    targets, ignore = from_ml_gcn_targets(t)
    np.testing.assert_array_equal(targets, [[1, 0, 0], [0, 1, 1]])
    np.testing.assert_array_equal(ignore, [[False, False, True], [False, False, False]])
    _, ignore = from_ml_gcn_targets(t, zero_is_difficult=False)
    assert not ignore.any()
    with pytest.raises(ValueError):
        from_ml_gcn_targets([[2, 0]])


# --------------------------------------------------------------------------------------------
# Random cases against scikit-learn and the loop oracle
def _random_case(rng, n=120, c=7):
    scores = rng.normal(size=(n, c))  # continuous: no ties
    targets = (rng.random((n, c)) < 0.3).astype(np.int64)
    targets[0] = 1  # every class has a positive
    return scores, targets


def test_random_ap_matches_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(3):
        scores, targets = _random_case(rng)
        m = _meter(scores, targets).compute()
        for c in range(scores.shape[1]):
            assert m["AP"][c] == pytest.approx(100 * average_precision_score(targets[:, c], scores[:, c]))
        assert m["mAP"] == pytest.approx(100 * average_precision_score(targets, scores, average="macro"))


def test_random_threshold_metrics_match_sklearn_where_they_agree():
    # They agree when every class has >= 1 positive and >= 1 prediction (no Np=1 substitution).
    # CF1 is the F1 of the macro means, not sklearn's macro F1; OF1 is sklearn's micro F1.
    rng = np.random.default_rng(1)
    scores, targets = _random_case(rng)
    scores[1] = 1.0  # every class has a prediction
    pred = (scores >= 0).astype(np.int64)
    m = _meter(scores, targets).compute()
    assert m["OP"] == pytest.approx(100 * precision_score(targets, pred, average="micro"))
    assert m["OR"] == pytest.approx(100 * recall_score(targets, pred, average="micro"))
    assert m["OF1"] == pytest.approx(100 * f1_score(targets, pred, average="micro"))
    assert m["CP"] == pytest.approx(100 * precision_score(targets, pred, average="macro"))
    assert m["CR"] == pytest.approx(100 * recall_score(targets, pred, average="macro"))
    cp, cr = m["CP"], m["CR"]
    assert m["CF1"] == pytest.approx(2 * cp * cr / (cp + cr))


def test_random_with_difficult_matches_loop_restatement_of_ml_gcn():
    rng = np.random.default_rng(2)
    n, c = 150, 6
    scores = np.round(rng.normal(size=(n, c)), 1)  # rounded: plenty of ties (stable order in both)
    t = rng.choice([-1, 0, 1], size=(n, c), p=[0.6, 0.1, 0.3])
    t[0] = 1
    targets, ignore = from_ml_gcn_targets(t)
    meter = _meter(scores, targets, ignore)
    m = meter.compute(top_k=3)
    ap = meter.average_precision()
    for k in range(c):
        assert ap[k] == pytest.approx(_loop_ap(list(scores[:, k]), list(t[:, k])))
    assert m["mAP"] == pytest.approx(100 * np.mean([_loop_ap(list(scores[:, k]), list(t[:, k])) for k in range(c)]))
    ref = _loop_threshold(scores, t)
    ref_top = _loop_threshold(_loop_topk_scores(scores, 3), t)
    for key in ("CP", "CR", "CF1", "OP", "OR", "OF1"):
        assert m[key] == pytest.approx(100 * ref[key]), key
        assert m[key + "_top3"] == pytest.approx(100 * ref_top[key]), key


def test_batch_accumulation_equals_one_shot():
    rng = np.random.default_rng(3)
    scores, targets = _random_case(rng, n=50, c=5)
    ignore = rng.random(scores.shape) < 0.05
    one = _meter(scores, targets, ignore).compute()
    meter = AveragePrecisionMeter()
    for sl in (slice(0, 7), slice(7, 8), slice(8, 31), slice(31, 50)):
        meter.add(scores[sl], targets[sl], ignore[sl])
    assert meter.num_examples == 50
    many = meter.compute()
    assert set(many) == set(KEYS) | {"AP"}
    assert many == one


def test_format_metric_table():
    m = _meter(SCORES_4x3, TARGETS_4x3).compute()
    table = format_metric_table(m, class_names=["cat", "dog", "person"])
    lines = table.splitlines()
    assert lines[0].split() == ["mAP", "CP", "CR", "CF1", "OP", "OR", "OF1"]
    assert lines[1].split()[0] == "all" and lines[1].split()[1] == f"{m['mAP']:.2f}"
    assert lines[2].split()[:2] == ["top-3", "-"]
    assert any(line.split() == ["person", f"{m['AP'][2]:.2f}"] for line in lines)
    assert "cat" not in format_metric_table(m)
    with pytest.raises(ValueError):
        format_metric_table(m, class_names=["only-one"])
