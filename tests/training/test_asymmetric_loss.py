import keras
import numpy as np
import pytest

from mmdsr_keras.training.asymmetric_loss import AsymmetricLoss


def _reference(y, z, gamma_neg, gamma_pos, margin):
    p = 1 / (1 + np.exp(-z))
    pm = np.maximum(p - margin, 0)
    pos = (1 - p) ** gamma_pos * np.log(np.maximum(p, 1e-8))
    neg = pm ** gamma_neg * np.log(np.maximum(1 - pm, 1e-8))
    return -(y * pos + (1 - y) * neg).mean(axis=-1).mean()


@pytest.mark.parametrize("params", [(4.0, 0.0, 0.05), (2.0, 2.0, 0.0), (0.0, 0.0, 0.0)])
def test_matches_formula(params):
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3, size=(5, 7)).astype("float32")
    y = (rng.random((5, 7)) < 0.3).astype("float32")
    got = float(keras.ops.convert_to_numpy(AsymmetricLoss(*params)(y, z)))
    assert got == pytest.approx(_reference(y, z.astype("float64"), *params), rel=1e-5)


def test_without_focusing_it_is_bce_with_logits():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4, 6)).astype("float32")
    y = (rng.random((4, 6)) < 0.5).astype("float32")
    asl = float(keras.ops.convert_to_numpy(AsymmetricLoss(0, 0, 0)(y, z)))
    bce = float(keras.ops.convert_to_numpy(keras.losses.BinaryCrossentropy(from_logits=True)(y, z)))
    assert asl == pytest.approx(bce, rel=1e-5)
