"""MultiScaleCrop's boxes against an independent enumeration of the reference."""

import numpy as np
import pytest
import tensorflow as tf

from mmdsr_keras.data import MultiScaleCrop
from mmdsr_keras.data.multi_scale_crop import crop_with_zero_padding

SCALES = (1.0, 0.875, 0.75, 0.66, 0.5)


def reference_boxes(height, width, output_size, max_distort=2):
    """Every (offset_h, offset_w, crop_h, crop_w) the ML-GCN crop can produce.

    Written from the reference's description, independently of the module:
    Python ints and floor division, sizes snapped to S within 3 px.
    """
    base = min(width, height)
    sizes = [int(base * s) for s in SCALES]
    sizes = [output_size if abs(c - output_size) < 3 else c for c in sizes]
    boxes, size_pairs = set(), set()
    for i, crop_h in enumerate(sizes):
        for j, crop_w in enumerate(sizes):
            if abs(i - j) > max_distort:
                continue
            size_pairs.add((crop_h, crop_w))
            w_step, h_step = (width - crop_w) // 4, (height - crop_h) // 4
            units = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2),
                     (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
            for uw, uh in units:
                boxes.add((uh * h_step, uw * w_step, crop_h, crop_w))
    return boxes, size_pairs


def sample_boxes(height, width, output_size, draws):
    crop = MultiScaleCrop()

    @tf.function
    def many(seeds):
        return tf.map_fn(
            lambda s: tf.stack(crop.sample_box(height, width, output_size, s)),
            seeds,
            fn_output_signature=tf.int32,
        )

    seeds = tf.stack(
        [tf.range(draws, dtype=tf.int64), tf.fill([draws], tf.constant(7, tf.int64))], axis=1
    )
    return [tuple(int(v) for v in box) for box in many(seeds).numpy()]


def test_boxes_are_allowed_and_every_offset_and_size_pair_appears():
    height, width, size = 480, 640, 224
    allowed, size_pairs = reference_boxes(height, width, size)
    assert len(size_pairs) == 19  # 5 scales, |i - j| <= 2
    boxes = sample_boxes(height, width, size, 3000)
    assert set(boxes) <= allowed
    assert {(b[2], b[3]) for b in boxes} == size_pairs
    # Offsets in units of (h_step, w_step): all 13 fixed positions are used
    # (counted where both steps are non-zero, so the unit is unambiguous).
    units = set()
    for offset_h, offset_w, crop_h, crop_w in boxes:
        h_step, w_step = (height - crop_h) // 4, (width - crop_w) // 4
        if h_step and w_step:
            units.add((offset_h // h_step, offset_w // w_step))
    assert len(units) == 13


def test_snapped_crop_larger_than_the_image_is_allowed_and_zero_padded():
    # base 446 -> int(446 * 1.0) = 446 is within 3 px of S = 448: snapped to 448.
    height, width, size = 446, 600, 448
    allowed, _ = reference_boxes(height, width, size)
    boxes = sample_boxes(height, width, size, 400)
    assert set(boxes) <= allowed
    assert any(b[2] == 448 for b in boxes)
    crop = crop_with_zero_padding(tf.ones((446, 600, 1)), -1, 0, 448, 448).numpy()
    assert crop.shape == (448, 448, 1)
    assert crop[0].sum() == 0 and crop[-1].sum() == 0 and crop[1:-1].min() == 1


def test_crop_output_shape_and_determinism():
    crop = MultiScaleCrop()
    image = tf.random.uniform((50, 70, 3), 0, 255, seed=1)
    first = crop(image, 32, tf.constant([3, 4]))
    again = crop(image, 32, tf.constant([3, 4]))
    assert first.shape == (32, 32, 3) and first.dtype == tf.float32
    np.testing.assert_array_equal(first.numpy(), again.numpy())


@pytest.mark.parametrize(
    "max_distort, more_fix_crop, pairs, offsets", [(2, True, 19, 13), (1, False, 13, 5)]
)
def test_options_change_the_candidate_sets(max_distort, more_fix_crop, pairs, offsets):
    crop = MultiScaleCrop(max_distort=max_distort, more_fix_crop=more_fix_crop)
    assert len(crop.scale_pairs) == pairs
    assert len(crop.offset_units) == offsets
