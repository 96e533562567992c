"""Decoding: grayscale, CMYK, EXIF orientation, PIL-only formats, bad files."""

import io
import logging

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from mmdsr_keras.data import ImageReadError, MultiLabelDataset
from mmdsr_keras.data.image_decoding import decode_image, scan_image_file


def _quadrants(height=40, width=60):
    """RGB image with four flat colours, robust to JPEG artefacts."""
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2, : width // 2] = (255, 0, 0)
    image[: height // 2, width // 2 :] = (0, 255, 0)
    image[height // 2 :, : width // 2] = (0, 0, 255)
    image[height // 2 :, width // 2 :] = (255, 255, 255)
    return image


def _read_file(path):
    info = scan_image_file(path)
    assert info.error is None, info.error
    encoded = tf.io.read_file(str(path))
    return decode_image(encoded, info.use_pil, info.orientation).numpy()


def _pipeline_images(paths, size, on_error="skip"):
    data = MultiLabelDataset(["x"], np.ones((len(paths), 1)), paths=[str(p) for p in paths])
    batches = data.to_tf_dataset(size, 8, on_error=on_error)
    return [images.numpy() for images, _ in batches]


def test_grayscale_png_becomes_rgb(tmp_path):
    gray = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    image = _read_file(tmp_path / "gray.png")
    assert image.shape == (12, 10, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], gray)


def test_cmyk_jpeg_matches_pil_rgb(tmp_path):
    Image.fromarray(_quadrants()).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    expected = np.asarray(Image.open(tmp_path / "cmyk.jpg").convert("RGB"), np.float32)
    image = _read_file(tmp_path / "cmyk.jpg")
    assert image.shape == (40, 60, 3)
    assert np.abs(image.astype(np.float32) - expected).mean() < 2.0
    np.testing.assert_allclose(image[5, 5], (255, 0, 0), atol=12)


def _save_with_orientation(path, pixels, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, quality=95, exif=exif.tobytes())


def test_exif_orientation_6_turns_the_image_clockwise(tmp_path):
    path = tmp_path / "rotated.jpg"
    _save_with_orientation(path, _quadrants(), 6)
    assert scan_image_file(path).orientation == 6
    image = _read_file(path)
    # Stored 40 x 60 (H x W); displayed turned 90 degrees clockwise: 60 x 40,
    # the stored top-left (red) is now top-right, bottom-left (blue) top-left.
    assert image.shape == (60, 40, 3)
    np.testing.assert_allclose(image[5, 35], (255, 0, 0), atol=12)
    np.testing.assert_allclose(image[5, 5], (0, 0, 255), atol=12)
    np.testing.assert_allclose(image[55, 5], (255, 255, 255), atol=12)
    np.testing.assert_allclose(image[55, 35], (0, 255, 0), atol=12)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pil_exif_transpose(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    _save_with_orientation(path, _quadrants(), orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    image = _read_file(path)
    assert image.shape == expected.shape
    assert np.abs(image.astype(np.float32) - expected).mean() < 2.0


def test_pil_only_format_is_decoded_through_pil(tmp_path):
    Image.fromarray(_quadrants()).save(tmp_path / "image.tiff")
    info = scan_image_file(tmp_path / "image.tiff")
    assert info.use_pil
    np.testing.assert_array_equal(_read_file(tmp_path / "image.tiff"), _quadrants())


def test_pipeline_applies_exif_orientation(tmp_path):
    path = tmp_path / "rotated.jpg"
    _save_with_orientation(path, _quadrants(40, 80), 6)
    (batch,) = _pipeline_images([path], 32)
    # Displayed 80 x 40 -> warped to 32 x 32: red is top-right.
    np.testing.assert_allclose(batch[0, 2, 29], (255, 0, 0), atol=20)
    np.testing.assert_allclose(batch[0, 2, 2], (0, 0, 255), atol=20)


def _good_and_bad(tmp_path, bad_name, bad_bytes):
    good = tmp_path / "good.png"
    Image.fromarray(_quadrants()).save(good)
    bad = tmp_path / bad_name
    if bad_bytes is not None:
        bad.write_bytes(bad_bytes)
    return [good, bad, good]


def _truncated_jpeg():
    """A JPEG whose header is intact (the scan passes) but data is cut."""
    noisy = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()[: len(buffer.getvalue()) // 3]


BAD_FILES = {
    "corrupt": ("corrupt.jpg", b"this is not an image at all"),
    "truncated": ("truncated.jpg", _truncated_jpeg()),
    "missing": ("missing.jpg", None),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_is_skipped_with_a_warning_naming_it(tmp_path, caplog, kind):
    name, content = BAD_FILES[kind]
    paths = _good_and_bad(tmp_path, name, content)
    with caplog.at_level(logging.WARNING, logger="mmdsr_keras.data"):
        batches = _pipeline_images(paths, 16, on_error="skip")
    assert sum(len(b) for b in batches) == 2
    assert any(name in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_raises_naming_it(tmp_path, kind):
    name, content = BAD_FILES[kind]
    paths = _good_and_bad(tmp_path, name, content)
    with pytest.raises((ImageReadError, tf.errors.OpError), match=name):
        _pipeline_images(paths, 16, on_error="raise")


def test_scan_reports_missing_and_unreadable(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"junk")
    assert "missing" in scan_image_file(tmp_path / "nope.jpg").error
    assert "junk.png" in scan_image_file(tmp_path / "junk.png").error


def test_16_bit_png_is_scaled_to_8_bits(tmp_path):
    # PIL's convert("RGB") would clip everything above 255 to white.
    values = (np.arange(16, dtype=np.uint16) * 4000).reshape(4, 4)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert not scan_image_file(tmp_path / "deep.png").use_pil
    image = _read_file(tmp_path / "deep.png")
    np.testing.assert_allclose(image[..., 0], values / 257.0, atol=1.0)


# --- One decoder everywhere: train / evaluate / predict / serve_bytes ---------

FORMATS = ("rgb.png", "gray.png", "gray16.png", "rgba.png", "palette.png", "plain.jpg",
           "cmyk.jpg", "exif6.jpg")


@pytest.fixture(scope="module")
def format_files(tmp_path_factory):
    """Every supported format made from one real COCO image, with independent pixels.

    Lossless files carry the pixels they were written from; JPEGs are
    referenced by PIL's (libjpeg) decode with EXIF applied.
    """
    from tests.shared_data import shared_path

    folder = tmp_path_factory.mktemp("formats")
    source = sorted(shared_path("data", "coco-mini", "train2017", "images").glob("*.jpg"))[0]
    with Image.open(source) as image:
        rgb = image.convert("RGB").resize((80, 60))
    pixels = np.asarray(rgb)
    gray = rgb.convert("L")
    gray3 = np.repeat(np.asarray(gray)[..., None], 3, axis=-1)
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    expected = {}
    rgb.save(folder / "rgb.png")
    expected["rgb.png"] = pixels
    gray.save(folder / "gray.png")
    expected["gray.png"] = gray3
    Image.fromarray(np.asarray(gray).astype(np.uint16) * 257).save(folder / "gray16.png")
    expected["gray16.png"] = gray3  # 16-bit: v * 257 scales back to v exactly
    rgba.save(folder / "rgba.png")
    expected["rgba.png"] = pixels  # alpha dropped, not composited
    palette.save(folder / "palette.png")
    expected["palette.png"] = np.asarray(palette.convert("RGB"))
    rgb.save(folder / "plain.jpg", quality=90)
    rgb.convert("CMYK").save(folder / "cmyk.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned; displayed upright after a 90-degree turn
    rgb.transpose(Image.Transpose.ROTATE_90).save(folder / "exif6.jpg", quality=90, exif=exif)
    for name in ("plain.jpg", "cmyk.jpg", "exif6.jpg"):
        with Image.open(folder / name) as image:
            expected[name] = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    assert expected["exif6.jpg"].shape == (60, 80, 3)
    return folder, expected


def _resized(pixels, size=32):
    from mmdsr_keras.data.input_pipeline import resize_for_model

    return np.asarray(resize_for_model(tf.constant(pixels), size, size))


def test_every_format_decodes_to_the_same_pixels_everywhere(format_files):
    from mmdsr_keras.data.image_decoding import read_image_file
    from mmdsr_keras.export.saved_model_export import decode_for_serving

    folder, expected = format_files
    paths = [str(folder / name) for name in FORMATS]
    data = MultiLabelDataset(["a"], np.ones((len(paths), 1), "float32"), paths=paths)
    (evaluated, _), = data.to_tf_dataset(32, len(paths), training=False).take(1)
    for row, name in enumerate(FORMATS):
        reference = expected[name].astype(int)
        decoded = np.asarray(read_image_file(folder / name)).astype(int)  # predict's reader
        assert np.abs(decoded - reference).max() <= 1, name
        want = _resized(expected[name])
        assert np.abs(np.asarray(evaluated[row]) - want).max() <= 1, name  # train / evaluate
        served = np.asarray(decode_for_serving(tf.io.read_file(paths[row]), 32, 32))
        if name == "exif6.jpg":
            # TF's decoders ignore EXIF orientation: serving clients send upright images.
            assert served.shape == (32, 32, 3)
            assert np.abs(served - want).max() > 10
        else:
            assert np.abs(served - want).max() <= 1, name


def test_predict_reader_names_a_corrupt_file(tmp_path, format_files):
    from mmdsr_keras.data.image_decoding import read_image_file

    folder, _ = format_files
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((folder / "plain.jpg").read_bytes()[:200])
    with pytest.raises(ImageReadError, match="truncated.jpg"):
        read_image_file(truncated)
