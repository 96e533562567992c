"""The TF Serving signatures of an exported model (`build_serving_archive`).

Signatures:

* `serving_default`: `image` float32 `[batch, H, W, 3]`, raw RGB in [0, 255]
  -> `probabilities` (sigmoid) and `logits`, both float32 `[batch, C]`.
* `serve_bytes`: `image_bytes` string `[batch]` of encoded images (JPEG, PNG,
  GIF first frame, BMP, WebP; grayscale, palette and RGBA come out as RGB,
  alpha dropped) -> decoded and resized exactly as the evaluation pipeline
  does (bilinear with antialiasing to H x W, clipped to [0, 255]) ->
  `probabilities`, `logits`, top-k `labels` (class-name strings read from
  `assets/labels.txt` by a lookup table) and their `scores` (probabilities),
  both `[batch, k]`. EXIF orientation is *not* applied (the evaluation
  pipeline applies it on the host with PIL): send upright pixels.

This is the only module of the package with TensorFlow-specific export code;
TensorFlow is imported inside its functions, so the package imports on every
backend.
"""

import keras

LABELS_ASSET = "labels.txt"
IMAGE_INPUT = "image"
BYTES_INPUT = "image_bytes"
BYTES_SIGNATURE = "serve_bytes"
DEFAULT_SIGNATURE = "serving_default"
# File signatures of the formats `tf.io.decode_image` reads (first bytes).
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_MAGIC_PAD = b"\x00" * 12


def write_labels(path, class_names):
    """Writes the labels asset: one class name per line, in output order.

    Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / LABELS_ASSET
    >>> write_labels(path, ["cat", "dog"]); path.read_text()
    'cat\\ndog\\n'
    """
    path.write_text("".join(f"{n}\n" for n in class_names), encoding="utf-8")


def decode_for_serving(encoded, height, width):
    """`serve_bytes`' decode of one encoded image: TF's decoder, then evaluation's warp.

    The pixels match the training and evaluation pipeline (|delta| <= 1) for
    JPEG (incl. CMYK), PNG (8/16-bit, gray, alpha, palette), GIF and BMP,
    except that TF's decoders do not apply an EXIF orientation: clients send
    upright images (`PIL.ImageOps.exif_transpose`).
    """
    # The data modules import TensorFlow: imported here, like it.
    from mmdsr_keras.data.image_decoding import decode_rgb
    from mmdsr_keras.data.input_pipeline import resize_for_model

    return resize_for_model(decode_rgb(encoded), height, width)


def build_serving_archive(model, class_names, height, width, top_k, labels_file):
    """A `keras.export.ExportArchive` with both signatures (TensorFlow backend only).

    Args:
        model: the Keras model (raw RGB pixels in, logits out).
        class_names: the C class names (`labels_file` holds them).
        height, width: the image size `serve_bytes` resizes to.
        top_k: how many (label, score) pairs `serve_bytes` returns, capped at C.
        labels_file: the labels asset (`write_labels`) the lookup table reads.

    Returns:
        The archive; `archive.write_out(path)` writes the SavedModel.
    """
    import tensorflow as tf

    num_classes = len(class_names)
    k = max(1, min(int(top_k), num_classes))

    class LabelTable(tf.Module):
        """Holds the index -> class-name table built on the labels asset."""

        def __init__(self, path):
            super().__init__(name="class_names")
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(
                    str(path),
                    key_dtype=tf.int64,
                    key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
                    value_dtype=tf.string,
                    value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
                    vocab_size=num_classes,
                ),
                default_value="",
            )

    labels = LabelTable(labels_file)

    def predict(images):
        # An empty request gets empty outputs: the model itself cannot run a
        # batch of 0 (its BatchNorms fail on the shape).
        logits = tf.cond(
            tf.shape(images)[0] > 0,
            lambda: tf.cast(model(images, training=False), tf.float32),
            lambda: tf.zeros((0, num_classes), tf.float32),
        )
        logits = tf.ensure_shape(logits, (None, num_classes))
        return {"probabilities": tf.sigmoid(logits), "logits": logits}

    def decode_one(args):
        encoded, index = args
        head = tf.strings.substr(tf.strings.join([encoded, _MAGIC_PAD]), 0, 12)
        recognised = tf.reduce_any(
            tf.stack(
                [
                    tf.equal(tf.strings.substr(head, 0, 3), _JPEG_MAGIC),
                    tf.equal(tf.strings.substr(head, 0, 8), _PNG_MAGIC),
                    tf.equal(tf.strings.substr(head, 0, 4), b"GIF8"),
                    tf.equal(tf.strings.substr(head, 0, 2), b"BM"),
                    tf.logical_and(
                        tf.equal(tf.strings.substr(head, 0, 4), b"RIFF"),
                        tf.equal(tf.strings.substr(head, 8, 4), b"WEBP"),
                    ),
                ]
            )
        )
        message = tf.strings.format(
            "serve_bytes: could not decode image {} as JPEG/PNG (also accepted: "
            "GIF, BMP, WebP): unrecognised file header",
            index,
        )
        check = tf.debugging.Assert(recognised, [message])
        with tf.control_dependencies([check]):
            encoded = tf.identity(encoded)
        return tf.ensure_shape(decode_for_serving(encoded, height, width), (height, width, 3))

    def serve_image(image):
        return predict(image)

    def serve_bytes(image_bytes):
        count = tf.shape(image_bytes, out_type=tf.int64)[0]
        images = tf.map_fn(
            decode_one,
            (image_bytes, tf.range(count)),
            fn_output_signature=tf.TensorSpec((height, width, 3), tf.float32),
        )
        outputs = predict(images)
        scores, indices = tf.math.top_k(outputs["probabilities"], k=k)
        outputs["labels"] = labels.table.lookup(tf.cast(indices, tf.int64))
        outputs["scores"] = scores
        return outputs

    archive = keras.export.ExportArchive()
    # Not `archive.track(model)`: the endpoints capture the model's variables
    # already, and tracking the model too stores every weight twice (Keras
    # issue #23553: 2x size on disk and 2x variable memory in TF Serving).
    # The label table is no variable, so it is tracked explicitly.
    archive.track(labels)
    archive.add_endpoint(
        DEFAULT_SIGNATURE,
        serve_image,
        input_signature=[
            tf.TensorSpec((None, height, width, 3), tf.float32, name=IMAGE_INPUT)
        ],
    )
    archive.add_endpoint(
        BYTES_SIGNATURE,
        serve_bytes,
        input_signature=[tf.TensorSpec((None,), tf.string, name=BYTES_INPUT)],
    )
    return archive
