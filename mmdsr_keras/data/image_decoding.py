"""Decoding image bytes to uint8 RGB tensors, with EXIF orientation applied.

The fast path is TensorFlow's own decoder (JPEG incl. CMYK, with the accurate
IDCT so the pixels equal PIL's; PNG, GIF, BMP; grayscale and palette images
come out as 3-channel RGB). TensorFlow ignores
the EXIF orientation tag, so the orientation is read separately — once per
file by `scan_image_file` (header only, cheap) or per example from the bytes
by `inspect_encoded_image` — and applied with `apply_exif_orientation`.
Formats TensorFlow cannot decode (TIFF, WebP, ...) go through
PIL inside `tf.numpy_function`; they are rare, so its GIL cost is acceptable.
"""

import dataclasses
import io

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps, UnidentifiedImageError

EXIF_ORIENTATION_TAG = 0x0112
# Formats (as PIL names them) that tf.io.decode_image reads correctly. MPO is
# a camera JPEG with extra frames appended; TF decodes its first frame.
TF_DECODABLE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "BMP"})


class ImageReadError(OSError):
    """An image file is missing, unreadable or undecodable; names the file."""


@dataclasses.dataclass(frozen=True)
class ImageFileInfo:
    """What a header scan learned about one image file.

    Attributes:
        path: the file.
        error: why the file cannot be used, or `None` when it can.
        use_pil: decode with PIL (format TF cannot decode) instead of TF.
        orientation: EXIF orientation 1..8 to apply after a TF decode (1 when
            there is none, and always 1 with `use_pil`, which applies it).
    """

    path: str
    error: str | None = None
    use_pil: bool = False
    orientation: int = 1


def _as_bytes(encoded):
    # tf.numpy_function hands a string scalar over as a 0-d object array.
    if isinstance(encoded, np.ndarray):
        encoded = encoded.item()
    return bytes(encoded)


def _header_facts(image):
    """(use_pil, orientation) of an opened PIL image, header only."""
    # 16-bit PNGs stay on the TF path on purpose: TF scales them to 8 bits,
    # while PIL's convert("RGB") clips every value above 255 to white.
    use_pil = image.format not in TF_DECODABLE_FORMATS
    orientation = 1
    if not use_pil:
        try:
            orientation = int(image.getexif().get(EXIF_ORIENTATION_TAG, 1))
        except Exception:  # a broken EXIF block must not cost the pixels
            orientation = 1
        if orientation not in range(1, 9):
            orientation = 1
    return use_pil, orientation


def scan_image_file(path):
    """Reads one file's header with PIL (no pixel decoding).

    Args:
        path: image file path.

    Returns:
        `ImageFileInfo`; `error` is set for a missing or unidentifiable file.

    Example:
    >>> scan_image_file("/no/such.jpg").error.startswith("missing")
    True
    """
    path = str(path)
    try:
        with Image.open(path) as image:
            use_pil, orientation = _header_facts(image)
    except FileNotFoundError:
        return ImageFileInfo(path, error=f"missing image file {path}")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return ImageFileInfo(path, error=f"unreadable image file {path}: {exc}")
    return ImageFileInfo(path, use_pil=use_pil, orientation=orientation)


def inspect_encoded_image(encoded):
    """(use_pil, orientation) of encoded image bytes; for `tf.numpy_function`.

    Undecodable bytes report the TF path with orientation 1 so that the TF
    decoder raises and the caller's error handling names the example.

    Args:
        encoded: the encoded image (bytes or a 0-d numpy bytes array).

    Returns:
        `(np.bool_, np.int32)`.

    Example:
    >>> use_pil, orientation = inspect_encoded_image(b"not an image")
    >>> bool(use_pil), int(orientation)
    (False, 1)
    """
    try:
        with Image.open(io.BytesIO(_as_bytes(encoded))) as image:
            use_pil, orientation = _header_facts(image)
    except Exception:
        use_pil, orientation = False, 1
    return np.bool_(use_pil), np.int32(orientation)


def decode_with_pil(encoded):
    """PIL decode to uint8 RGB with EXIF orientation applied; for numpy_function.

    Args:
        encoded: the encoded image bytes.

    Returns:
        `np.uint8` array `(H, W, 3)`.

    Example:
    >>> buffer = io.BytesIO()
    >>> Image.new("L", (4, 2), 7).save(buffer, "PNG")
    >>> decode_with_pil(buffer.getvalue()).shape
    (2, 4, 3)
    """
    with Image.open(io.BytesIO(_as_bytes(encoded))) as image:
        image = ImageOps.exif_transpose(image)
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def apply_exif_orientation(image, orientation):
    """Turns stored pixels into display orientation, as PIL's `exif_transpose`.

    Args:
        image: `(H, W, C)` tensor as stored in the file.
        orientation: scalar int tensor, EXIF orientation 1..8 (others: 1).

    Returns:
        The displayed image; `(W, H, C)` for orientations 5..8.

    Example:
    >>> x = tf.reshape(tf.range(6), (2, 3, 1))
    >>> apply_exif_orientation(x, 6).shape  # 90 degrees clockwise
    TensorShape([3, 2, 1])
    """

    def transpose(x):
        return tf.transpose(x, (1, 0, 2))

    branches = [
        lambda: image,  # 1: as stored
        lambda: tf.image.flip_left_right(image),  # 2: mirrored
        lambda: tf.image.rot90(image, 2),  # 3: rotated 180
        lambda: tf.image.flip_up_down(image),  # 4: mirrored vertically
        lambda: transpose(image),  # 5: transpose
        lambda: tf.image.rot90(image, 3),  # 6: turn 90 clockwise
        lambda: tf.image.rot90(transpose(image), 2),  # 7: transverse
        lambda: tf.image.rot90(image, 1),  # 8: turn 90 counter-clockwise
    ]
    index = tf.cast(orientation, tf.int32) - 1
    index = tf.where((index < 0) | (index > 7), 0, index)
    return tf.switch_case(index, branches)


def decode_rgb(encoded):
    """TensorFlow's decode of image bytes to uint8 RGB (no EXIF orientation).

    JPEGs use the accurate integer IDCT: TF's default (the fast one) differs
    from libjpeg's reference decode, which PIL and torchvision (the field's
    training pipelines) use, by ~2 levels on average and up to ~15; with it
    the pixels are PIL's exactly. Every path (training, evaluation, predict,
    serve_bytes) decodes through here.

    Example:
    >>> png = tf.io.encode_png(tf.zeros((2, 3, 1), tf.uint8))
    >>> decode_rgb(png).shape
    TensorShape([2, 3, 3])
    """

    def jpeg():
        return tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")

    def other():
        return tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)

    image = tf.cond(tf.io.is_jpeg(encoded), jpeg, other)
    return tf.ensure_shape(image, (None, None, 3))


def decode_image(encoded, use_pil=False, orientation=1):
    """Decodes image bytes to a uint8 RGB tensor in display orientation.

    Args:
        encoded: scalar string tensor with the encoded image.
        use_pil: scalar bool (tensor): decode with PIL (see `scan_image_file`).
            Defaults to False.
        orientation: scalar int (tensor): EXIF orientation applied after a TF
            decode. Defaults to 1 (none).

    Returns:
        `uint8` tensor `(H, W, 3)`. Corrupt data raises a TF error when the
        tensor is computed (the input pipeline catches it and names the file).

    Example:
    >>> png = tf.io.encode_png(tf.zeros((2, 3, 1), tf.uint8))
    >>> decode_image(png).shape
    TensorShape([2, 3, 3])
    """

    def with_tf():
        return apply_exif_orientation(decode_rgb(encoded), orientation)

    def with_pil():
        image = tf.numpy_function(decode_with_pil, [encoded], tf.uint8, stateful=False)
        return tf.ensure_shape(image, (None, None, 3))

    image = tf.cond(tf.cast(use_pil, tf.bool), with_pil, with_tf)
    return tf.ensure_shape(image, (None, None, 3))


def read_image_file(path):
    """One image file as a uint8 RGB tensor, decoded as the input pipeline does.

    The same header scan and decoder as training and evaluation (TF's decoder
    with EXIF orientation, PIL for formats TF cannot read), so `predict` sees
    the pixels the model was trained and scored on.

    Args:
        path: image file path.

    Returns:
        `uint8` tensor `(H, W, 3)` in display orientation.

    Raises:
        ImageReadError: naming the file, when it is missing or undecodable.

    Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.png")
    >>> Image.new("L", (4, 2), 7).save(path)
    >>> read_image_file(path).shape
    TensorShape([2, 4, 3])
    """
    info = scan_image_file(path)
    if info.error:
        raise ImageReadError(info.error)
    try:
        return decode_image(tf.io.read_file(str(path)), info.use_pil, info.orientation)
    except (tf.errors.OpError, ValueError, OSError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ImageReadError(f"cannot decode image file {path}: {message}") from None
