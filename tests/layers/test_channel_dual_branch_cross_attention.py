import keras
import numpy as np
import pytest

from mmdsr_keras.layers import ChannelDualBranchCrossAttention
from tests.layer_test_case import run_layer_test
from tests.layers import numpy_reference as ref


def _np(v):
    return keras.ops.convert_to_numpy(v).astype("float64")


def _randomise(layer, rng):
    for v in layer.weights:
        value = rng.normal(scale=0.5, size=v.shape)
        if "variance" in v.path:
            value = rng.uniform(0.5, 2.0, size=v.shape)
        v.assign(value.astype("float32"))


def _global(x, down, up):
    pooled = x.mean(axis=(1, 2))
    hidden = ref.relu(pooled @ _np(down.kernel) + _np(down.bias))
    return (hidden @ _np(up.kernel) + _np(up.bias))[:, None, None, :]


def _local(x, down, up, norms):
    def bn(t, n):
        return ref.batch_norm(t, _np(n.gamma), _np(n.beta), _np(n.moving_mean), _np(n.moving_variance))

    hidden = ref.relu(bn(x @ _np(down.kernel)[0, 0], norms[0]))
    return bn(hidden @ _np(up.kernel)[0, 0], norms[1])


def _reference(layer, x):
    x_g = x * ref.sigmoid(_global(x, layer.global_down, layer.global_up))
    x_l = x * ref.sigmoid(_local(x, layer.local_down, layer.local_up, layer.local_norms))
    m = ref.sigmoid(
        _global(x_l, layer.cross_global_down, layer.cross_global_up)
        + _local(x_g, layer.cross_local_down, layer.cross_local_up, layer.cross_local_norms)
    )
    return x + m * x_g + (1 - m) * x_l


@pytest.mark.parametrize("share", [True, False])
def test_matches_numpy_reference(share):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5, 8)).astype("float32")
    layer = ChannelDualBranchCrossAttention(reduction=4, share_branches=share)
    layer(x)
    _randomise(layer, rng)
    got = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_allclose(got, _reference(layer, x.astype("float64")), rtol=1e-4, atol=1e-4)


def test_sharing_reuses_weights_but_not_batch_norms():
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 8)).astype("float32")
    shared = ChannelDualBranchCrossAttention(reduction=2, share_branches=True)
    separate = ChannelDualBranchCrossAttention(reduction=2, share_branches=False)
    shared(x)
    separate(x)
    # separate adds a second global Dense pair and local conv pair
    extra = (8 * 4 + 4) + (4 * 8 + 8) + 8 * 4 + 4 * 8
    assert separate.count_params() - shared.count_params() == extra
    shared(x, training=True)
    mean_first = _np(shared.local_norms[1].moving_mean)
    mean_cross = _np(shared.cross_local_norms[1].moving_mean)
    assert not np.allclose(mean_first, mean_cross)


def test_batch_size_one_in_training():
    x = np.random.default_rng(0).normal(size=(1, 3, 3, 8)).astype("float32")
    out = keras.ops.convert_to_numpy(ChannelDualBranchCrossAttention()(x, training=True))
    assert np.all(np.isfinite(out))


def _random_statistics(layer, rng):
    for v in layer.non_trainable_weights:
        if "moving_mean" in v.path:
            v.assign(rng.normal(scale=0.5, size=v.shape).astype("float32"))
        else:
            v.assign(rng.uniform(0.5, 2.0, size=v.shape).astype("float32"))


@pytest.mark.parametrize("share, trainable", [(True, 14), (False, 20)])
def test_layer_contract(share, trainable):
    # 4 BatchNorms (gamma, beta trainable; moving mean, variance not) in both cases
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 8)).astype("float32")
    run_layer_test(
        ChannelDualBranchCrossAttention, dict(reduction=4, share_branches=share, name="dual"), x,
        expected_output_shape=(2, 3, 3, 8), expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=8, prepare_layer=_random_statistics,
    )
