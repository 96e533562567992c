import keras
import numpy as np
import pytest

from mmdsr_keras.layers import CrossLayerAttention
from tests.layers import numpy_reference as ref


def _randomise(layer, rng):
    """Random values for every weight, incl. BN moving statistics (positive variances)."""
    for v in layer.weights:
        value = rng.normal(size=v.shape).astype("float32")
        if "variance" in v.path:
            value = rng.uniform(0.5, 2.0, size=v.shape).astype("float32")
        v.assign(value)


def _reference(layer, maps):
    grid = layer.grid_size
    levels = []
    for s, f in enumerate(maps):
        x = f.astype("float64")
        k = f.shape[1] // grid[0]
        if k > 1:
            x = ref.average_pool_same(x, k)
        kernel = keras.ops.convert_to_numpy(layer.projections[s].kernel)[0, 0]
        norm = layer.projection_norms[s]
        x = ref.relu(ref.batch_norm(
            x @ kernel, *(keras.ops.convert_to_numpy(w) for w in
                          (norm.gamma, norm.beta, norm.moving_mean, norm.moving_variance))))
        if x.shape[1:3] != grid:
            x = ref.bilinear_resize(x, grid)
        levels.append(x)
    p = np.stack(levels, axis=3) + keras.ops.convert_to_numpy(layer.level_embeddings)
    wq, wk, wv, wo = (keras.ops.convert_to_numpy(d.kernel) for d in
                      (layer.query, layer.key, layer.value, layer.output_projection))
    h = layer.num_heads
    dqk, d = layer.key_units, layer.units
    b, gh, gw, L, _ = p.shape
    r = np.zeros_like(p)
    for bi in range(b):
        for i in range(gh):
            for j in range(gw):
                seq = p[bi, i, j]  # (L, d)
                q, k, v = seq @ wq, seq @ wk, seq @ wv
                heads = []
                for head in range(h):
                    qs = q[:, head * dqk // h:(head + 1) * dqk // h]
                    ks = k[:, head * dqk // h:(head + 1) * dqk // h]
                    vs = v[:, head * d // h:(head + 1) * d // h]
                    att = ref.softmax(qs @ ks.T / np.sqrt(dqk / h), axis=-1)
                    heads.append(att @ vs)
                r[bi, i, j] = np.concatenate(heads, axis=-1)
    beta = ref.softmax(keras.ops.convert_to_numpy(layer.level_logits).astype("float64"), axis=0)
    return np.einsum("bxysc,s->bxyc", p + r @ wo, beta)


@pytest.mark.parametrize("sizes", [(8, 4, 2), (7, 4, 2)])
def test_matches_numpy_reference(sizes):
    rng = np.random.default_rng(0)
    maps = [rng.normal(size=(2, s, s, c)).astype("float32") for s, c in zip(sizes, (3, 5, 6))]
    layer = CrossLayerAttention(units=8, num_heads=2, key_units=4)
    layer(maps)
    _randomise(layer, rng)
    got = keras.ops.convert_to_numpy(layer(maps, training=False))
    np.testing.assert_allclose(got, _reference(layer, maps), rtol=1e-4, atol=1e-4)


def test_level_weights_are_a_softmax():
    layer = CrossLayerAttention(units=8, num_heads=2)
    layer([np.zeros((1, 4, 4, 2)), np.zeros((1, 2, 2, 2))])
    layer.level_logits.assign(np.array([0.0, np.log(3.0)], "float32"))
    np.testing.assert_allclose(layer.level_weights(), [0.25, 0.75], rtol=1e-6)


def test_config_round_trip():
    layer = CrossLayerAttention(units=12, num_heads=3, key_units=6, grid_index=0, name="cla")
    clone = CrossLayerAttention.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert (clone.units, clone.num_heads, clone.key_units, clone.grid_index) == (12, 3, 6, 0)


def test_rejects_heads_that_do_not_divide():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        CrossLayerAttention(units=10, num_heads=4, key_units=8)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_close_to_float32(policy):
    rng = np.random.default_rng(1)
    maps = [rng.normal(size=(2, s, s, 4)).astype("float32") for s in (8, 4, 2)]
    layer = CrossLayerAttention(units=8, num_heads=2)
    expected = keras.ops.convert_to_numpy(layer(maps, training=False))
    keras.config.set_dtype_policy(policy)
    mixed = CrossLayerAttention(units=8, num_heads=2)
    mixed(maps)
    mixed.set_weights(layer.get_weights())
    got = mixed(maps, training=False)
    assert keras.backend.standardize_dtype(got.dtype) == policy.split("_")[1]
    got = keras.ops.convert_to_numpy(keras.ops.cast(got, "float32"))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, atol=0.1, rtol=0.05)
