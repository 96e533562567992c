"""Data-parallel training on 2 virtual CPU devices, each backend's way (fresh processes)."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).with_name("distributed_fit_script.py")
REPO = pathlib.Path(__file__).resolve().parents[2]


def _run(backend, kind):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, str(SCRIPT), kind], env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpu_devices():
    result = _run("tensorflow", "mirrored")
    assert result["replicas"] == 2
    assert np.all(np.isfinite(result["losses"]))
    assert result["losses"][-1] < result["losses"][0]


@pytest.mark.slow
def test_jax_data_parallel_on_two_cpu_devices():
    pytest.importorskip("jax")
    result = _run("jax", "data-parallel")
    assert result["replicas"] == 2
    assert result["placed"] == 2  # weights replicated on both devices
    assert np.all(np.isfinite(result["losses"]))
    assert result["losses"][-1] < result["losses"][0]


def test_wrong_backend_is_a_clear_error():
    import keras

    from mmdsr_keras.training.device_distribution import distribution_scope

    other = "data-parallel" if keras.backend.backend() != "jax" else "mirrored"
    with pytest.raises(ValueError, match="needs KERAS_BACKEND"):
        with distribution_scope(other):
            pass
