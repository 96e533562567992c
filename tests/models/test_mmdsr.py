import h5py
import keras
import numpy as np
import pytest

import mmdsr_keras
from mmdsr_keras import build_explainer, build_mmdsr, class_names_of
from tests.gradient_check import loss_and_gradients
from tests.shared_data import shared_path

SMALL = dict(backbone="mobilenet_0.25", image_size=64, weights=None, units=16, num_heads=2)


def _images(n, size=64, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def _labels(n, c, seed=0):
    y = (np.random.default_rng(seed).random((n, c)) < 0.3).astype("float32")
    y[:, 0] = 1.0
    return y


def test_output_and_layers():
    model = build_mmdsr(class_names=["a", "b", "c"], **SMALL)
    assert model.output_shape == (None, 3)
    assert class_names_of(model) == ["a", "b", "c"]
    names = {layer.name for layer in model.layers}
    assert {"cross_layer_attention", "dual_branch", "semantic_graph", "backbone"} <= names
    stage_shapes = [tuple(t.shape[1:]) for t in model.get_layer("backbone").outputs]
    assert stage_shapes == [(8, 8, 64), (4, 4, 128), (2, 2, 256)]
    assert model.get_layer("cross_layer_attention").output.shape[1:] == (4, 4, 16)


@pytest.mark.parametrize(
    "switches, present, absent",
    [
        ({"cross_layer": False}, {"last_stage_projection"}, {"cross_layer_attention"}),
        ({"dual_branch": False}, {"cross_layer_attention"}, {"dual_branch"}),
        ({"graph": "none"}, {"semantic_graph"}, set()),
    ],
)
def test_ablation_switches(switches, present, absent):
    model = build_mmdsr(num_classes=3, **{**SMALL, **switches})
    names = {layer.name for layer in model.layers}
    assert present <= names and not (absent & names)
    assert model.predict(_images(2), verbose=0).shape == (2, 3)


def test_explainer_matches_model():
    model = build_mmdsr(num_classes=4, label_prior=np.eye(4), **SMALL)
    x = _images(2)
    out = build_explainer(model).predict(x, verbose=0)
    np.testing.assert_allclose(out["logits"], model.predict(x, verbose=0), atol=1e-5)
    assert out["class_attention"].shape == (2, 4, 4, 4)
    np.testing.assert_allclose(out["class_attention"].sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert out["adjacency"].shape == (2, 4, 4)
    # lambda A0 contributes exactly 0.5 per row; the dynamic part at most 0.5
    # (less while the centred nodes are still ~0 at initialisation).
    rows = out["adjacency"].sum(-1)
    assert np.all(rows >= 0.5 - 1e-5) and np.all(rows <= 1.0 + 1e-5)
    np.testing.assert_allclose(0.5 * out["global_logits"] + 0.5 * out["graph_logits"],
                               out["logits"], atol=1e-5)


def test_global_linear_variant_adds_a_linear_classifier_on_pooled_features(tmp_path):
    model = build_mmdsr(num_classes=3, global_linear=True, **SMALL)
    plain = build_mmdsr(num_classes=3, **SMALL)
    assert model.count_params() - plain.count_params() == 256 * 3 + 3
    dense = model.get_layer("global_linear")
    assert not np.any(dense.get_weights()[0])  # starts as plain MMDSR
    rng = np.random.default_rng(1)
    dense.set_weights([rng.normal(size=(256, 3)).astype("float32"),
                       rng.normal(size=3).astype("float32")])
    x = _images(2)
    parts = keras.Model(model.input, [model.get_layer("semantic_graph").output,
                                      model.get_layer("global_linear_pool").input])
    graph_logits, deepest = parts.predict(x, verbose=0)
    kernel, bias = dense.get_weights()
    expected = graph_logits + deepest.mean(axis=(1, 2)) @ kernel + bias
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert reloaded.head_args["global_linear"] is True
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pooling", ["max", "average_max"])
def test_global_linear_pooling_matches_numpy(tmp_path, pooling):
    model = build_mmdsr(num_classes=3, global_linear=True, global_pooling=pooling, **SMALL)
    width = 256 * (2 if pooling == "average_max" else 1)
    dense = model.get_layer("global_linear")
    assert dense.get_weights()[0].shape == (width, 3)
    rng = np.random.default_rng(2)
    dense.set_weights([rng.normal(size=(width, 3)).astype("float32"),
                       rng.normal(size=3).astype("float32")])
    x = _images(2)
    parts = keras.Model(model.input, [model.get_layer("semantic_graph").output,
                                      model.get_layer("global_linear_max_pool").input])
    graph_logits, deepest = parts.predict(x, verbose=0)
    pooled = deepest.max(axis=(1, 2))
    if pooling == "average_max":
        pooled = np.concatenate([deepest.mean(axis=(1, 2)), pooled], axis=-1)
    kernel, bias = dense.get_weights()
    expected = graph_logits + pooled @ kernel + bias
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert reloaded.head_args["global_pooling"] == pooling
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)


def test_unknown_global_pooling_is_refused():
    with pytest.raises(ValueError, match="global_pooling='sum'"):
        build_mmdsr(num_classes=3, global_linear=True, global_pooling="sum", **SMALL)


def _kernel_names(model):
    return sorted(v.path for v in model.trainable_weights if v.regularizer is not None)


@pytest.mark.parametrize("switches, layers", [
    ({}, {"cross_layer_attention", "dual_branch", "semantic_graph"}),
    ({"cross_layer": False, "dual_branch": False}, {"last_stage_projection_conv",
                                                     "semantic_graph"}),
])
def test_head_l2_penalises_the_head_kernels_against_numpy(tmp_path, switches, layers):
    mu = 3e-3
    model = build_mmdsr(num_classes=3, head_l2=mu, global_linear=True,
                        label_embeddings=np.ones((3, 4)), **{**SMALL, **switches})
    penalised = [v for v in model.trainable_weights if v.regularizer is not None]
    assert {v.path.split("/")[0] for v in penalised} == layers
    # Every kernel of the head, nothing else: biases, norms, scalars, the
    # perspectives, the backbone and the global linear path stay free.
    for layer_name in layers:
        for v in model.get_layer(layer_name).trainable_weights:
            expected = len(v.shape) >= 2 and v.name != "perspectives"
            assert (v.regularizer is not None) == expected, v.path
    assert not any(v.regularizer is not None for v in model.get_layer("backbone").weights)
    graph = model.get_layer("semantic_graph")
    assert graph.perspectives.regularizer is None and graph.embedding_kernel.regularizer
    model(_images(2))
    expected = mu * sum(float(np.sum(np.square(np.asarray(v)))) for v in penalised)
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)
    assert float(sum(build_mmdsr(num_classes=3, **SMALL).losses)) == 0.0
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.head_args["head_l2"] == mu and _kernel_names(loaded) == _kernel_names(model)
    loaded(_images(2))
    assert float(sum(loaded.losses)) == pytest.approx(expected, rel=1e-5)


def test_head_l2_adds_its_gradient_to_each_kernel_in_fit():
    mu, lr = 0.05, 1.0
    x, y = _images(2), _labels(2, 3)
    models = [build_mmdsr(num_classes=3, head_l2=l2, **SMALL) for l2 in (0.0, mu)]
    models[1].set_weights(models[0].get_weights())
    before = [np.asarray(v) for v in models[1].trainable_weights]
    for model in models:
        model.compile(optimizer=keras.optimizers.SGD(lr),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True))
        model.train_on_batch(x, y)
    # One SGD step: W' = W - lr (dBCE/dW + 2 mu W) on penalised kernels only.
    for v, free, w in zip(models[1].trainable_weights, models[0].trainable_weights, before):
        extra = lr * 2 * mu * w if v.regularizer is not None else 0.0
        np.testing.assert_allclose(np.asarray(v), np.asarray(free) - extra, rtol=1e-4,
                                   atol=1e-5, err_msg=v.path)


def test_save_and_load_give_identical_outputs(tmp_path):
    prior = mmdsr_keras.ml_gcn_label_prior(_labels(30, 3))
    model = build_mmdsr(num_classes=3, label_prior=prior, label_embeddings=np.ones((3, 4)),
                        trainable_global_weight=True, **SMALL)
    x = _images(2)
    model.compile(optimizer="sgd", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(x, _labels(2, 3), epochs=1, verbose=0)  # moves BN statistics off their init
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert class_names_of(loaded) == class_names_of(model)


def test_fit_lowers_loss_and_every_weight_gets_gradient():
    model = build_mmdsr(num_classes=4, trainable_prior_weight=True,
                        trainable_global_weight=True, **SMALL)
    x, y = _images(4), _labels(4, 4)
    loss, grads = loss_and_gradients(model, x, y)
    assert np.isfinite(loss)
    paths = [v.path for v in model.trainable_variables]
    zero = [p for p, g in zip(paths, grads) if g is None or not np.any(g != 0)]
    assert not zero, f"no gradient reaches {zero}"
    assert all(np.all(np.isfinite(g)) for g in grads)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    history = model.fit(x, y, epochs=8, batch_size=4, verbose=0).history["loss"]
    assert history[-1] < 0.7 * history[0]


def test_batch_size_one_trains():
    model = build_mmdsr(num_classes=3, **SMALL)
    model.compile(optimizer="sgd", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    loss = model.fit(_images(2), _labels(2, 3), batch_size=1, epochs=1, verbose=0).history["loss"]
    assert np.isfinite(loss[0])
    assert model.predict(_images(1), verbose=0).shape == (1, 3)


def test_all_zero_image_gives_finite_gradients():
    model = build_mmdsr(num_classes=3, **SMALL)
    loss, grads = loss_and_gradients(model, np.zeros((2, 64, 64, 3), "float32"), _labels(2, 3))
    assert np.isfinite(loss)
    assert all(g is None or np.all(np.isfinite(g)) for g in grads)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains(policy):
    keras.config.set_dtype_policy(policy)
    model = build_mmdsr(num_classes=3, **SMALL)
    assert model.get_layer("dual_branch").compute_dtype == policy.split("_")[1]
    assert model.output.dtype == "float32"
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    losses = model.fit(_images(4), _labels(4, 3), epochs=2, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses))


def test_user_backbone_with_stage_names():
    inputs = keras.Input((32, 32, 3))
    a = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="s2")(inputs)
    b = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="s4")(a)
    c = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="s8")(b)
    net = keras.Model(inputs, c)
    model = build_mmdsr(num_classes=2, backbone=net, stages=["s2", "s4", "s8"], image_size=32,
                        units=8, num_heads=2)
    assert model.get_layer("cross_layer_attention").output.shape[1:3] == (8, 8)
    assert model.predict(_images(1, 32), verbose=0).shape == (1, 2)
    with pytest.raises(ValueError, match="needs `stages`"):
        build_mmdsr(num_classes=2, backbone=net, image_size=32)
    with pytest.raises(ValueError, match=r"stage layer\(s\) \['nope'\] not found"):
        build_mmdsr(num_classes=2, backbone=net, stages=["s2", "nope"], image_size=32)


def test_non_multiple_of_32_input():
    model = build_mmdsr(num_classes=2, **{**SMALL, "image_size": 72})
    assert model.predict(_images(1, 72), verbose=0).shape == (1, 2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backbone": "resnet9"}, "Unknown backbone 'resnet9'. Valid names: convnext_small"),
        ({"image_size": 16}, "image_size=16 is too small for backbone 'mobilenet_0.25'"),
        ({"label_prior": np.eye(2)}, r"expected \(num_classes, num_classes\) = \(3, 3\)"),
        ({"label_embeddings": np.eye(2)}, r"expected \(num_classes, embedding_dim\) = \(3, e\)"),
        ({"weights": "/no/such/weights.h5"}, "weights file not found: '/no/such/weights.h5'"),
        ({"graph": "full"}, "graph='full'"),
    ],
)
def test_bad_input_is_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_mmdsr(num_classes=3, **{**SMALL, **kwargs})


def _h5_layer_weights(path):
    with h5py.File(path, "r") as f:
        out = {}
        for name in f.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else name
            group = f[name]
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
            if names:
                out[name] = [np.asarray(group[n]) for n in names]
        return out


@pytest.mark.slow
def test_real_mobilenet_weights_are_loaded_exactly():
    path = shared_path("weights", "mobilenet_2_5_224_tf_no_top.h5")
    expected = _h5_layer_weights(path)
    model = build_mmdsr(num_classes=3, backbone="mobilenet_0.25", image_size=96,
                        weights=str(path), units=16, num_heads=2)
    backbone = model.get_layer("backbone")
    checked = 0
    for name, arrays in expected.items():
        got = backbone.get_layer(name).get_weights()
        assert len(got) == len(arrays), name
        for g, e in zip(got, arrays):
            np.testing.assert_array_equal(g, e)
            checked += e.size
    assert checked == 218544  # every parameter of the file (its README)


def test_dropout_drops_whole_channels_of_the_graph_input_in_training_only(tmp_path):
    model = build_mmdsr(num_classes=3, dropout=0.5, global_linear=True, **SMALL)
    plain = build_mmdsr(num_classes=3, global_linear=True, **SMALL)
    assert model.count_params() == plain.count_params()
    plain.set_weights(model.get_weights())
    x = _images(2)
    np.testing.assert_allclose(model.predict(x, verbose=0), plain.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)  # inference: no dropout
    dropout = model.get_layer("head_dropout")
    reader = keras.Model(model.input, [dropout.input, dropout.output])
    dropped_share = []
    for _ in range(10):  # 10 x 2 x 16 channel draws: a 0.3..0.7 share fails with p < 1e-8
        before, after = (keras.ops.convert_to_numpy(t) for t in reader(x, training=True))
        # Each (image, channel) is either dropped everywhere or kept, scaled by 1 / (1 - rate).
        kept = np.abs(after - 2.0 * before).max(axis=(1, 2)) < 1e-4
        dropped = np.abs(after).max(axis=(1, 2)) == 0
        assert np.all(kept | dropped)
        dropped_share.append(dropped.mean())
    assert 0.3 < np.mean(dropped_share) < 0.7
    model.save(tmp_path / "m.keras")
    assert keras.saving.load_model(tmp_path / "m.keras").head_args["dropout"] == 0.5
