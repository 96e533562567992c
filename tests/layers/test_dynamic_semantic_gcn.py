import keras
import numpy as np
import pytest

from mmdsr_keras.label_prior import ml_gcn_label_prior
from mmdsr_keras.layers import DynamicSemanticGCN
from tests.layers import numpy_reference as ref
from tests.layers.test_weighted_cosine import _cosine_loops


def _np(v):
    return keras.ops.convert_to_numpy(v).astype("float64")


def _reference(layer, z, prior_rows, lam, alpha, eps, mode, embeddings=None):
    b, h, w, d = z.shape
    z = z.reshape(b, h * w, d).astype("float64")
    maps = z @ _np(layer.class_kernel) + _np(layer.class_bias)
    s_m = maps.max(axis=1)
    att = ref.softmax(maps / np.exp(_np(layer.log_temperature)), axis=1)
    v = np.einsum("bnc,bnv->bcv", att, z @ _np(layer.value_kernel))
    if embeddings is not None:
        v = v + embeddings @ _np(layer.embedding_kernel)
    vc = v - v.mean(axis=1, keepdims=True)
    c = v.shape[1]
    if mode == "dynamic":
        s = _cosine_loops(vc, _np(layer.perspectives))
        s = np.where(s > eps, np.maximum(s, 0), 0.0)
        a_hat = s / (s.sum(-1, keepdims=True) + 1e-6)
        adj = lam * prior_rows + (1 - lam) * a_hat
    else:
        adj = np.broadcast_to(prior_rows, (b, c, c))
    if mode == "none":
        hidden = v
    else:
        h1 = ref.leaky_relu(adj @ vc @ _np(layer.gcn_kernel_1))
        hidden = v + ref.leaky_relu(adj @ h1 @ _np(layer.gcn_kernel_2))
    s_r = (hidden * _np(layer.graph_kernel)).sum(-1) + _np(layer.graph_bias)
    return alpha * s_m + (1 - alpha) * s_r, adj, att.reshape(b, h, w, c), s_m, s_r


def _labels(rng, n=40, c=4):
    y = (rng.random((n, c)) < 0.4).astype("float32")
    y[:, 1] = np.maximum(y[:, 1], y[:, 0])  # class 1 co-occurs with class 0
    return y


@pytest.mark.parametrize("mode", ["dynamic", "static", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_matches_numpy_reference(mode, eps):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 3, 3, 6)).astype("float32")
    prior = ml_gcn_label_prior(_labels(rng))
    emb = rng.normal(size=(4, 5)).astype("float32")
    layer = DynamicSemanticGCN(
        num_classes=4, node_units=7, num_perspectives=3, sparsity_threshold=eps,
        prior_weight=0.3, global_weight=0.6, graph_mode=mode, label_prior=prior,
        label_embeddings=emb, return_details=True,
    )
    layer(z)
    for v in layer.trainable_weights:
        v.assign(rng.normal(scale=0.5, size=v.shape).astype("float32"))
    logits, att, adj, s_m, s_r = (keras.ops.convert_to_numpy(t) for t in layer(z))
    prior_rows = prior / prior.sum(axis=1, keepdims=True)
    exp = _reference(layer, z, prior_rows, 0.3, 0.6, eps, mode, embeddings=emb)
    for got, want in zip((logits, adj, att, s_m, s_r), exp):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(adj.sum(-1), 1.0, atol=1e-4)  # rows of the blend sum to 1
    np.testing.assert_allclose(att.reshape(2, 9, 4).sum(1), 1.0, atol=1e-5)


def test_learned_blend_weights_start_at_given_values():
    layer = DynamicSemanticGCN(num_classes=3, prior_weight=0.2, trainable_prior_weight=True,
                               global_weight=0.7, trainable_global_weight=True)
    layer(np.zeros((1, 2, 2, 4), "float32"))
    lam, alpha = (float(keras.ops.convert_to_numpy(t)) for t in layer.blend_weights())
    assert lam == pytest.approx(0.2, abs=1e-5) and alpha == pytest.approx(0.7, abs=1e-5)
    names = {v.path.split("/")[-1] for v in layer.trainable_weights}
    assert {"prior_weight_logit", "global_weight_logit"} <= names


def test_bias_starts_at_logit_of_label_density():
    layer = DynamicSemanticGCN(num_classes=2, label_density=[0.1, 0.5])
    layer(np.zeros((1, 2, 2, 4), "float32"))
    np.testing.assert_allclose(_np(layer.class_bias), [np.log(0.1 / 0.9), 0.0], atol=1e-5)


def test_all_zero_features_give_finite_outputs():
    layer = DynamicSemanticGCN(num_classes=3, num_perspectives=2, return_details=True)
    outs = layer(np.zeros((2, 2, 2, 4), "float32"))
    for t in outs:
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(t)))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_computes_in_float32_under_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    layer = DynamicSemanticGCN(num_classes=3, num_perspectives=2)
    out = layer(np.random.default_rng(0).normal(size=(2, 2, 2, 4)).astype("float16"))
    assert layer.compute_dtype == "float32"
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"label_prior": np.eye(3)}, r"expected \(num_classes, num_classes\) = \(4, 4\)"),
        ({"label_embeddings": np.ones((3, 5))}, r"expected \(num_classes, embedding_dim\) = \(4, e\)"),
        ({"graph_mode": "full"}, "graph_mode"),
        ({"sparsity_threshold": 1.0}, r"\[0, 1\)"),
        ({"label_density": [0.1, 0.2]}, r"expected a float or \(4,\)"),
    ],
)
def test_bad_arguments_are_clear(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DynamicSemanticGCN(num_classes=4, **kwargs)


def test_config_round_trip():
    layer = DynamicSemanticGCN(num_classes=2, node_units=3, num_perspectives=4,
                               sparsity_threshold=0.1, prior_weight=0.4,
                               trainable_prior_weight=True, global_weight=0.3,
                               graph_mode="static", label_prior=np.eye(2),
                               label_embeddings=np.ones((2, 3)), label_density=[0.2, 0.3])
    clone = DynamicSemanticGCN.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    z = np.random.default_rng(0).normal(size=(1, 2, 2, 4)).astype("float32")
    layer(z)
    clone(z)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(z)),
                               keras.ops.convert_to_numpy(layer(z)), atol=1e-6)
