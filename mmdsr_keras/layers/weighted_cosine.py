"""The multi-perspective weighted cosine and the adjacency built from it.

Pure `keras.ops` functions, shared by `DynamicSemanticGCN` and its tests.
They are always evaluated in float32 by their caller: in bfloat16 the
cosine's rounding error exceeds the spread of the similarities.
"""

from keras import ops

# Added under the square root so that an all-zero vector normalises to zero
# instead of producing 0/0 (whose gradient is NaN everywhere upstream).
NORM_EPSILON = 1e-12
# Added to the row sum, and to the diagonal, so that every row sums to 1 and a
# row whose similarities are all cut becomes the identity row.
ROW_EPSILON = 1e-6


def safe_l2_normalize(x, axis=-1):
    """x / sqrt(sum(x^2) + 1e-12): zero stays zero, gradients stay finite."""
    return x / ops.sqrt(ops.sum(ops.square(x), axis=axis, keepdims=True) + NORM_EPSILON)


def multi_perspective_cosine(nodes, perspectives):
    """Mean over K perspectives of the cosine between perspective-weighted nodes.

    S(i, j) = (1/K) sum_k < n(w_k * v_i), n(w_k * v_j) >,  n(x) = x / sqrt(|x|^2 + 1e-12)

    Args:
        nodes: `(batch, C, D)` node features v.
        perspectives: `(K, D)` perspective weights w_k.

    Returns:
        `(batch, C, C)` similarities in [-1, 1].

    Example:
    >>> import numpy as np
    >>> v = np.array([[[1.0, 0.0], [1.0, 1.0]]], "float32")
    >>> s = multi_perspective_cosine(v, np.ones((1, 2), "float32"))
    >>> round(float(s[0, 0, 1]), 4)
    0.7071
    """
    # (B, 1, C, D) * (K, 1, D) -> (B, K, C, D)
    weighted = ops.expand_dims(nodes, 1) * ops.expand_dims(perspectives, 1)
    unit = safe_l2_normalize(weighted, axis=-1)
    cosines = ops.matmul(unit, ops.transpose(unit, (0, 1, 3, 2)))
    return ops.mean(cosines, axis=1)


def sparse_row_normalized_adjacency(similarity, threshold=0.0):
    """Keeps positive similarities above a threshold and row-normalises them.

    The design's equations are

        S' = max(S, 0) * 1[S > eps],   A(i, j) = S'(i, j) / (sum_j S'(i, j) + 1e-6)

    This computes instead

        A = (S' + 1e-6 I) / (rowsum(S') + 1e-6)

    which is the design's A plus 1e-6 / (rowsum(S') + 1e-6) on the diagonal:
    at most 1e-6 / S'(i, i) for a row that keeps anything (S(i, i) = 1 for
    every node with a non-zero weighted feature, so rows are empty only for
    nodes that are zero in every perspective, e.g. all nodes of an image whose
    category features coincide). It makes every row sum to exactly 1, and a
    row whose similarities are all cut becomes the identity row (the node
    keeps its own feature) instead of a zero row, smoothly as rowsum(S') -> 0.
    Blended with a row-stochastic prior, every row of A_b then sums to 1.

    Args:
        similarity: `(batch, C, C)` similarities.
        threshold: eps in [0, 1). Defaults to 0.

    Returns:
        `(batch, C, C)` row-stochastic adjacency.

    Example:
    >>> import numpy as np
    >>> a = sparse_row_normalized_adjacency(np.array([[[1.0, 0.5], [-0.2, -1.0]]], "float32"))
    >>> np.round(np.asarray(a[0], "float64"), 3).tolist()
    [[0.667, 0.333], [0.0, 1.0]]
    """
    kept = ops.relu(similarity) * ops.cast(similarity > threshold, similarity.dtype)
    eye = ops.eye(ops.shape(kept)[-1], dtype=kept.dtype)
    return (kept + ROW_EPSILON * eye) / (ops.sum(kept, axis=-1, keepdims=True) + ROW_EPSILON)
