import json

import keras
import numpy as np
import pytest

import mmdsr_keras
from mmdsr_keras import MMDSRImageClassifier, build_mmdsr, ml_gcn_label_prior
from mmdsr_keras.data import load_shapes
from mmdsr_keras.models.head_model import build_stage_feature_model
from mmdsr_keras.training.parameter_group_adamw import ParameterGroupAdamW
from mmdsr_keras.training.training_recipe import recipe_defaults

SMALL = dict(backbone="mobilenet_0.25", image_size=64, weights=None, units=16, num_heads=2)


def _images(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 64, 64, 3)).astype("float32")


def _numpy_bce(logits, labels):
    p = 1 / (1 + np.exp(-logits.astype("float64")))
    return float(np.mean(-(labels * np.log(p) + (1 - labels) * np.log(1 - p))))


def test_build_mmdsr_returns_the_task_with_its_parts():
    model = build_mmdsr(class_names=["a", "b", "c"], **SMALL)
    assert isinstance(model, MMDSRImageClassifier)
    assert model.class_names == ["a", "b", "c"]
    assert model.backbone.name.startswith("mobilenet")
    # The head on the stage features is the model after its backbone.
    x = _images(3)
    stages = build_stage_feature_model(model).predict(x, verbose=0)
    np.testing.assert_allclose(model.head.predict(stages, verbose=0),
                               model.predict(x, verbose=0), atol=1e-5)
    # The backbone attribute is the network whose layers the graph uses.
    assert {id(v) for v in model.backbone.weights} <= {id(v) for v in model.weights}


def test_from_dataset_takes_the_prior_and_density_from_the_training_labels():
    train = load_shapes("train", num_images=24, image_size=64)
    keras.utils.set_random_seed(1)
    model = MMDSRImageClassifier.from_dataset(train, **SMALL)
    keras.utils.set_random_seed(1)
    explicit = build_mmdsr(
        class_names=train.class_names, label_density=float(train.labels.mean()),
        label_prior=ml_gcn_label_prior(train.labels, normalization="row"), **SMALL)
    assert model.class_names == train.class_names
    x = _images(2)
    np.testing.assert_allclose(model.predict(x, verbose=0), explicit.predict(x, verbose=0),
                               atol=1e-6)
    prior = keras.ops.convert_to_numpy(model.get_layer("semantic_graph").prior)
    counts = ml_gcn_label_prior(train.labels, normalization="row")
    np.testing.assert_allclose(prior, counts / counts.sum(1, keepdims=True), atol=1e-6)


def test_compile_defaults_are_the_recipe_for_one_phase():
    model = build_mmdsr(num_classes=3, **SMALL)
    model.compile()
    assert isinstance(model.optimizer, ParameterGroupAdamW)
    x, y = _images(4), (np.random.default_rng(0).random((4, 3)) < 0.5).astype("float32")
    loss = float(keras.ops.convert_to_numpy(model.loss(y, model(x, training=False))))
    assert loss == pytest.approx(_numpy_bce(keras.ops.convert_to_numpy(model(x)), y), rel=1e-5)

    head_kernel = model.get_layer("semantic_graph").trainable_weights[0]
    backbone_kernel = next(v for v in model.backbone.trainable_weights if "kernel" in v.path)
    before = [keras.ops.convert_to_numpy(v).copy() for v in (head_kernel, backbone_kernel)]
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    head_step, backbone_step = (
        np.abs(keras.ops.convert_to_numpy(v) - b).max()
        for v, b in zip((head_kernel, backbone_kernel), before))
    # Adam's first step is lr * g / (|g| + eps) ~= lr wherever g is not tiny:
    # 1e-3 for the head, a tenth of it for the backbone.
    rate = recipe_defaults("transfer", "mmdsr")["learning_rate"]
    assert head_step == pytest.approx(rate, rel=0.05)
    assert backbone_step == pytest.approx(rate * 0.1, rel=0.05)

    model.compile(phase="frozen")
    frozen_rate = recipe_defaults("transfer", "mmdsr")["frozen_learning_rate"]
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(
        frozen_rate)
    with pytest.raises(ValueError, match="phase='warm'"):
        model.compile(phase="warm")


def test_a_compiled_model_saved_and_loaded_keeps_its_optimizer(tmp_path):
    model = build_mmdsr(num_classes=2, **SMALL)
    model.compile(epochs=2, steps_per_epoch=1)
    x, y = _images(2), np.array([[1, 0], [0, 1]], "float32")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded) is MMDSRImageClassifier
    assert isinstance(loaded.optimizer, ParameterGroupAdamW)
    assert int(loaded.optimizer.iterations) == 1
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
    model.fit(x, y, epochs=1, verbose=0)
    loaded.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)


def test_preset_round_trip_and_layout(tmp_path):
    model = build_mmdsr(class_names=["cat", "dog"], label_prior=[[3, 1], [1, 2]], **SMALL)
    x = _images(2)
    model.save_to_preset(tmp_path / "run" / "preset")
    for folder in (tmp_path / "run" / "preset", tmp_path / "run"):
        loaded = MMDSRImageClassifier.from_preset(folder)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                                   atol=1e-6)
        assert loaded.class_names == ["cat", "dog"]
    metadata = json.loads((tmp_path / "run" / "preset" / "metadata.json").read_text())
    assert metadata["task"] == "MMDSRImageClassifier"
    assert metadata["parameter_count"] == model.count_params()
    # The backbone alone, from config.json + model.weights.h5.
    backbone = keras.saving.deserialize_keras_object(
        json.loads((tmp_path / "run" / "preset" / "config.json").read_text()))
    backbone.load_weights(tmp_path / "run" / "preset" / "model.weights.h5")
    probe = np.random.default_rng(1).normal(size=(1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(backbone.predict(probe, verbose=0),
                               model.backbone.predict(probe, verbose=0), atol=1e-6)
    with pytest.raises(FileExistsError, match="already holds a preset"):
        model.save_to_preset(tmp_path / "run" / "preset")
    with pytest.raises(ValueError, match="holds a MMDSRImageClassifier"):
        mmdsr_keras.BaselineImageClassifier.from_preset(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="no task.json"):
        MMDSRImageClassifier.from_preset(tmp_path)


def test_config_holds_no_data_and_is_versioned():
    model = build_mmdsr(num_classes=300, label_prior=np.ones((300, 300)),
                        label_embeddings=np.ones((300, 50)), **SMALL)
    config = model.get_config()
    head = {k: v for k, v in config.items() if k not in ("backbone", "class_names")}
    assert len(json.dumps(head)) < 2_000
    assert config["label_embedding_dim"] == 50
    rebuilt = MMDSRImageClassifier.from_config(config)
    assert [tuple(w.shape) for w in rebuilt.weights] == [tuple(w.shape) for w in model.weights]
    with pytest.raises(ValueError, match="config version 99"):
        MMDSRImageClassifier.from_config({**config, "config_version": 99})


def test_frozen_backbone_stays_frozen_through_a_round_trip(tmp_path):
    model = build_mmdsr(num_classes=2, freeze_backbone=True, **SMALL)
    trainable = {id(v) for v in model.trainable_weights}
    assert not trainable & {id(v) for v in model.backbone.weights}
    assert trainable
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert len(loaded.trainable_weights) == len(model.trainable_weights)
