"""CrossLayerAttention against a numpy reference written from the design (section 1).

The reference follows the design's order: resample every stage to the working
grid first (average-pool a larger map by max(1, round(H_s / H)) per axis with
"same" windows, then bilinear-resize to exactly the grid), then project,
batch-normalise and ReLU, add the level embedding, attend across levels at
each position and fuse with beta = softmax(b). The layer projects before the
resize (see its docstring); at inference both orders agree.
"""

import keras
import numpy as np
import pytest

from mmdsr_keras.backbones.feature_extractor import build_feature_extractor
from mmdsr_keras.layers import CrossLayerAttention
from tests.layer_test_case import run_layer_test
from tests.layers import numpy_reference as ref


def _np(v):
    return keras.ops.convert_to_numpy(v).astype("float64")


def _randomise(layer, rng):
    """Random values for every weight, incl. BN moving statistics (positive variances)."""
    for v in layer.weights:
        value = rng.normal(size=v.shape).astype("float32")
        if "variance" in v.path:
            value = rng.uniform(0.5, 2.0, size=v.shape).astype("float32")
        v.assign(value)


def _design_factor(n, grid):
    return max(1, int(np.floor(n / grid + 0.5)))


def _resample(f, grid):
    """The design's resample: pool a larger map, then resize to exactly the grid."""
    k = (_design_factor(f.shape[1], grid[0]), _design_factor(f.shape[2], grid[1]))
    x = ref.average_pool_same(f, k) if k != (1, 1) else f
    if x.shape[1:3] != tuple(grid):
        x = ref.bilinear_resize(x, grid)
    return x


def _reference(layer, maps):
    grid = tuple(maps[layer.grid_index].shape[1:3])
    levels = []
    for s, f in enumerate(maps):
        x = _resample(f.astype("float64"), grid)
        norm = layer.projection_norms[s]
        x = ref.relu(ref.batch_norm(x @ _np(layer.projections[s].kernel)[0, 0], _np(norm.gamma),
                                    _np(norm.beta), _np(norm.moving_mean),
                                    _np(norm.moving_variance)))
        levels.append(x + _np(layer.level_embeddings)[s])
    wq, wk, wv, wo = (_np(d.kernel) for d in
                      (layer.query, layer.key, layer.value, layer.output_projection))
    h, dqk, d = layer.num_heads, layer.key_units, layer.units
    beta = ref.softmax(_np(layer.level_logits), axis=0)
    out = np.zeros(levels[0].shape)
    for bi in range(out.shape[0]):
        for i in range(grid[0]):
            for j in range(grid[1]):
                p = np.stack([level[bi, i, j] for level in levels])  # (L, d)
                q, k, v = p @ wq, p @ wk, p @ wv
                r = np.zeros_like(p)
                for head in range(h):
                    qk = slice(head * dqk // h, (head + 1) * dqk // h)
                    vs = slice(head * d // h, (head + 1) * d // h)
                    for s in range(len(levels)):
                        att = ref.softmax(k[:, qk] @ q[s, qk] / np.sqrt(dqk / h), axis=0)
                        r[s, vs] = att @ v[:, vs]
                out[bi, i, j] = sum(beta[s] * (p[s] + r[s] @ wo) for s in range(len(levels)))
    return out


def _maps(rng, sizes, batch=2, channels=(3, 5, 6)):
    return [rng.normal(size=(batch,) + tuple(s) + (c,)).astype("float32")
            for s, c in zip(sizes, channels)]


CASES = {
    "multiples": [(8, 8), (4, 4), (2, 2)],
    "7->4 pools by 2": [(7, 7), (4, 4), (2, 2)],
    "15/8/4": [(15, 15), (8, 8), (4, 4)],
    "13->4 pools by 3, padding split": [(13, 13), (4, 4), (2, 2)],
    "9->4 pools by 2, then shrinks 5->4": [(9, 9), (4, 4), (2, 2)],
    "6->4 pools by 2, then grows 3->4": [(6, 6), (4, 4), (3, 3)],
    "non-square, factor per axis": [(16, 7), (8, 7), (4, 4)],
    # uneven "same" padding, which the torch backend's average_pool fills by
    # replicating edges: 14 -> k 3, padding (0, 1); 13 -> k 3, (1, 1), 5 -> 4
    "uneven padding, k = 3": [(14, 13), (5, 4), (2, 2)],
    "uneven padding, k = 4": [(13, 13), (3, 3), (2, 2)],
}


@pytest.mark.parametrize("sizes", list(CASES.values()), ids=list(CASES))
def test_matches_design_reference(sizes):
    rng = np.random.default_rng(0)
    maps = _maps(rng, sizes)
    layer = CrossLayerAttention(units=8, num_heads=2, key_units=4)
    layer(maps)
    _randomise(layer, rng)
    got = keras.ops.convert_to_numpy(layer(maps, training=False))
    assert got.shape == (2,) + sizes[1] + (8,)
    np.testing.assert_allclose(got, _reference(layer, maps), rtol=1e-4, atol=1e-4)


def test_grid_index_zero_resizes_every_other_level():
    rng = np.random.default_rng(1)
    maps = _maps(rng, [(5, 6), (3, 3), (2, 2)], batch=1)
    layer = CrossLayerAttention(units=8, num_heads=2, key_units=4, grid_index=0)
    layer(maps)
    _randomise(layer, rng)
    assert layer.pool_sizes == [(1, 1)] * 3
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(maps, training=False)),
                               _reference(layer, maps), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "backbone, image_size, stage_sizes, pools",
    [
        pytest.param("resnet50", 200, (25, 13, 7), [(2, 2), (1, 1), (1, 1)], marks=pytest.mark.slow),
        pytest.param("resnet50", 300, (38, 19, 10), [(2, 2), (1, 1), (1, 1)], marks=pytest.mark.slow),
        pytest.param("resnet50", 448, (56, 28, 14), [(2, 2), (1, 1), (1, 1)], marks=pytest.mark.slow),
        pytest.param("resnet50", 500, (63, 32, 16), [(2, 2), (1, 1), (1, 1)], marks=pytest.mark.slow),
        ("efficientnet_lite2", 260, (33, 17, 9), [(2, 2), (1, 1), (1, 1)]),
        ("mobilenet_0.25", 200, (25, 12, 6), [(2, 2), (1, 1), (1, 1)]),
        ("mobilenet_0.25", (200, 300), ((25, 37), (12, 18), (6, 9)), [(2, 2), (1, 1), (1, 1)]),
    ],
)
def test_odd_input_sizes_pool_the_shallow_stage(backbone, image_size, stage_sizes, pools):
    _, features, _ = build_feature_extractor(backbone, image_size)
    sizes = [s if isinstance(s, tuple) else (s, s) for s in stage_sizes]
    assert [tuple(f.shape[1:3]) for f in features] == sizes
    layer = CrossLayerAttention(units=8, num_heads=2)
    out = layer(features)
    assert layer.pool_sizes == pools
    assert tuple(out.shape[1:]) == sizes[1] + (8,)


@pytest.mark.parametrize("sizes", [[(63, 63), (32, 32), (16, 16)], [(25, 25), (12, 12), (6, 6)],
                                   [(25, 38), (13, 19), (7, 10)]],
                         ids=["resnet50@500", "mobilenet@200", "resnet50@200x300"])
def test_odd_stage_shapes_match_design_reference(sizes):
    rng = np.random.default_rng(2)
    maps = _maps(rng, sizes, batch=1)
    layer = CrossLayerAttention(units=8, num_heads=2, key_units=4)
    layer(maps)
    _randomise(layer, rng)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(maps, training=False)),
                               _reference(layer, maps), rtol=1e-4, atol=1e-4)


def test_training_normalises_a_deeper_stage_at_its_own_size():
    # Documented departure: BN's batch statistics come from the projection
    # before the resize (the 2 x 2 map here), not from the resized 4 x 4 one.
    rng = np.random.default_rng(3)
    maps = _maps(rng, [(8, 8), (4, 4), (2, 2)])
    layer = CrossLayerAttention(units=8, num_heads=2, key_units=4)
    layer(maps)
    norm = layer.projection_norms[2]
    layer(maps, training=True)
    projected = maps[2].astype("float64") @ _np(layer.projections[2].kernel)[0, 0]
    momentum = norm.momentum
    np.testing.assert_allclose(_np(norm.moving_mean), (1 - momentum) * projected.mean(axis=(0, 1, 2)),
                               rtol=1e-4, atol=1e-6)


def test_level_weights_are_a_softmax():
    layer = CrossLayerAttention(units=8, num_heads=2)
    layer([np.zeros((1, 4, 4, 2)), np.zeros((1, 2, 2, 2))])
    layer.level_logits.assign(np.array([0.0, np.log(3.0)], "float32"))
    np.testing.assert_allclose(layer.level_weights(), [0.25, 0.75], rtol=1e-6)


def _random_statistics(layer, rng):
    for v in layer.non_trainable_weights:
        low, high = (0.5, 2.0) if "variance" in v.path else (-0.5, 0.5)
        v.assign(rng.uniform(low, high, size=v.shape).astype("float32"))


def test_layer_contract():
    rng = np.random.default_rng(4)
    maps = _maps(rng, [(5, 6), (3, 3), (2, 2)], batch=2)
    # grid_index=0 changes the output grid, so a config that lost it would fail the shapes
    layer, _ = run_layer_test(
        CrossLayerAttention, dict(units=8, num_heads=2, key_units=4, grid_index=0, name="cla"),
        maps, expected_output_shape=(2, 5, 6, 8),
        # per level: projection kernel, BN gamma and beta (+ moving mean and variance);
        # then query, key, value, output projection, level embeddings and logits
        expected_num_trainable_weights=3 * 3 + 6, expected_num_non_trainable_weights=3 * 2,
        prepare_layer=_random_statistics,
    )
    config = layer.get_config()
    assert (config["units"], config["num_heads"], config["key_units"], config["grid_index"]) == (
        8, 2, 4, 0)


def test_rejects_heads_that_do_not_divide():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        CrossLayerAttention(units=10, num_heads=4, key_units=8)


def test_rejects_dynamic_spatial_shapes():
    with pytest.raises(ValueError, match="static spatial shapes"):
        CrossLayerAttention(units=8, num_heads=2).build([(1, None, None, 3), (1, 4, 4, 3)])


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_close_to_float32(policy):
    rng = np.random.default_rng(1)
    maps = [rng.normal(size=(2, s, s, 4)).astype("float32") for s in (9, 4, 2)]
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
