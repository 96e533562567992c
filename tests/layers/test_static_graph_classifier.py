"""StaticGraphClassifier against the ML-GCN equations in numpy, and its saved forms."""

import json
import os

import keras
import numpy as np
import pytest

from mmdsr_keras.label_prior import ml_gcn_label_prior
from mmdsr_keras.layers import StaticGraphClassifier
from tests.layer_test_case import run_layer_test
from tests.layers import numpy_reference as ref

FLOAT32_POLICY = {"module": "keras", "class_name": "DTypePolicy",
                  "config": {"name": "float32"}, "registered_name": None}


def _np(v):
    return keras.ops.convert_to_numpy(keras.ops.cast(v, "float32")).astype("float64")


def _reference(features, prior, embeddings, kernel_1, kernel_2):
    """W = A0 LReLU(A0 E W1) W2, logits = f W^T, one class and one image at a time."""
    c = prior.shape[0]
    hidden = np.array([ref.leaky_relu(sum(prior[i, j] * embeddings[j] for j in range(c)) @ kernel_1)
                       for i in range(c)])
    classifiers = np.array([sum(prior[i, j] * hidden[j] for j in range(c)) @ kernel_2
                            for i in range(c)])
    return np.array([[f @ w for w in classifiers] for f in features])


def _randomise(layer, rng):
    for v in layer.trainable_weights:
        v.assign(rng.normal(scale=0.5, size=v.shape).astype("float32"))


def _labels(rng, n=30, c=4):
    y = (rng.random((n, c)) < 0.4).astype("float32")
    y[:, 0] = 1.0
    return y


@pytest.mark.parametrize("with_embeddings", [True, False])
def test_matches_numpy_reference(with_embeddings):
    rng = np.random.default_rng(0)
    prior = ml_gcn_label_prior(_labels(rng), normalization="symmetric")
    emb = rng.normal(size=(4, 3)) if with_embeddings else None
    layer = StaticGraphClassifier(4, hidden_units=5, label_prior=prior, label_embeddings=emb)
    f = rng.normal(size=(3, 6)).astype("float32")
    layer(f)
    _randomise(layer, rng)
    e = emb if with_embeddings else np.eye(4)  # one-hot without embeddings
    want = _reference(f.astype("float64"), prior, e, _np(layer.kernel_1), _np(layer.kernel_2))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(f)), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_np(layer.prior), prior, rtol=1e-6)  # used as given


@pytest.mark.parametrize("with_embeddings", [True, False])
def test_layer_contract(with_embeddings):
    rng = np.random.default_rng(1)
    kwargs = dict(num_classes=3, hidden_units=4, label_prior=rng.random((3, 3)), name="mlgcn")
    if with_embeddings:
        kwargs["label_embeddings"] = rng.normal(size=(3, 5))
    run_layer_test(StaticGraphClassifier, kwargs, rng.normal(size=(2, 6)).astype("float32"),
                   expected_output_shape=(2, 3), expected_num_trainable_weights=2,
                   expected_num_non_trainable_weights=2)


def test_use_bias_adds_a_per_class_bias_and_round_trips():
    rng = np.random.default_rng(5)
    prior = rng.random((3, 3))
    layer = StaticGraphClassifier(3, hidden_units=4, label_prior=prior, use_bias=True)
    f = rng.normal(size=(2, 6)).astype("float32")
    layer(f)
    _randomise(layer, rng)
    want = _reference(f.astype("float64"), np.asarray(prior, "float32").astype("float64"),
                      np.eye(3), _np(layer.kernel_1), _np(layer.kernel_2)) + _np(layer.bias)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(f)), want, rtol=1e-4, atol=1e-4)
    assert layer.get_config()["use_bias"] is True
    run_layer_test(StaticGraphClassifier, dict(num_classes=3, hidden_units=4, use_bias=True),
                   f, expected_output_shape=(2, 3), expected_num_trainable_weights=3,
                   expected_num_non_trainable_weights=2)


def test_config_holds_shapes_not_data():
    rng = np.random.default_rng(2)
    c = 1000
    layer = StaticGraphClassifier(c, label_prior=rng.random((c, c)),
                                  label_embeddings=rng.normal(size=(c, 300)))
    config = layer.get_config()
    assert "label_prior" not in config and "label_embeddings" not in config
    assert config["label_embedding_dim"] == 300 and config["config_version"] == 2
    assert len(json.dumps(config)) < 1000
    one_hot = StaticGraphClassifier(3).get_config()
    assert one_hot["label_embedding_dim"] is None
    clone = StaticGraphClassifier.from_config(config)
    clone.build((None, 8))
    assert tuple(clone.embeddings.shape) == (c, 300) and not np.any(_np(clone.embeddings))


def test_saved_model_carries_prior_and_embeddings_in_its_weights(tmp_path):
    rng = np.random.default_rng(3)
    prior, emb = rng.random((3, 3)), rng.normal(size=(3, 2))
    inputs = keras.Input((4,))
    model = keras.Model(inputs, StaticGraphClassifier(3, hidden_units=4, label_prior=prior,
                                                      label_embeddings=emb, name="s")(inputs))
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    head = keras.saving.load_model(path).get_layer("s")
    np.testing.assert_allclose(_np(head.prior), prior, rtol=1e-6)
    np.testing.assert_allclose(_np(head.embeddings), emb, rtol=1e-6)


@pytest.mark.parametrize("with_embeddings", [True, False])
def test_legacy_config_computes_what_the_old_layer_computed(with_embeddings):
    # As the code before `config_version` wrote it (`git show 58012c8:mmdsr_keras/
    # layers/static_graph_classifier.py`): the prior and E as lists, both used as given.
    rng = np.random.default_rng(4)
    prior = rng.random((4, 4)) * 2.0  # not normalised in any way: must stay so
    emb = rng.normal(size=(4, 3)) if with_embeddings else None
    legacy = {"name": "old", "trainable": True, "dtype": FLOAT32_POLICY, "num_classes": 4,
              "hidden_units": 5, "label_prior": np.asarray(prior, "float32").tolist(),
              "label_embeddings": None if emb is None else np.asarray(emb, "float32").tolist()}
    layer = StaticGraphClassifier.from_config(legacy)
    f = rng.normal(size=(2, 6)).astype("float32")
    layer(f)
    _randomise(layer, rng)
    e = np.eye(4) if emb is None else np.asarray(emb, "float32")
    want = _reference(f.astype("float64"), np.asarray(prior, "float32").astype("float64"),
                      e.astype("float64"), _np(layer.kernel_1), _np(layer.kernel_2))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(f)), want, rtol=1e-4, atol=1e-4)
    config = layer.get_config()
    assert "label_prior" not in config and config["config_version"] == 2
    assert config["label_embedding_dim"] == (3 if with_embeddings else None)


def test_unknown_config_version_is_refused_clearly():
    config = StaticGraphClassifier(2, name="s").get_config()
    config["config_version"] = 3
    with pytest.raises(ValueError, match=r"StaticGraphClassifier: unsupported 'config_version'"
                                         r".*layer 's'.*release that saved it"):
        StaticGraphClassifier.from_config(config)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"label_prior": np.eye(2)}, r"label_prior has shape \(2, 2\); expected \(3, 3\)"),
        ({"label_embeddings": np.ones((2, 4))}, r"expected \(3, e\)"),
        ({"label_embeddings": np.ones((3, 4)), "label_embedding_dim": 5},
         "label_embedding_dim=5 but label_embeddings has width 4"),
        ({"label_embedding_dim": -1}, "label_embedding_dim must be a positive int"),
    ],
)
def test_bad_arguments_are_clear(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StaticGraphClassifier(3, **kwargs)
