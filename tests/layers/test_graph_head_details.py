"""GraphHeadDetails reads the head's own weights: never a stale copy."""

import keras
import numpy as np

from mmdsr_keras.layers import DynamicSemanticGCN, GraphHeadDetails
from tests.layer_test_case import run_layer_test


def _np(x):
    return keras.ops.convert_to_numpy(x).astype("float64")


def _randomise(layer, rng):
    for v in layer.trainable_weights:
        v.assign(rng.normal(scale=0.5, size=v.shape).astype("float32"))


def test_details_are_the_heads_scores_and_follow_its_weights():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 2, 3, 6)).astype("float32")
    head = DynamicSemanticGCN(num_classes=4, num_perspectives=2, global_weight=0.3)
    details = GraphHeadDetails(head)
    for _ in range(2):  # the second round after new weights: still the head's
        _randomise(head, rng)
        logits, attention, adjacency, s_m, s_r = (_np(t) for t in details(z))
        np.testing.assert_allclose(logits, _np(head(z)), atol=1e-5)
        # s_m = max over positions of Z W_A + b, from the head's weights in numpy.
        class_maps = z.reshape(3, 6, 6) @ _np(head.class_kernel) + _np(head.class_bias)
        np.testing.assert_allclose(s_m, class_maps.max(axis=1), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(0.3 * s_m + 0.7 * s_r, logits, atol=1e-5)
        assert attention.shape == (3, 2, 3, 4) and adjacency.shape == (3, 4, 4)
    assert len(details.weights) == len(head.weights)


def test_layer_contract():
    z = np.random.default_rng(1).normal(size=(2, 2, 2, 5)).astype("float32")
    # the head as its serialized form: every construction gets a head of its own
    head = keras.saving.serialize_keras_object(
        DynamicSemanticGCN(num_classes=3, num_perspectives=2, label_prior=np.ones((3, 3))))
    layer, outputs = run_layer_test(
        GraphHeadDetails, {"head": head}, z,
        expected_output_shape=[(2, 3), (2, 2, 2, 3), (2, 3, 3), (2, 3), (2, 3)],
        expected_num_trainable_weights=9, expected_num_non_trainable_weights=1,
        mixed_precision_output_dtype="float32", mixed_precision_tolerance=(1e-6, 0.0),
    )
    np.testing.assert_allclose(_np(outputs[0]), _np(layer.head(z)), atol=1e-6)
