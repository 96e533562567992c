import keras
import numpy as np
import pytest

import mmdsr_keras
from mmdsr_keras.data import load_dataset
from mmdsr_keras.training.multi_label_trainer import (
    TrainingConfig,
    compile_for_training,
    completed_epochs,
    fit,
    steps_per_epoch,
)
from mmdsr_keras.training.run_directory import RunDirectory

SIZE = 32


class _Interrupt(keras.callbacks.Callback):
    """Kills training in the middle of an epoch, like a pre-emption."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            raise KeyboardInterrupt("simulated kill")


def _setup(data, config):
    keras.utils.set_random_seed(0)
    model = mmdsr_keras.build_mmdsr(class_names=data.class_names, backbone="mobilenet_0.25",
                                    image_size=SIZE, weights=None, units=8, num_heads=2)
    steps = steps_per_epoch(len(data), config.batch_size)
    compile_for_training(model, config, steps)

    def stream(first, stop):
        return data.to_tf_dataset(SIZE, config.batch_size, training=True, seed=3,
                                  epochs=(first, stop))

    return model, stream, steps


def _weights(model):
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


@pytest.mark.slow
def test_resume_after_a_kill_mid_epoch_continues_exactly(tmp_path):
    data = load_dataset("shapes", split="train", num_images=20, image_size=SIZE)
    config = TrainingConfig(epochs=3, batch_size=8, learning_rate=0.05, warmup_epochs=1,
                            backbone_lr_multiplier=0.1)
    model, stream, steps = _setup(data, config)
    straight = RunDirectory.create(tmp_path, "straight")
    fit(model, stream, None, straight, config, verbose=0, steps_per_epoch=steps)
    expected = _weights(model)

    model, stream, steps = _setup(data, config)
    run = RunDirectory.create(tmp_path, "killed")
    run.write_config({"training": config.to_dict()})
    with pytest.raises(KeyboardInterrupt):
        fit(model, stream, None, run, config, callbacks=[_Interrupt(1, 1)], verbose=0,
            steps_per_epoch=steps)
    assert completed_epochs(run) == 1
    # a new process would rebuild everything; different initial weights prove the restore
    keras.utils.set_random_seed(123)
    model = mmdsr_keras.build_mmdsr(class_names=data.class_names, backbone="mobilenet_0.25",
                                    image_size=SIZE, weights=None, units=8, num_heads=2)
    compile_for_training(model, config, steps)
    history = fit(model, stream, None, RunDirectory.resume(run.path), config, verbose=0,
                  steps_per_epoch=steps)
    assert len(history.history["loss"]) == 2  # epochs 2 and 3 only
    for got, want in zip(_weights(model), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in (run.path / "checkpoints").iterdir()) == [
        "epoch_001.weights.h5", "epoch_002.weights.h5", "epoch_003.weights.h5"]


def test_epoch_streams_are_pure_functions_of_the_epoch():
    data = load_dataset("shapes", split="train", num_images=10, image_size=SIZE)
    whole = [b[1].numpy() for b in data.to_tf_dataset(SIZE, 4, training=True, epochs=(0, 3))]
    tail = [b[1].numpy() for b in data.to_tf_dataset(SIZE, 4, training=True, epochs=(1, 3))]
    assert len(whole) == 9 and len(tail) == 6  # 3 batches per epoch, none across epochs
    for a, b in zip(whole[3:], tail):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.concatenate(whole[:3]), np.concatenate(whole[3:6]))


def test_config_validation():
    with pytest.raises(ValueError, match="loss='l2'"):
        TrainingConfig(loss="l2")
