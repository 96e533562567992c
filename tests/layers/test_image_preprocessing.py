"""ImagePreprocessing against keras.applications' own preprocessing recipes, in numpy."""

import keras
import numpy as np
import pytest

from mmdsr_keras.layers import ImagePreprocessing
from tests.layer_test_case import run_layer_test

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def _reference(x, mode):
    x = x.astype("float64")
    if mode == "caffe":  # RGB -> BGR, minus the BGR ImageNet mean in [0, 255]
        return x[..., ::-1] - np.array([103.939, 116.779, 123.68])
    if mode == "torch":
        return (x / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "lite":
        return (x - 127.0) / 128.0
    return x


def _pixels(seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=(2, 3, 4, 3)).astype("float32")


@pytest.mark.parametrize("mode", ["caffe", "torch", "tf", "lite", "none"])
def test_matches_numpy_reference(mode):
    x = _pixels()
    got = keras.ops.convert_to_numpy(ImagePreprocessing(mode)(x))
    np.testing.assert_allclose(got, _reference(x, mode), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("mode", ["caffe", "torch"])
def test_layer_contract(mode):
    # a weightless layer: float16 under mixed_float16, within float16 rounding of float32
    run_layer_test(ImagePreprocessing, {"mode": mode, "name": "pre"}, _pixels(1),
                   expected_output_shape=(2, 3, 4, 3), expected_num_trainable_weights=0,
                   expected_num_non_trainable_weights=0, mixed_precision_tolerance=(0.2, 2e-3))


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match=r"unknown mode 'bgr'; expected one of \['caffe'"):
        ImagePreprocessing("bgr")
