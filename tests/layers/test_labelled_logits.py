"""LabelledLogits: an identity that carries the class names, float32 under every policy."""

import keras
import numpy as np
import pytest

from mmdsr_keras.layers import LabelledLogits
from tests.layer_test_case import run_layer_test


def test_layer_contract_and_identity():
    x = np.random.default_rng(0).normal(size=(2, 3)).astype("float32")
    layer, outputs = run_layer_test(
        LabelledLogits, {"class_names": ["cat", "dog", "person"], "name": "logits"}, x,
        expected_output_shape=(2, 3), expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
        # documented: float32 logits under every policy, so exactly the input
        mixed_precision_output_dtype="float32", mixed_precision_tolerance=(0.0, 0.0),
    )
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(outputs), x)
    assert layer.get_config()["class_names"] == ["cat", "dog", "person"]


def test_float16_logits_come_out_float32():
    x = keras.ops.cast(np.array([[0.5, -1.25]], "float32"), "float16")
    out = LabelledLogits(["a", "b"])(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), [[0.5, -1.25]])


def test_wrong_number_of_names_is_refused():
    with pytest.raises(ValueError, match="got 3 logits for 2 class names"):
        LabelledLogits(["a", "b"])(np.zeros((1, 3), "float32"))


def test_calibration_is_identity_until_set_then_a_times_s_plus_b(tmp_path):
    x = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")
    layer, outputs = run_layer_test(
        LabelledLogits, {"class_names": ["a", "b", "c"], "calibration": True}, x,
        expected_output_shape=(4, 3), expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=2,
        mixed_precision_output_dtype="float32", mixed_precision_tolerance=(0.0, 0.0),
    )
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(outputs), x)
    scale, bias = np.array([0.5, 2.0, 1.5], "float32"), np.array([-1.0, 0.25, 3.0], "float32")
    layer.set_calibration(scale, bias)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), x * scale + bias, rtol=1e-6)
    got_scale, got_bias = layer.get_calibration()
    np.testing.assert_array_equal(got_scale, scale)
    np.testing.assert_array_equal(got_bias, bias)
    # The fitted values travel with a saved model.
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), x * scale + bias, rtol=1e-6)


def test_uncalibrated_layer_reports_identity_and_refuses_to_be_set():
    layer = LabelledLogits(["a", "b"])
    scale, bias = layer.get_calibration()
    np.testing.assert_array_equal(scale, [1, 1])
    np.testing.assert_array_equal(bias, [0, 0])
    assert layer.get_config()["calibration"] is False
    with pytest.raises(ValueError, match="score_calibration=True"):
        layer.set_calibration([1, 1], [0, 0])


@pytest.mark.parametrize("scale, bias, match", [
    ([1.0, 0.0], [0.0, 0.0], "> 0"),
    ([1.0, 1.0], [0.0, np.nan], "finite"),
    ([1.0], [0.0], "shape"),
])
def test_bad_calibration_values_are_refused(scale, bias, match):
    with pytest.raises(ValueError, match=match):
        LabelledLogits(["a", "b"], calibration=True).set_calibration(scale, bias)
