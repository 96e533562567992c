"""The ML-GCN prior on a hand-worked 4-class example.

nums = [10, 5, 4, 2]; pair counts c01=5, c02=2, c03=0, c12=1, c13=2, c23=0.
P(j|i) = c_ij / n_i:
    row 0: [-, .5, .2, 0]    -> binarised at .4: [0, 1, 0, 0]
    row 1: [1, -, .2, .4]    ->                  [1, 0, 0, 1]
    row 2: [.5, .25, -, 0]   ->                  [1, 0, 0, 0]
    row 3: [0, 1, 0, -]      ->                  [0, 1, 0, 0]
"""

import numpy as np
import pytest

from mmdsr_keras.label_prior import (
    cooccurrence_statistics,
    ml_gcn_label_prior,
    symmetric_normalize,
)

NUMS = np.array([10.0, 5.0, 4.0, 2.0])
COUNTS = np.array([[0, 5, 2, 0], [5, 0, 1, 2], [2, 1, 0, 0], [0, 2, 0, 0]], dtype=float)


def test_paper_variant_by_hand():
    # p = 0.2 shared by the neighbours of each row, self keeps 0.8
    expected = np.array([
        [0.8, 0.2, 0.0, 0.0],
        [0.1, 0.8, 0.0, 0.1],
        [0.2, 0.0, 0.8, 0.0],
        [0.0, 0.2, 0.0, 0.8],
    ])
    got = ml_gcn_label_prior(counts=COUNTS, nums=NUMS, normalization=None)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # rows sum to 1, so D = I and the symmetric normalisation changes nothing
    np.testing.assert_allclose(ml_gcn_label_prior(counts=COUNTS, nums=NUMS), expected, atol=1e-6)


def test_released_code_variant_by_hand():
    # A' = .25 B / colsum(B) + I, colsum(B) = [2, 2, 0, 1]; row sums d = [1.125, 1.375, 1.125, 1.125]
    a = np.array([
        [1.0, 0.125, 0.0, 0.0],
        [0.125, 1.0, 0.0, 0.25],
        [0.125, 0.0, 1.0, 0.0],
        [0.0, 0.125, 0.0, 1.0],
    ])
    got = ml_gcn_label_prior(counts=COUNTS, nums=NUMS, neighbour_weight=0.25,
                             variant="released_code", normalization=None)
    np.testing.assert_allclose(got, a, atol=1e-6)
    expected = np.array([
        [1 / 1.125, 0.125 / np.sqrt(1.125 * 1.375), 0.0, 0.0],
        [0.125 / np.sqrt(1.375 * 1.125), 1 / 1.375, 0.0, 0.25 / np.sqrt(1.375 * 1.125)],
        [0.125 / 1.125, 0.0, 1 / 1.125, 0.0],
        [0.0, 0.125 / np.sqrt(1.125 * 1.375), 0.0, 1 / 1.125],
    ])
    got = ml_gcn_label_prior(counts=COUNTS, nums=NUMS, neighbour_weight=0.25,
                             variant="released_code")
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got[1, 3] == pytest.approx(0.201008, abs=1e-6)


def test_threshold_is_inclusive_and_exposed():
    # P(3|1) = 0.4 exactly: kept at tau = .4, dropped at tau = .41
    kept = ml_gcn_label_prior(counts=COUNTS, nums=NUMS, normalization=None)
    dropped = ml_gcn_label_prior(counts=COUNTS, nums=NUMS, threshold=0.41, normalization=None)
    assert kept[1, 3] > 0 and dropped[1, 3] == 0
    assert dropped[1, 0] == pytest.approx(0.2)


def test_cooccurrence_statistics_by_hand():
    labels = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 0, 0]])
    counts, nums = cooccurrence_statistics(labels)
    np.testing.assert_array_equal(nums, [3, 2, 2])
    np.testing.assert_array_equal(counts, [[0, 2, 2], [2, 0, 1], [2, 1, 0]])
    from_labels = ml_gcn_label_prior(labels)
    np.testing.assert_allclose(from_labels, ml_gcn_label_prior(counts=counts, nums=nums))


def test_unseen_class_has_no_neighbours():
    labels = np.array([[1, 1, 0], [1, 1, 0]])
    got = ml_gcn_label_prior(labels, normalization=None)
    np.testing.assert_allclose(got[2], [0, 0, 0.8])


def test_symmetric_normalize_by_hand():
    a = np.array([[1.0, 3.0], [3.0, 1.0]])  # degrees 4, 4
    np.testing.assert_allclose(symmetric_normalize(a), a / 4)


def test_bad_inputs():
    with pytest.raises(ValueError, match="either labels or"):
        ml_gcn_label_prior(np.eye(2), counts=np.eye(2), nums=np.ones(2))
    with pytest.raises(ValueError, match=r"expected \(C, C\) = \(3, 3\)"):
        ml_gcn_label_prior(counts=np.eye(2), nums=np.ones(3))
