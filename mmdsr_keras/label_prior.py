"""The static label co-occurrence prior A0 of ML-GCN (Chen et al., CVPR 2019).

From training labels: counts(i, j) = #images with both i and j (i != j),
nums(i) = #images with i, and the conditional probability
P(j | i) = counts(i, j) / nums(i). ML-GCN binarises it at tau and re-weights
each row so that the neighbours share a total weight p and the node itself
keeps 1 - p (A'). Two normalisations of A' are offered:

- `"row"` (the default): every row divided by its sum, the A0 that
  `DynamicSemanticGCN` blends with its row-stochastic dynamic graph (the
  design's A_b = lambda A0 + (1 - lambda) A^ needs rows that sum to 1);
- `"symmetric"`: ML-GCN's D^-1/2 A' D^-1/2, for ML-GCN's own classifier
  (`StaticGraphClassifier`, the `"mlgcn"` baseline).
"""

import numpy as np

NORMALIZATIONS = ("row", "symmetric", None)
VARIANTS = ("paper", "released_code")


def cooccurrence_statistics(labels):
    """Co-occurrence counts and per-class counts of a multi-hot label matrix.

    Args:
        labels: `(num_images, C)` multi-hot {0, 1} (values > 0.5 count as
            present).

    Returns:
        `(counts, nums)`: `(C, C)` image counts of each pair with a zero
        diagonal, and `(C,)` image counts of each class.

    Example:
    >>> counts, nums = cooccurrence_statistics([[1, 1, 0], [1, 0, 1]])
    >>> counts[0].tolist(), nums.tolist()
    ([0.0, 1.0, 1.0], [2.0, 1.0, 1.0])
    """
    y = (np.asarray(labels, dtype="float64") > 0.5).astype("float64")
    if y.ndim != 2:
        raise ValueError(f"labels must be a (num_images, num_classes) matrix, got shape {y.shape}.")
    counts = y.T @ y
    nums = np.diag(counts).copy()
    np.fill_diagonal(counts, 0.0)
    return counts, nums


def symmetric_normalize(adjacency):
    """D^-1/2 A D^-1/2 with D the row sums (zero rows stay zero).

    Example:
    >>> symmetric_normalize(np.array([[1.0, 3.0], [3.0, 1.0]])).tolist()
    [[0.25, 0.75], [0.75, 0.25]]
    """
    a = np.asarray(adjacency, dtype="float64")
    degree = a.sum(axis=1)
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)), 0.0)
    return inv_sqrt[:, None] * a * inv_sqrt[None, :]


def row_normalize(adjacency):
    """D^-1 A with D the row sums; a row without mass becomes the identity row.

    Every row of the result sums to 1: a class with no mass at all keeps only
    itself (a self-loop of weight 1), so that blending the result with another
    row-stochastic graph stays row-stochastic.

    Example:
    >>> row_normalize(np.array([[3.0, 1.0], [0.0, 0.0]])).tolist()
    [[0.75, 0.25], [0.0, 1.0]]
    """
    a = np.asarray(adjacency, dtype="float64")
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"row_normalize expects a square (C, C) matrix, got shape {a.shape}.")
    sums = a.sum(axis=1, keepdims=True)
    return np.where(sums > 0, a / np.where(sums > 0, sums, 1.0), np.eye(a.shape[0]))


def ml_gcn_label_prior(
    labels=None,
    *,
    counts=None,
    nums=None,
    threshold=0.4,
    neighbour_weight=0.2,
    normalization="row",
    variant="paper",
):
    """ML-GCN's static prior A0 from labels, or from counts and per-class counts.

        P(j | i) = counts(i, j) / nums(i)           (0 where nums(i) = 0)
        B(i, j)  = 1[P(j | i) >= tau]               (i != j)
        "paper":         A'(i, j) = p B(i, j) / sum_k B(i, k),  A'(i, i) = 1 - p
        "released_code": A'(i, j) = p B(i, j) / (sum_k B(k, j) + 1e-6) + 1[i = j]

    and the returned A0 (`normalization`):

        "row":        A0 = D^-1 M                   (every row sums to 1)
        "symmetric":  A0 = D^-1/2 M D^-1/2
        None:         A0 = A'

    with D the row sums of A' and M = A' for `"paper"`, M = A'^T for
    `"released_code"`.

    `"paper"` is the formula of the ML-GCN paper (a class without neighbours
    keeps only its self weight 1 - p, which `"row"` turns into 1).
    `"released_code"` reproduces the authors' published implementation
    (`util.py` of github.com/Megvii-Nanjing/ML-GCN, used there with p = 0.25):
    `gen_A` is the A' above (it divides by *column* sums and adds a self weight
    of 1) and `gen_adj` computes `matmul(matmul(A, D).t(), D)` with
    `D = diag(A.sum(1) ** -0.5)`, i.e. D^-1/2 A'^T D^-1/2 (note the
    transpose), which is what the network propagates with. So `"symmetric"`
    returns exactly `gen_adj(gen_A(...))`, `None` returns `gen_A(...)`, and
    `"row"` row-normalises the propagated orientation A'^T (whose rows carry
    total neighbour weight p and self weight 1).

    Defaults to `"row"`, the A0 `DynamicSemanticGCN` expects (it blends A0 with
    a row-normalised dynamic graph, so A0's rows must sum to 1). Pass
    `normalization="symmetric"` for ML-GCN's classifier
    (`StaticGraphClassifier`, the `"mlgcn"` baseline). With the default
    `"paper"` variant, A' rows already sum to 1 except those of classes
    without neighbours, so `"row"` and `"symmetric"` differ only there and
    in the columns of those classes.

    Args:
        labels: `(num_images, C)` multi-hot training labels. Either this or
            both `counts` and `nums`.
        counts: `(C, C)` pair counts (the diagonal is ignored).
        nums: `(C,)` per-class image counts.
        threshold: tau. Defaults to 0.4.
        neighbour_weight: p. Defaults to 0.2.
        normalization: `"row"`, `"symmetric"` or `None` (return A').
            Defaults to `"row"`.
        variant: `"paper"` or `"released_code"`. Defaults to `"paper"`.

    Returns:
        `(C, C)` float32 prior.

    Example:
    >>> labels = [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    >>> ml_gcn_label_prior(labels, normalization=None).astype(float).round(2).tolist()
    [[0.8, 0.2, 0.0], [0.2, 0.8, 0.0], [0.0, 0.0, 0.8]]
    >>> ml_gcn_label_prior(labels).astype(float).round(2).tolist()
    [[0.8, 0.2, 0.0], [0.2, 0.8, 0.0], [0.0, 0.0, 1.0]]
    """
    if labels is not None:
        if counts is not None or nums is not None:
            raise ValueError("Pass either labels or (counts, nums), not both.")
        counts, nums = cooccurrence_statistics(labels)
    elif counts is None or nums is None:
        raise ValueError("ml_gcn_label_prior needs labels, or both counts and nums.")
    counts = np.asarray(counts, dtype="float64").copy()
    nums = np.asarray(nums, dtype="float64")
    c = nums.shape[0]
    if counts.shape != (c, c):
        raise ValueError(
            f"counts has shape {counts.shape}; expected (C, C) = ({c}, {c}) to match nums."
        )
    if variant not in VARIANTS:
        raise ValueError(f"variant must be 'paper' or 'released_code', got {variant!r}.")
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"normalization must be 'row', 'symmetric' or None, got {normalization!r}."
        )
    np.fill_diagonal(counts, 0.0)
    safe_nums = np.where(nums > 0, nums, 1.0)[:, None]
    conditional = np.where(nums[:, None] > 0, counts / safe_nums, 0.0)
    binary = (conditional >= threshold).astype("float64")
    np.fill_diagonal(binary, 0.0)
    if variant == "paper":
        row = binary.sum(axis=1, keepdims=True)
        reweighted = neighbour_weight * binary / np.where(row > 0, row, 1.0)
        np.fill_diagonal(reweighted, 1.0 - neighbour_weight)
        propagated = reweighted
    else:
        reweighted = neighbour_weight * binary / (binary.sum(axis=0, keepdims=True) + 1e-6)
        reweighted += np.eye(c)
        propagated = reweighted.T
    if normalization is None:
        result = reweighted
    elif normalization == "row":
        result = row_normalize(propagated)
    else:
        # D from the row sums of A' itself (gen_adj's A.sum(1)), applied to M.
        degree = reweighted.sum(axis=1)
        inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)), 0.0)
        result = inv_sqrt[:, None] * propagated * inv_sqrt[None, :]
    return result.astype("float32")
