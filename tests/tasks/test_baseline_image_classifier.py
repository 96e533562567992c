import keras
import numpy as np
import pytest

from mmdsr_keras import BaselineImageClassifier, build_baseline, ml_gcn_label_prior
from mmdsr_keras.data import load_shapes
from mmdsr_keras.training.training_recipe import recipe_defaults

SMALL = dict(backbone="mobilenet_0.25", image_size=64, weights=None)


def _images(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 64, 64, 3)).astype("float32")


@pytest.mark.parametrize("head", ["gap", "gmp", "mlgcn"])
def test_baseline_task_round_trip(head, tmp_path):
    model = build_baseline(head, class_names=["a", "b", "c"], label_prior=np.eye(3), **SMALL)
    assert isinstance(model, BaselineImageClassifier) and model.model_type == head
    x = _images(2)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
    model.save_to_preset(tmp_path / "preset")
    again = BaselineImageClassifier.from_preset(tmp_path / "preset")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def test_gap_is_a_dense_layer_on_the_average_of_the_last_stage():
    model = build_baseline("gap", num_classes=2, **SMALL)
    x = _images(2)
    last = keras.Model(model.inputs, model.get_layer("gap").input).predict(x, verbose=0)
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in model.get_layer("classifier").weights)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               last.mean(axis=(1, 2)) @ kernel + bias, atol=1e-5)


def test_dropout_on_pooled_features_trains_only_and_round_trips(tmp_path):
    model = build_baseline("gap", num_classes=2, dropout=0.25, **SMALL)
    x = _images(3)
    last = keras.Model(model.inputs, model.get_layer("gap").input).predict(x, verbose=0)
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in model.get_layer("classifier").weights)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               last.mean(axis=(1, 2)) @ kernel + bias, atol=1e-5)
    layer = model.get_layer("head_dropout")
    reader = keras.Model(model.inputs, [layer.input, layer.output])
    # training=True also puts the backbone's BatchNorm in training mode: read both sides.
    pooled, dropped = (keras.ops.convert_to_numpy(t) for t in reader(x, training=True))
    zero = dropped == 0
    np.testing.assert_allclose(dropped[~zero], pooled[~zero] / 0.75, rtol=1e-5, atol=1e-6)
    assert 0.1 < zero.mean() < 0.4
    model.save(tmp_path / "m.keras")
    assert keras.saving.load_model(tmp_path / "m.keras").dropout == 0.25


def test_from_dataset_gives_mlgcn_the_symmetric_prior():
    train = load_shapes("train", num_images=24, image_size=64)
    model = BaselineImageClassifier.from_dataset(train, head="mlgcn", **SMALL)
    stored = [keras.ops.convert_to_numpy(w) for w in model.get_layer("static_graph").weights
              if "prior" in w.path]
    np.testing.assert_allclose(stored[0], ml_gcn_label_prior(train.labels,
                                                             normalization="symmetric"),
                               atol=1e-6)


def test_compile_uses_the_head_types_frozen_rate():
    model = build_baseline("gap", num_classes=2, **SMALL)
    model.compile(phase="frozen")
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(
        recipe_defaults("transfer", "gap")["frozen_learning_rate"])
