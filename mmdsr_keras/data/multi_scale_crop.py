"""The field's training crop (TSN / ML-GCN `MultiScaleCrop`) in TensorFlow ops.

For an image of width W and height H and an output side S:

1. base = min(W, H); crop sizes c_k = int(base * s_k) for the scales s_k;
   a size within 3 px of S is snapped to S (as the reference does).
2. (crop_w, crop_h) = (c_j, c_i) drawn uniformly among the index pairs with
   |i - j| <= max_distort.
3. w_step = (W - crop_w) // 4, h_step = (H - crop_h) // 4 (floor division, as
   the reference); the offset is drawn uniformly from the 13 fixed offsets
   (0,0) (4,0) (0,4) (4,4) (2,2) and, with `more_fix_crop`, (0,2) (4,2) (2,4)
   (2,0) (1,1) (3,1) (1,3) (3,3), in units of (w_step, h_step).
4. Crop, then bilinear resize to S x S. PIL's bilinear downscaling filters
   over the whole footprint, so the resize uses `antialias=True` to match it.

The snap in step 1 can make a crop larger than the image (e.g. base 446 with
S = 448); PIL's crop then pads with black, and so does this implementation.
All randomness is stateless: the same seed gives the same box.
"""

import itertools

import tensorflow as tf

FIELD_SCALES = (1.0, 0.875, 0.75, 0.66, 0.5)
# (w_step, h_step) multiples, in the reference's order.
_FIXED_OFFSETS = ((0, 0), (4, 0), (0, 4), (4, 4), (2, 2))
_MORE_FIXED_OFFSETS = (
    (0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3),
)
# The reference snaps a crop size to the output size when they differ by < 3.
_SNAP_PIXELS = 3


class MultiScaleCrop:
    """Multi-scale corner/centre crop followed by a resize to S x S.

    Args:
        scales: crop scales relative to the short side. Defaults to the
            field's `(1.0, 0.875, 0.75, 0.66, 0.5)`.
        max_distort: largest allowed difference between the width and height
            scale indices. Defaults to 2 (ML-GCN).
        more_fix_crop: use all 13 fixed offsets instead of the first 5.
            Defaults to True.

    Example:
    >>> crop = MultiScaleCrop()
    >>> image = tf.zeros((48, 64, 3), tf.uint8)
    >>> crop(image, 32, seed=tf.constant([1, 2])).shape
    TensorShape([32, 32, 3])
    """

    def __init__(self, scales=FIELD_SCALES, max_distort=2, more_fix_crop=True):
        self.scales = tuple(float(s) for s in scales)
        self.max_distort = int(max_distort)
        self.more_fix_crop = bool(more_fix_crop)
        n = len(self.scales)
        # (height index, width index) pairs in the reference's loop order.
        self.scale_pairs = tuple(
            (i, j) for i, j in itertools.product(range(n), range(n))
            if abs(i - j) <= self.max_distort
        )
        self.offset_units = _FIXED_OFFSETS + (
            _MORE_FIXED_OFFSETS if self.more_fix_crop else ()
        )

    def sample_box(self, height, width, output_size, seed):
        """Draws one crop box.

        Args:
            height: image height (int or scalar int tensor).
            width: image width.
            output_size: S, the side the crop will be resized to.
            seed: stateless seed, int tensor of shape `(2,)`.

        Returns:
            `(offset_h, offset_w, crop_h, crop_w)` int32 scalars. Offsets can be
            negative and boxes can exceed the image only after a snap (see
            the module docstring).
        """
        height = tf.cast(height, tf.int32)
        width = tf.cast(width, tf.int32)
        pair_seed, offset_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 2)
        )
        base = tf.cast(tf.minimum(width, height), tf.float64)
        # float64 like Python's int(base * s), so the truncation agrees.
        sizes = tf.cast(tf.floor(base * tf.constant(self.scales, tf.float64)), tf.int32)
        sizes = tf.where(tf.abs(sizes - output_size) < _SNAP_PIXELS, output_size, sizes)
        # Only a 1-pixel image reaches 0 here; an empty crop could not resize.
        sizes = tf.maximum(sizes, 1)

        pairs = tf.constant(self.scale_pairs, tf.int32)
        pick = tf.random.stateless_uniform(
            (), pair_seed, minval=0, maxval=len(self.scale_pairs), dtype=tf.int32
        )
        crop_h = tf.gather(sizes, pairs[pick, 0])
        crop_w = tf.gather(sizes, pairs[pick, 1])

        w_step = tf.math.floordiv(width - crop_w, 4)
        h_step = tf.math.floordiv(height - crop_h, 4)
        units = tf.constant(self.offset_units, tf.int32)
        pick = tf.random.stateless_uniform(
            (), offset_seed, minval=0, maxval=len(self.offset_units), dtype=tf.int32
        )
        offset_w = units[pick, 0] * w_step
        offset_h = units[pick, 1] * h_step
        return offset_h, offset_w, crop_h, crop_w

    def __call__(self, image, output_size, seed):
        """Crops a random box from `image` and resizes it to S x S.

        Args:
            image: `(H, W, C)` tensor (any dtype).
            output_size: S (Python int).
            seed: stateless seed, int tensor of shape `(2,)`.

        Returns:
            float32 `(S, S, C)`, values in the input's range.
        """
        shape = tf.shape(image)
        offset_h, offset_w, crop_h, crop_w = self.sample_box(
            shape[0], shape[1], output_size, seed
        )
        crop = crop_with_zero_padding(image, offset_h, offset_w, crop_h, crop_w)
        resized = tf.image.resize(
            crop, (output_size, output_size), method="bilinear", antialias=True
        )
        return tf.ensure_shape(resized, (output_size, output_size, image.shape[-1]))


def crop_with_zero_padding(image, offset_h, offset_w, crop_h, crop_w):
    """Crops `image[offset_h:offset_h+crop_h, offset_w:offset_w+crop_w]`.

    Pixels of the box outside the image are zero, as with PIL's `crop`.

    Args:
        image: `(H, W, C)` tensor.
        offset_h: top row of the box (may be negative).
        offset_w: left column of the box (may be negative).
        crop_h: box height.
        crop_w: box width.

    Returns:
        `(crop_h, crop_w, C)` tensor.

    Example:
    >>> crop_with_zero_padding(tf.ones((2, 2, 1)), -1, 0, 3, 2)[:, :, 0].numpy()
    array([[0., 0.],
           [1., 1.],
           [1., 1.]], dtype=float32)
    """
    shape = tf.shape(image)
    pad_top = tf.maximum(0, -offset_h)
    pad_left = tf.maximum(0, -offset_w)
    pad_bottom = tf.maximum(0, offset_h + crop_h - shape[0])
    pad_right = tf.maximum(0, offset_w + crop_w - shape[1])
    padded = tf.pad(image, [[pad_top, pad_bottom], [pad_left, pad_right], [0, 0]])
    top = offset_h + pad_top
    left = offset_w + pad_left
    return padded[top:top + crop_h, left:left + crop_w]
