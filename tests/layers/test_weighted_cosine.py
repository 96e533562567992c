import keras
import numpy as np

from mmdsr_keras.layers.weighted_cosine import (
    multi_perspective_cosine,
    sparse_row_normalized_adjacency,
)


def _cosine_loops(nodes, perspectives):
    b, c, _ = nodes.shape
    out = np.zeros((b, c, c))
    for bi in range(b):
        for i in range(c):
            for j in range(c):
                total = 0.0
                for w in perspectives:
                    a, v = w * nodes[bi, i], w * nodes[bi, j]
                    total += a @ v / (np.linalg.norm(a) * np.linalg.norm(v))
                out[bi, i, j] = total / len(perspectives)
    return out


def test_cosine_matches_loops():
    rng = np.random.default_rng(0)
    nodes = rng.normal(size=(2, 5, 6)).astype("float32")
    perspectives = rng.normal(size=(3, 6)).astype("float32")
    got = keras.ops.convert_to_numpy(multi_perspective_cosine(nodes, perspectives))
    np.testing.assert_allclose(got, _cosine_loops(nodes.astype("float64"), perspectives), atol=1e-5)


def test_cosine_of_zero_node_is_zero_not_nan():
    nodes = np.zeros((1, 3, 4), "float32")
    nodes[0, 1] = [1, 2, 3, 4]
    got = keras.ops.convert_to_numpy(multi_perspective_cosine(nodes, np.ones((2, 4), "float32")))
    assert np.all(np.isfinite(got))
    assert got[0, 0, 0] == 0 and got[0, 0, 1] == 0
    np.testing.assert_allclose(got[0, 1, 1], 1.0, rtol=1e-6)


def test_sparsify_and_row_normalise_by_hand():
    s = np.array([[[1.0, 0.3, -0.5], [0.3, 1.0, 0.6], [-0.5, 0.6, 1.0]]], "float32")
    # eps = 0.4 cuts 0.3 and the negatives: rows keep [1], [1, .6], [.6, 1]
    got = keras.ops.convert_to_numpy(sparse_row_normalized_adjacency(s, threshold=0.4))
    expected = np.array([[1.0, 0, 0], [0, 1 / 1.6, 0.6 / 1.6], [0, 0.6 / 1.6, 1 / 1.6]])
    np.testing.assert_allclose(got[0], expected, atol=1e-5)
    # eps = 0 keeps 0.3 but still cuts the negative
    got = keras.ops.convert_to_numpy(sparse_row_normalized_adjacency(s, threshold=0.0))
    np.testing.assert_allclose(got[0, 0], [1 / 1.3, 0.3 / 1.3, 0], atol=1e-5)


def test_empty_row_becomes_the_identity_row():
    # row 0 keeps nothing (all cut), row 1 keeps something, row 2 keeps nothing at eps = .5
    s = np.array([[[-1.0, -0.2, 0.0], [0.3, 1.0, 0.2], [0.1, 0.4, 0.5]]], "float32")
    got = keras.ops.convert_to_numpy(sparse_row_normalized_adjacency(s, threshold=0.5))
    np.testing.assert_allclose(got[0], [[1, 0, 0], [0, 1, 0], [0, 0, 1]], atol=1e-5)
    got = keras.ops.convert_to_numpy(sparse_row_normalized_adjacency(s, threshold=0.0))
    np.testing.assert_allclose(got[0], [[1, 0, 0], [0.3 / 1.5, 1 / 1.5, 0.2 / 1.5], [0.1, 0.4, 0.5]],
                               atol=1e-5)


def test_rows_sum_to_one():
    rng = np.random.default_rng(1)
    s = rng.uniform(-1, 1, size=(4, 6, 6)).astype("float32")
    s[0, 2] = -1.0  # an empty row
    for eps in (0.0, 0.5, 0.9):
        got = keras.ops.convert_to_numpy(sparse_row_normalized_adjacency(s, threshold=eps))
        np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-6)
        assert np.all(got >= 0)
