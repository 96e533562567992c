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
