"""The mAP callback on a tiny Keras model (backend-agnostic: run under any KERAS_BACKEND)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from mmdsr_keras.evaluation import AveragePrecisionMeter, MeanAveragePrecisionCallback  # noqa: E402


def _data(n=48, c=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    w = rng.normal(size=(4, c))
    y = (x @ w + 0.5 * rng.normal(size=(n, c)) > 0.3).astype("float32")
    y[0] = 1.0  # every class has a positive
    return x, y


def _model(c=5, activation=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(c, activation=activation)])
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.BinaryCrossentropy(from_logits=activation is None),
    )
    return model


class _Recorder(keras.callbacks.Callback):
    """Stands for ModelCheckpoint / EarlyStopping: what a later callback sees in the logs."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(dict(logs))


def _meter_metrics(scores, y, ignore=None):
    meter = AveragePrecisionMeter()
    meter.add(scores, y, ignore)
    return meter.compute()


def test_writes_val_map_equal_to_meter_on_predict():
    x, y = _data()
    model = _model()
    cb = MeanAveragePrecisionCallback((x, y), batch_size=16, verbose=0)
    rec = _Recorder()
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb, rec])
    expected = _meter_metrics(model.predict(x, batch_size=16, verbose=0), y)
    assert history.history["val_mAP"][-1] == pytest.approx(expected["mAP"], rel=1e-6)
    assert history.history["val_CF1"][-1] == pytest.approx(expected["CF1"], rel=1e-6)
    assert history.history["val_OF1"][-1] == pytest.approx(expected["OF1"], rel=1e-6)
    assert len(history.history["val_mAP"]) == 2
    # A callback placed after it (ModelCheckpoint, EarlyStopping, ...) sees the keys.
    assert all({"val_mAP", "val_CF1", "val_OF1"} <= set(logs) for logs in rec.seen)
    assert cb.last_metrics["mAP"] == history.history["val_mAP"][-1]


def test_dataset_with_ignore_mask_frequency_and_probabilities(capsys):
    tf = pytest.importorskip("tensorflow")
    x, y = _data(seed=1)
    ignore = np.zeros_like(y)
    ignore[1::7, 2] = 1
    ds = tf.data.Dataset.from_tensor_slices((x, y, ignore)).batch(10)
    model = _model(activation="sigmoid")  # outputs probabilities
    cb = MeanAveragePrecisionCallback(
        ds, frequency=2, from_logits=False, log_metrics=("mAP", "OF1_top3"), verbose=1
    )
    rec = _Recorder()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb, rec])
    assert "val_mAP" not in rec.seen[0]  # epoch 1 skipped by frequency=2
    assert set(rec.seen[1]) >= {"val_mAP", "val_OF1_top3"} and "val_CF1" not in rec.seen[1]
    assert "Epoch 2: val_mAP:" in capsys.readouterr().out
    p = np.asarray(model.predict(x, batch_size=10, verbose=0), dtype=np.float64)
    expected = _meter_metrics(np.log(p) - np.log1p(-p), y, ignore)
    assert rec.seen[1]["val_mAP"] == pytest.approx(expected["mAP"], rel=1e-6)
    assert rec.seen[1]["val_OF1_top3"] == pytest.approx(expected["OF1_top3"], rel=1e-6)


def test_rejects_bad_arguments():
    x, y = _data()
    with pytest.raises(TypeError, match="one-shot"):
        MeanAveragePrecisionCallback(((x, y) for _ in range(1)))
    with pytest.raises(ValueError, match="log_metrics"):
        MeanAveragePrecisionCallback((x, y), log_metrics=("mAP", "F1"))
    with pytest.raises(ValueError, match="frequency"):
        MeanAveragePrecisionCallback((x, y), frequency=0)


def test_deepcopy_shares_data_and_gets_fresh_meter():
    import copy

    x, y = _data()
    cb = MeanAveragePrecisionCallback([(x[:20], y[:20]), (x[20:], y[20:])], verbose=0)
    cb.meter.add(np.zeros((1, 5)), np.ones((1, 5)))
    clone = copy.deepcopy(cb)
    assert clone.validation_data is cb.validation_data
    assert clone.meter is not cb.meter and clone.meter.num_examples == 0
    # A list of batches works too, and evaluate() can be called directly with a model.
    model = _model()
    m = clone.evaluate(model)
    assert m["mAP"] == pytest.approx(_meter_metrics(model.predict(x, verbose=0), y)["mAP"], rel=1e-6)


def test_keras_tuner_objective_val_map(tmp_path):
    kt = pytest.importorskip("keras_tuner")
    x, y = _data()

    def build(hp):
        hp.Choice("unused", [1])
        return _model()

    tuner = kt.RandomSearch(
        build,
        objective=kt.Objective("val_mAP", "max"),
        max_trials=1,
        directory=str(tmp_path),
        project_name="t",
        overwrite=True,
    )
    cb = MeanAveragePrecisionCallback((x, y), verbose=0)
    tuner.search(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[cb])
    trial = tuner.oracle.get_best_trials(1)[0]
    assert trial.score is not None and 0.0 <= trial.score <= 100.0
