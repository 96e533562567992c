"""The static label co-occurrence prior A0 of ML-GCN (Chen et al., CVPR 2019).

From training labels: counts(i, j) = #images with both i and j (i != j),
nums(i) = #images with i, and the conditional probability
P(j | i) = counts(i, j) / nums(i). ML-GCN binarises it at tau, re-weights
each row so that the neighbours share a total weight p and the node itself
keeps 1 - p, and symmetrically normalises: A0 = D^-1/2 A' D^-1/2.
"""

import numpy as np


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
    >>> symmetric_normalize(np.array([[1.0, 1.0], [1.0, 1.0]])).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    a = np.asarray(adjacency, dtype="float64")
    degree = a.sum(axis=1)
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)), 0.0)
    return inv_sqrt[:, None] * a * inv_sqrt[None, :]


def ml_gcn_label_prior(
    labels=None,
    *,
    counts=None,
    nums=None,
    threshold=0.4,
    neighbour_weight=0.2,
    normalization="symmetric",
    variant="paper",
):
    """ML-GCN's static prior A0 from labels, or from counts and per-class counts.

        P(j | i) = counts(i, j) / nums(i)           (0 where nums(i) = 0)
        A(i, j)  = 1[P(j | i) >= tau]
        "paper":         A'(i, j) = p A(i, j) / sum_{k != i} A(i, k),  A'(i, i) = 1 - p
        "released_code": A'(i, j) = p A(i, j) / (sum_k A(k, j) + 1e-6) + 1[i = j]
        A0 = D^-1/2 A' D^-1/2                        (normalization="symmetric")

    "paper" is the formula of the ML-GCN paper (a class without neighbours
    keeps only its self weight 1 - p); "released_code" reproduces the authors'
    published implementation, which divides by column sums, keeps a self
    weight of 1 and is used there with p = 0.25.

    Args:
        labels: `(num_images, C)` multi-hot training labels. Either this or
            both `counts` and `nums`.
        counts: `(C, C)` pair counts (the diagonal is ignored).
        nums: `(C,)` per-class image counts.
        threshold: tau. Defaults to 0.4.
        neighbour_weight: p. Defaults to 0.2.
        normalization: `"symmetric"` or `None` (return A'). Defaults to
            `"symmetric"`.
        variant: `"paper"` or `"released_code"`. Defaults to `"paper"`.

    Returns:
        `(C, C)` float32 prior.

    Example:
    >>> a0 = ml_gcn_label_prior([[1, 1, 0], [1, 1, 0], [0, 0, 1]], normalization=None)
    >>> a0.round(2).tolist()
    [[0.8, 0.2, 0.0], [0.2, 0.8, 0.0], [0.0, 0.0, 0.8]]
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
    if variant not in ("paper", "released_code"):
        raise ValueError(f"variant must be 'paper' or 'released_code', got {variant!r}.")
    if normalization not in ("symmetric", None):
        raise ValueError(f"normalization must be 'symmetric' or None, got {normalization!r}.")
    np.fill_diagonal(counts, 0.0)
    safe_nums = np.where(nums > 0, nums, 1.0)[:, None]
    conditional = np.where(nums[:, None] > 0, counts / safe_nums, 0.0)
    binary = (conditional >= threshold).astype("float64")
    np.fill_diagonal(binary, 0.0)
    if variant == "paper":
        row = binary.sum(axis=1, keepdims=True)
        reweighted = neighbour_weight * binary / np.where(row > 0, row, 1.0)
        np.fill_diagonal(reweighted, 1.0 - neighbour_weight)
    else:
        reweighted = neighbour_weight * binary / (binary.sum(axis=0, keepdims=True) + 1e-6)
        reweighted += np.eye(c)
    if normalization == "symmetric":
        reweighted = symmetric_normalize(reweighted)
    return reweighted.astype("float32")
