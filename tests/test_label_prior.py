"""The ML-GCN prior, on a hand-worked 4-class example and against loop references.

nums = [10, 5, 4, 2]; pair counts c01=5, c02=2, c03=0, c12=1, c13=2, c23=0.
P(j|i) = c_ij / n_i:
    row 0: [-, .5, .2, 0]    -> binarised at .4: [0, 1, 0, 0]
    row 1: [1, -, .2, .4]    ->                  [1, 0, 0, 1]
    row 2: [.5, .25, -, 0]   ->                  [1, 0, 0, 0]
    row 3: [0, 1, 0, -]      ->                  [0, 1, 0, 0]

The loop references below are written from the formulas (the ML-GCN paper's
re-weighting, and the authors' released `gen_A` / `gen_adj`), not from the
implementation.
"""

import numpy as np
import pytest

from mmdsr_keras.label_prior import (
    cooccurrence_statistics,
    ml_gcn_label_prior,
    row_normalize,
    symmetric_normalize,
)

NUMS = np.array([10.0, 5.0, 4.0, 2.0])
COUNTS = np.array([[0, 5, 2, 0], [5, 0, 1, 2], [2, 1, 0, 0], [0, 2, 0, 0]], dtype=float)


def _binary_loops(counts, nums, tau):
    c = len(nums)
    b = np.zeros((c, c))
    for i in range(c):
        for j in range(c):
            if i != j and nums[i] > 0 and counts[i, j] / nums[i] >= tau:
                b[i, j] = 1.0
    return b


def _paper_loops(counts, nums, tau, p):
    """ML-GCN paper: neighbours share p, the node keeps 1 - p."""
    b = _binary_loops(counts, nums, tau)
    c = len(nums)
    a = np.zeros((c, c))
    for i in range(c):
        neighbours = b[i].sum()
        for j in range(c):
            if i == j:
                a[i, j] = 1 - p
            elif neighbours:
                a[i, j] = p * b[i, j] / neighbours
    return a


def _gen_a(counts, nums, tau, p):
    """The released gen_A: adj / nums, binarise, * p / (column sums + 1e-6), + I."""
    adj = counts / nums[:, None]
    adj = np.where(adj >= tau, 1.0, 0.0)
    np.fill_diagonal(adj, 0.0)  # the released pickles have a zero diagonal
    adj = adj * p / (adj.sum(0, keepdims=True) + 1e-6)
    return adj + np.identity(len(nums))


def _gen_adj(a):
    """The released gen_adj, transcribed: D = diag(A.sum(1)^-1/2); (A D)^T D."""
    d = np.diag(a.sum(1) ** -0.5)
    return (a @ d).T @ d


def _rows_to_one(m):
    return np.array([row / row.sum() if row.sum() > 0 else np.eye(len(m))[i]
                     for i, row in enumerate(m)])


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
    # rows sum to 1, so D = I and both normalisations change nothing
    np.testing.assert_allclose(ml_gcn_label_prior(counts=COUNTS, nums=NUMS), expected, atol=1e-6)
    np.testing.assert_allclose(
        ml_gcn_label_prior(counts=COUNTS, nums=NUMS, normalization="symmetric"), expected, atol=1e-6
    )


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
    # gen_adj: A0(i, j) = A'(j, i) / sqrt(d_i d_j)  (the transpose)
    expected = np.array([
        [1 / 1.125, 0.125 / np.sqrt(1.125 * 1.375), 0.125 / 1.125, 0.0],
        [0.125 / np.sqrt(1.375 * 1.125), 1 / 1.375, 0.0, 0.125 / np.sqrt(1.375 * 1.125)],
        [0.0, 0.0, 1 / 1.125, 0.0],
        [0.0, 0.25 / np.sqrt(1.125 * 1.375), 0.0, 1 / 1.125],
    ])
    got = ml_gcn_label_prior(counts=COUNTS, nums=NUMS, neighbour_weight=0.25,
                             variant="released_code", normalization="symmetric")
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(got, _gen_adj(a), atol=1e-6)
    assert got[3, 1] == pytest.approx(0.201008, abs=1e-6)
    assert got[1, 3] == pytest.approx(0.100504, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tau, p", [(0.4, 0.2), (0.3, 0.25)])
def test_matches_loop_references(seed, tau, p):
    rng = np.random.default_rng(seed)
    labels = (rng.random((60, 7)) < rng.uniform(0.05, 0.6, size=7)).astype(int)
    labels[:, 1] |= labels[:, 0]
    labels[:, 6] = 0
    labels[0, 6] = 1  # a rare class: P(j | 6) = 0 or 1
    counts, nums = cooccurrence_statistics(labels)
    assert nums.min() > 0
    paper = _paper_loops(counts, nums, tau, p)
    released = _gen_a(counts, nums, tau, p)
    d_paper = np.diag(paper.sum(1) ** -0.5)
    cases = {
        ("paper", None): paper,
        ("paper", "row"): _rows_to_one(paper),
        ("paper", "symmetric"): d_paper @ paper @ d_paper,
        ("released_code", None): released,
        ("released_code", "row"): _rows_to_one(released.T),
        ("released_code", "symmetric"): _gen_adj(released),
    }
    for (variant, normalization), expected in cases.items():
        got = ml_gcn_label_prior(labels, threshold=tau, neighbour_weight=p,
                                 variant=variant, normalization=normalization)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=f"{variant}, {normalization}")


@pytest.mark.parametrize("variant", ["paper", "released_code"])
def test_default_is_row_normalised(variant):
    rng = np.random.default_rng(3)
    labels = (rng.random((50, 6)) < 0.3).astype(int)
    labels[:, 5] = 0
    labels[:3, 5] = 1  # few images: likely no neighbours at tau
    got = ml_gcn_label_prior(labels, variant=variant)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
    assert np.all(got >= 0)


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
    np.testing.assert_allclose(ml_gcn_label_prior(labels, normalization=None)[2], [0, 0, 0.8])
    # row-normalised (the default), the class keeps only itself
    np.testing.assert_allclose(ml_gcn_label_prior(labels)[2], [0, 0, 1.0])


def test_symmetric_normalize_by_hand():
    a = np.array([[1.0, 3.0], [3.0, 1.0]])  # degrees 4, 4
    np.testing.assert_allclose(symmetric_normalize(a), a / 4)


def test_row_normalize_by_hand():
    a = np.array([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 2.0]])
    np.testing.assert_allclose(row_normalize(a), [[0.25, 0.75, 0], [0, 1, 0], [0.5, 0, 0.5]])


def test_bad_inputs():
    with pytest.raises(ValueError, match="either labels or"):
        ml_gcn_label_prior(np.eye(2), counts=np.eye(2), nums=np.ones(2))
    with pytest.raises(ValueError, match=r"expected \(C, C\) = \(3, 3\)"):
        ml_gcn_label_prior(counts=np.eye(2), nums=np.ones(3))
    with pytest.raises(ValueError, match="normalization must be 'row', 'symmetric' or None"):
        ml_gcn_label_prior(counts=COUNTS, nums=NUMS, normalization="column")
    with pytest.raises(ValueError, match="square"):
        row_normalize(np.ones((2, 3)))
