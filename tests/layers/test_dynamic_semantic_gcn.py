"""DynamicSemanticGCN against a numpy reference written from the design (section 3).

The reference follows the design's equations one image and one class at a
time: class maps, attention over positions, category nodes, centring, the
multi-perspective weighted cosine, sparsification, row normalisation (with
the identity row for a row that keeps nothing, as documented), the blend with
the row-normalised prior, the two residual GCN layers and the score fusion.
"""

import json
import os

import keras
import numpy as np
import pytest

from mmdsr_keras.label_prior import ml_gcn_label_prior
from mmdsr_keras.layers import DynamicSemanticGCN
from tests.layer_test_case import run_layer_test

DTYPES = ["float16", "bfloat16", "mixed_float16", "mixed_bfloat16"]


def _np(v):
    return keras.ops.convert_to_numpy(keras.ops.cast(v, "float32")).astype("float64")


def _weights(layer):
    return {v.path.split("/")[-1]: _np(v) for v in layer.weights}


def _lrelu(x):
    return np.where(x > 0, x, 0.2 * x)


def _unit(x):
    return x / np.sqrt(np.sum(x * x) + 1e-12)


def _design_reference(w, z, label_prior, lam, alpha, eps, mode):
    """Returns logits, attention (B, H, W, C), A_b, s_m, s_r, all float64."""
    b, h, wd, d = z.shape
    c = w["class_kernel"].shape[1]
    a0 = np.eye(c)
    if label_prior is not None:  # A0 = D^-1 prior, identity row where a row is empty
        for i in range(c):
            total = np.sum(label_prior[i])
            a0[i] = label_prior[i] / total if total > 0 else np.eye(c)[i]
    temperature = np.exp(w["log_temperature"])
    outs = {k: [] for k in ("logits", "att", "adj", "s_m", "s_r")}
    for bi in range(b):
        positions = z[bi].reshape(h * wd, d).astype("float64")
        s_m, att, v = np.zeros(c), np.zeros((h * wd, c)), []
        for ci in range(c):
            a_c = positions @ w["class_kernel"][:, ci] + w["class_bias"][ci]
            s_m[ci] = a_c.max()
            e = np.exp((a_c - a_c.max()) / temperature)
            att[:, ci] = e / e.sum()
            v_c = sum(att[p, ci] * (positions[p] @ w["value_kernel"]) for p in range(h * wd))
            if "embedding_kernel" in w:
                v_c = v_c + w["label_embeddings"][ci] @ w["embedding_kernel"]
            v.append(v_c)
        v = np.array(v)
        v_tilde = v - v.mean(axis=0)
        if mode == "dynamic":
            persp = w["perspectives"]
            s = np.array([[np.mean([_unit(wk * v_tilde[i]) @ _unit(wk * v_tilde[j]) for wk in persp])
                           for j in range(c)] for i in range(c)])
            s_kept = np.maximum(s, 0) * (s > eps)
            a_hat = np.zeros((c, c))
            for i in range(c):
                total = s_kept[i].sum()
                a_hat[i] = s_kept[i] / (total + 1e-6) if total > 0 else np.eye(c)[i]
            a_b = lam * a0 + (1 - lam) * a_hat
        else:
            a_b = a0
        if mode == "none":
            hidden = v
        else:
            h1 = _lrelu(a_b @ v_tilde @ w["gcn_kernel_1"])
            hidden = v + _lrelu(a_b @ h1 @ w["gcn_kernel_2"])
        s_r = np.array([w["graph_kernel"][ci] @ hidden[ci] + w["graph_bias"][ci] for ci in range(c)])
        for key, value in (("logits", alpha * s_m + (1 - alpha) * s_r), ("att", att.reshape(h, wd, c)),
                           ("adj", a_b), ("s_m", s_m), ("s_r", s_r)):
            outs[key].append(value)
    return tuple(np.array(outs[k]) for k in ("logits", "att", "adj", "s_m", "s_r"))


def _labels(rng, n=40, c=5):
    y = np.zeros((n, c), "float32")
    y[20:, :3] = rng.random((20, 3)) < 0.4
    y[20:, 1] = np.maximum(y[20:, 1], y[20:, 0])  # class 1 co-occurs with class 0
    y[:20, 4] = 1  # class 4: frequent, alone in its images, so without neighbours ...
    y[:3, 3] = 1  # ... but the neighbour of the rare class 3 (P(4 | 3) = 1)
    return y


def _randomise(layer, rng):
    for v in layer.trainable_weights:
        v.assign(rng.normal(scale=0.5, size=v.shape).astype("float32"))


@pytest.mark.parametrize("mode", ["dynamic", "static", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_matches_design_reference(mode, eps):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 4, 5, 6)).astype("float32")
    prior = ml_gcn_label_prior(_labels(rng))
    emb = rng.normal(size=(5, 4)).astype("float32")
    layer = DynamicSemanticGCN(
        num_classes=5, node_units=7, num_perspectives=3, sparsity_threshold=eps,
        prior_weight=0.3, global_weight=0.6, graph_mode=mode, label_prior=prior,
        label_embeddings=emb, return_details=True,
    )
    layer(z)
    _randomise(layer, rng)
    got = [keras.ops.convert_to_numpy(t) for t in layer(z)]
    want = _design_reference(_weights(layer), z, prior.astype("float64"), 0.3, 0.6, eps, mode)
    for name, g, e in zip(("logits", "attention", "adjacency", "s_m", "s_r"), got, want):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(got[2].sum(-1), 1.0, atol=1e-5)  # rows of A_b sum to 1
    np.testing.assert_allclose(got[1].reshape(3, 20, 5).sum(1), 1.0, atol=1e-5)


def test_default_prior_is_used_as_given():
    # ml_gcn_label_prior returns the row-normalised A0; the layer must not change it.
    prior = ml_gcn_label_prior(_labels(np.random.default_rng(1)))
    layer = DynamicSemanticGCN(num_classes=5, label_prior=prior)
    layer(np.zeros((1, 2, 2, 4), "float32"))
    a0 = _np(layer.prior)
    np.testing.assert_allclose(a0, prior, atol=1e-7)
    has_neighbours = (prior - np.diag(np.diag(prior))).sum(1) > 0
    assert has_neighbours[[0, 1, 3]].all() and not has_neighbours[4] and prior[3, 4] > 0
    np.testing.assert_allclose(np.diag(a0)[has_neighbours], 0.8, atol=1e-6)  # 1 - p
    assert a0[4, 4] == pytest.approx(1.0)
    np.testing.assert_allclose(a0.sum(1), 1.0, atol=1e-6)


def test_any_prior_is_row_normalised_with_identity_for_empty_rows():
    prior = np.array([[2.0, 2.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 3.0]])
    layer = DynamicSemanticGCN(num_classes=3, label_prior=prior)
    layer(np.zeros((1, 2, 2, 4), "float32"))
    np.testing.assert_allclose(_np(layer.prior), [[0.5, 0.5, 0], [0, 1, 0], [0.25, 0, 0.75]])


@pytest.mark.parametrize("trainable", [False, True])
def test_blend_rows_sum_to_one_when_dynamic_rows_are_empty(trainable):
    rng = np.random.default_rng(2)
    prior = ml_gcn_label_prior(_labels(rng))
    z = rng.normal(size=(2, 3, 3, 6)).astype("float32")
    # An all-zero image: every node is 0, so V~ = 0 and S = 0 exactly on every backend
    # (an image whose positions are merely alike leaves rounding noise in V~).
    z[1] = 0.0
    layer = DynamicSemanticGCN(num_classes=5, num_perspectives=3, prior_weight=0.3,
                               trainable_prior_weight=trainable, label_prior=prior,
                               return_details=True)
    layer(z)
    _randomise(layer, rng)
    lam = float(keras.ops.convert_to_numpy(layer.blend_weights()[0]))
    _, _, adjacency, _, _ = (keras.ops.convert_to_numpy(t) for t in layer(z))
    np.testing.assert_allclose(adjacency.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(adjacency[1], lam * prior + (1 - lam) * np.eye(5), atol=1e-5)


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


def _exact_case(rng):
    """Inputs and per-position weights exact in float16 and bfloat16 (small
    multiples of 1/4), so that the projections are exact in every dtype and
    what remains to compare is the float32 part."""
    z = rng.integers(-2, 3, size=(2, 3, 3, 6)).astype("float32")
    exact = {"class_kernel": rng.integers(-4, 5, size=(6, 5)) / 4,
             "class_bias": rng.integers(-4, 5, size=5) / 4,
             "value_kernel": rng.integers(-4, 5, size=(6, 7)) / 4}
    return z, exact


def _check_dtype_case(layer, compute_dtype, rng):
    z, exact = _exact_case(rng)
    layer(keras.ops.cast(z, compute_dtype))
    assert layer.compute_dtype == compute_dtype
    for v in layer.weights:
        name = v.path.split("/")[-1]
        if name in exact:
            v.assign(exact[name].astype("float32"))
        else:  # the float32 part keeps float32 weights
            assert keras.backend.standardize_dtype(v.dtype) == "float32", name
            if v.trainable:
                v.assign(rng.normal(scale=0.5, size=v.shape).astype("float32"))
    got = [keras.ops.convert_to_numpy(t) for t in layer(keras.ops.cast(z, compute_dtype))]
    want = _design_reference(_weights(layer), z, None, 0.5, 0.5, 0.0, "dynamic")
    for name, g, e in zip(("logits", "attention", "adjacency", "s_m", "s_r"), got, want):
        assert g.dtype == np.float32, name
        # float32 accuracy: a bfloat16/float16 cosine or softmax would be off by ~1e-2
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_as_the_layer_dtype(dtype):
    layer = DynamicSemanticGCN(num_classes=5, node_units=7, num_perspectives=3,
                               return_details=True, dtype=dtype)
    _check_dtype_case(layer, dtype.split("_")[-1], np.random.default_rng(3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_as_the_global_policy(dtype):
    keras.config.set_dtype_policy(dtype)  # reset to float32 after each test by conftest
    default = DynamicSemanticGCN(num_classes=5, node_units=7, num_perspectives=3,
                                 return_details=True)
    assert default.dtype_policy.name == "float32"  # the default stays float32 ...
    _check_dtype_case(default, "float32", np.random.default_rng(4))
    # ... and the layer follows the global policy when asked to
    following = DynamicSemanticGCN(num_classes=5, node_units=7, num_perspectives=3,
                                   return_details=True, dtype=None)
    assert following.dtype_policy.name == dtype
    _check_dtype_case(following, dtype.split("_")[-1], np.random.default_rng(5))


def test_mixed_precision_output_close_to_float32_on_random_weights():
    rng = np.random.default_rng(6)
    z = rng.normal(size=(2, 4, 4, 8)).astype("float32")
    reference = DynamicSemanticGCN(num_classes=5, num_perspectives=3)
    expected = keras.ops.convert_to_numpy(reference(z))
    mixed = DynamicSemanticGCN(num_classes=5, num_perspectives=3, dtype="mixed_bfloat16")
    mixed(z)
    mixed.set_weights(reference.get_weights())
    got = keras.ops.convert_to_numpy(mixed(z))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, atol=0.1, rtol=0.05)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"label_prior": np.eye(3)}, r"expected \(num_classes, num_classes\) = \(4, 4\)"),
        ({"label_embeddings": np.ones((3, 5))}, r"expected \(num_classes, embedding_dim\) = \(4, e\)"),
        ({"graph_mode": "full"}, "graph_mode"),
        ({"sparsity_threshold": 1.0}, r"\[0, 1\)"),
        ({"label_density": [0.1, 0.2]}, r"expected a float or \(4,\)"),
        ({"label_embeddings": np.ones((4, 5)), "label_embedding_dim": 6},
         "label_embedding_dim=6 but label_embeddings has width 5"),
        ({"label_embedding_dim": 0}, "label_embedding_dim must be a positive int"),
    ],
)
def test_bad_arguments_are_clear(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DynamicSemanticGCN(num_classes=4, **kwargs)


FLOAT32_POLICY = {"module": "keras", "class_name": "DTypePolicy",
                  "config": {"name": "float32"}, "registered_name": None}


@pytest.mark.parametrize(
    "kwargs, trainable, non_trainable",
    [
        # every optional weight: embeddings, learned lambda and alpha, the details tuple
        (dict(node_units=3, num_perspectives=2, sparsity_threshold=0.1, prior_weight=0.4,
              trainable_prior_weight=True, global_weight=0.3, trainable_global_weight=True,
              label_prior=[[2.0, 1.0], [0.0, 0.0]], label_embeddings=[[1.0, -1.0, 0.5]] * 2,
              label_density=[0.2, 0.3], return_details=True), 12, 2),
        # the fewest: no graph, no embeddings (the prior is still a weight)
        (dict(graph_mode="none"), 6, 1),
    ],
    ids=["all_options", "fewest_weights"],
)
def test_layer_contract(kwargs, trainable, non_trainable):
    z = np.random.default_rng(0).normal(size=(2, 2, 2, 4)).astype("float32")
    details = kwargs.get("return_details", False)
    shapes = [(2, 2), (2, 2, 2, 2), (2, 2, 2), (2, 2), (2, 2)] if details else (2, 2)
    run_layer_test(
        DynamicSemanticGCN, dict(num_classes=2, **kwargs), z,
        expected_output_shape=shapes, expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=non_trainable,
        # documented: float32 whatever the global policy, so exactly the float32 outputs
        mixed_precision_output_dtype="float32", mixed_precision_tolerance=(1e-6, 0.0),
    )


def test_config_holds_shapes_not_data():
    rng = np.random.default_rng(0)
    c = 1000
    layer = DynamicSemanticGCN(num_classes=c, label_prior=rng.random((c, c)),
                               label_embeddings=rng.normal(size=(c, 300)))
    config = layer.get_config()
    assert "label_prior" not in config and "label_embeddings" not in config
    assert config["label_embedding_dim"] == 300 and config["config_version"] == 2
    assert len(json.dumps(config)) < 2000
    clone = DynamicSemanticGCN.from_config(config)
    clone.build((None, 2, 2, 4))
    # from a config alone: the shapes are right, the values wait for the weights
    assert tuple(clone.embeddings.shape) == (c, 300) and not np.any(_np(clone.embeddings))
    np.testing.assert_array_equal(_np(clone.prior), np.eye(c))


def test_saved_model_carries_prior_and_embeddings_in_its_weights(tmp_path):
    rng = np.random.default_rng(1)
    raw = rng.random((3, 3)) * (rng.random((3, 3)) < 0.6)
    raw[1] = 0.0  # a row without mass: the identity row
    emb = rng.normal(size=(3, 2)).astype("float32")
    inputs = keras.Input((2, 2, 4))
    model = keras.Model(inputs, DynamicSemanticGCN(3, num_perspectives=2, label_prior=raw,
                                                   label_embeddings=emb, name="g")(inputs))
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    head = keras.saving.load_model(path).get_layer("g")
    a0 = raw / np.where(raw.sum(1, keepdims=True) > 0, raw.sum(1, keepdims=True), 1.0)
    a0[1] = [0.0, 1.0, 0.0]
    np.testing.assert_allclose(_np(head.prior), a0, rtol=1e-6)
    np.testing.assert_array_equal(_np(head.embeddings), emb)


def _legacy_config(prior, emb, **overrides):
    """A config as every version before `config_version` wrote it (checked on
    `git show 58012c8:mmdsr_keras/layers/dynamic_semantic_gcn.py`): the prior
    as given to the constructor, row-normalised at build, and E, as lists."""
    config = {
        "name": "old_head", "trainable": True, "dtype": FLOAT32_POLICY, "num_classes": 5,
        "node_units": 7, "num_perspectives": 3, "sparsity_threshold": 0.0, "prior_weight": 0.3,
        "trainable_prior_weight": False, "global_weight": 0.6, "trainable_global_weight": False,
        "graph_mode": "dynamic",
        "label_prior": None if prior is None else np.asarray(prior, "float32").tolist(),
        "label_embeddings": None if emb is None else np.asarray(emb, "float32").tolist(),
        "label_density": 0.05, "return_details": True,
    }
    config.update(overrides)
    return config


@pytest.mark.parametrize("kind", ["raw_counts", "row_normalised", "none"])
def test_legacy_config_computes_what_the_old_layer_computed(kind):
    rng = np.random.default_rng(7)
    labels = _labels(rng)
    prior = {"raw_counts": labels.T @ labels,  # co-occurrence counts, far from row-stochastic
             "row_normalised": ml_gcn_label_prior(labels), "none": None}[kind]
    emb = None if kind == "none" else rng.normal(size=(5, 4))
    layer = DynamicSemanticGCN.from_config(_legacy_config(prior, emb))
    z = rng.normal(size=(2, 3, 3, 6)).astype("float32")
    layer(z)
    _randomise(layer, rng)
    reference_prior = None if prior is None else np.asarray(prior, "float32").astype("float64")
    want = _design_reference(_weights(layer), z, reference_prior, 0.3, 0.6, 0.0, "dynamic")
    got = [keras.ops.convert_to_numpy(t) for t in layer(z)]
    for name, g, e in zip(("logits", "attention", "adjacency", "s_m", "s_r"), got, want):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4, err_msg=name)
    if emb is not None:
        np.testing.assert_allclose(_np(layer.embeddings), emb, rtol=1e-6)
    # saved again, it is in the new format
    config = layer.get_config()
    assert "label_prior" not in config and config["config_version"] == 2
    assert config["label_embedding_dim"] == (None if emb is None else 4)


@pytest.mark.parametrize("version", [3, "2", None])
def test_unknown_config_version_is_refused_clearly(version):
    config = DynamicSemanticGCN(num_classes=2, name="head").get_config()
    config["config_version"] = version
    with pytest.raises(ValueError, match=r"DynamicSemanticGCN: unsupported 'config_version'.*"
                                         r"layer 'head'.*versions 1 to 2.*release that saved it"):
        DynamicSemanticGCN.from_config(config)


def test_first_release_weight_layout_is_refused_clearly():
    layer = DynamicSemanticGCN(num_classes=2, num_perspectives=2, name="head")
    layer(np.zeros((1, 2, 2, 3), "float32"))
    store = {str(i): _np(v) for i, v in enumerate(layer.trainable_weights
                                                 + layer.non_trainable_weights)}
    store["2"], store["3"] = store["3"], store["2"]  # log_temperature before value_kernel
    with pytest.raises(ValueError, match="'head'.*first mmdsr_keras release.*log_temperature"):
        layer.load_own_variables(store)
    store["2"], store["3"] = store["3"], store["2"]
    layer.load_own_variables(store)  # the current layout loads
