"""A tf.data pipeline from `to_tf_dataset` trains a Keras model on each backend."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FIT_SCRIPT = """
import numpy as np, keras
from mmdsr_keras.data import load_shapes
data = load_shapes("train", num_images=12, image_size=32)
train = data.to_tf_dataset(32, 8, training=True, with_ignore_mask=False)
model = keras.Sequential([
    keras.Input((32, 32, 3)),
    keras.layers.Rescaling(1 / 255.0),
    keras.layers.Conv2D(4, 3, strides=2),
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(data.num_classes),
])
model.compile("sgd", keras.losses.BinaryCrossentropy(from_logits=True))
history = model.fit(train, epochs=2, verbose=0)
scores = model.predict(data.to_tf_dataset(32, 5), verbose=0)
assert scores.shape == (12, data.num_classes), scores.shape
assert all(np.isfinite(history.history["loss"])), history.history
print("FIT_OK", keras.backend.backend())
"""


def _fit_on(backend):
    env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", FIT_SCRIPT],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"FIT_OK {backend}" in result.stdout


def test_fit_on_jax():
    pytest.importorskip("jax")
    _fit_on("jax")


@pytest.mark.slow
def test_fit_on_torch():
    pytest.importorskip("torch")
    _fit_on("torch")


@pytest.mark.slow
def test_fit_on_tensorflow():
    _fit_on("tensorflow")
