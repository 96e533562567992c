"""`export_saved_model`: a TF Serving SavedModel of an MMDSR model.

Layout (what TF Serving's file-system source watches):

    export_dir/
        1/                      one integer directory per version
            saved_model.pb
            variables/
            assets/labels.txt   the class names, one per line, output order

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

A version is written under a temporary non-integer name and renamed into
place, so TF Serving never sees a half-written version and an existing
version is never overwritten.

This is the only module of the package with TensorFlow-specific export code.
TensorFlow is imported lazily, so `export_saved_model_from_file` can be
called from a JAX or PyTorch process: it re-runs itself in a subprocess with
`KERAS_BACKEND=tensorflow` (`python -m mmdsr_keras.export.saved_model_export`).
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

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
FORMATS = ("onnx", "litert")


def _is_version_name(name):
    return name.isdigit() and str(int(name)) == name


def existing_versions(export_dir):
    """The integer version directories under `export_dir`, sorted."""
    path = pathlib.Path(export_dir)
    if not path.is_dir():
        return []
    return sorted(
        int(p.name) for p in path.iterdir() if p.is_dir() and _is_version_name(p.name)
    )


def _check_version(version):
    if isinstance(version, bool) or not isinstance(version, int):
        if isinstance(version, str) and _is_version_name(version):
            version = int(version)
        else:
            raise ValueError(f"version must be a positive int; got {version!r}.")
    if version < 1:
        raise ValueError(f"version must be a positive int; got {version}.")
    return version


def _model_image_size(model, image_size):
    """(H, W) of the exported input: the model's, or `image_size` when dynamic."""
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(
            f"export_saved_model expects a model on (batch, H, W, 3) images; "
            f"its input shape is {shape}."
        )
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        size = tuple(int(s) for s in size)
        for built, asked in zip(shape[1:3], size):
            if built is not None and built != asked:
                raise ValueError(
                    f"image_size={image_size} but the model was built for "
                    f"{shape[1]}x{shape[2]} images."
                )
        return size
    if shape[1] is None or shape[2] is None:
        raise ValueError(
            "The model has a dynamic image size; pass image_size=(H, W) to fix "
            "the size serve_bytes resizes to."
        )
    return int(shape[1]), int(shape[2])


def _resolve_class_names(model, class_names):
    num_classes = int(model.output_shape[-1])
    if class_names is None:
        try:
            from mmdsr_keras.models.mmdsr import class_names_of

            class_names = class_names_of(model)
        except (ValueError, AttributeError):
            class_names = [f"class_{i}" for i in range(num_classes)]
    class_names = [str(n) for n in class_names]
    if len(class_names) != num_classes:
        raise ValueError(
            f"{len(class_names)} class names for a model with {num_classes} outputs."
        )
    for name in class_names:
        if not name or "\n" in name or "\r" in name or name != name.strip():
            raise ValueError(
                f"Class name {name!r} cannot be written as one line of "
                f"{LABELS_ASSET} (empty, line break or surrounding spaces)."
            )
    return class_names


def _build_archive(model, class_names, height, width, top_k, labels_file):
    """An `ExportArchive` with both signatures (TensorFlow backend only)."""
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


def _claim_version_dir(export_dir, version, staging):
    """Renames `staging` to `export_dir/<version>`; False when that exists."""
    target = export_dir / str(version)
    if target.exists():
        return False
    try:
        # rename() refuses a non-empty target; mkdir-first would race.
        os.rename(staging, target)
    except OSError:
        return False
    return True


def export_saved_model(
    model,
    export_dir,
    version=None,
    top_k=5,
    image_size=None,
    class_names=None,
    format="saved_model",
):
    """Writes `model` as version `version` of a TF Serving model directory.

    Args:
        model: a Keras model on raw RGB `(batch, H, W, 3)` pixels in [0, 255]
            returning logits `(batch, C)` (e.g. `build_mmdsr(...)`).
        export_dir: the model base directory (what TF Serving's `--model_base_path`
            or the docker `/models/<name>` mount points at).
        version: positive int. Defaults to the largest existing integer version
            + 1 (1 in a new directory). An existing version is never
            overwritten: naming one raises `FileExistsError`.
        top_k: how many (label, score) pairs `serve_bytes` returns, capped at
            C. Defaults to 5.
        image_size: int or `(H, W)`; only needed when the model's input has a
            dynamic size (must agree with a static one).
        class_names: override the names stored in the model's `logits` layer.
        format: `"saved_model"` (default), or `"onnx"` / `"litert"` to write
            `export_dir/<version>/model.onnx` / `model.tflite` with Keras' own
            `model.export` (image input and logits output only; needs the
            `tf2onnx`+`onnx` / TensorFlow Lite converter packages).

    Returns:
        The written version directory (`pathlib.Path`).

    On a JAX or PyTorch backend the model is saved to a temporary `.keras`
    file and exported by `export_saved_model_from_file` in a TensorFlow
    subprocess.

    Example:
    >>> from mmdsr_keras import build_mmdsr
    >>> model = build_mmdsr(num_classes=3, backbone="mobilenet_0.25",
    ...                     image_size=64, weights=None, units=16)
    >>> export_saved_model(model, "/tmp/mmdsr_export").name  # doctest: +SKIP
    '1'
    """
    if format not in ("saved_model",) + FORMATS:
        raise ValueError(f"format={format!r}; expected 'saved_model', 'onnx' or 'litert'.")
    export_dir = pathlib.Path(export_dir)
    if version is not None:
        version = _check_version(version)
        if (export_dir / str(version)).exists():
            raise FileExistsError(
                f"Version {version} already exists in {export_dir} "
                f"({export_dir / str(version)}); it is never overwritten."
            )
    height, width = _model_image_size(model, image_size)
    class_names = _resolve_class_names(model, class_names)

    if keras.backend.backend() != "tensorflow":
        with tempfile.TemporaryDirectory(prefix="mmdsr_export_") as tmp:
            keras_path = os.path.join(tmp, "model.keras")
            model.save(keras_path)
            return export_saved_model_from_file(
                keras_path, export_dir, version=version, top_k=top_k,
                image_size=image_size, class_names=class_names, format=format,
            )

    export_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tmp-export-", dir=export_dir) as tmp:
        tmp = pathlib.Path(tmp)
        staging = tmp / "version"
        if format == "saved_model":
            labels_dir = tmp / "labels"
            labels_dir.mkdir()
            labels_file = labels_dir / LABELS_ASSET
            labels_file.write_text("".join(f"{n}\n" for n in class_names), encoding="utf-8")
            archive = _build_archive(model, class_names, height, width, top_k, labels_file)
            archive.write_out(str(staging), verbose=False)
        else:
            staging.mkdir()
            _export_other_format(model, staging, format, height, width, class_names)
        if version is not None:
            if not _claim_version_dir(export_dir, version, staging):
                raise FileExistsError(
                    f"Version {version} already exists in {export_dir} "
                    f"({export_dir / str(version)}); it is never overwritten."
                )
            return export_dir / str(version)
        # Auto version: another exporter may take the same number meanwhile.
        for _ in range(100):
            version = max(existing_versions(export_dir), default=0) + 1
            if _claim_version_dir(export_dir, version, staging):
                return export_dir / str(version)
        raise FileExistsError(f"Could not claim a new version directory in {export_dir}.")


def _export_other_format(model, directory, format, height, width, class_names):
    """ONNX / LiteRT through Keras' own `model.export` (no custom converter)."""
    spec = keras.InputSpec(shape=(None, height, width, 3), dtype="float32", name=IMAGE_INPUT)
    if format == "onnx":
        model.export(str(directory / "model.onnx"), format="onnx",
                     input_signature=[spec], verbose=False)
    else:
        model.export(str(directory / "model.tflite"), format="litert",
                     input_signature=[spec], verbose=False)
    (directory / LABELS_ASSET).write_text(
        "".join(f"{n}\n" for n in class_names), encoding="utf-8"
    )


def load_and_export(keras_path, export_dir, **kwargs):
    """Loads a `.keras` file (TensorFlow backend) and exports it."""
    import mmdsr_keras  # noqa: F401  (registers the serializable layers)

    model = keras.saving.load_model(keras_path, compile=False)
    return export_saved_model(model, export_dir, **kwargs)


_RERAISED_ERRORS = {"FileExistsError": FileExistsError, "ValueError": ValueError,
               "FileNotFoundError": FileNotFoundError}


def export_saved_model_from_file(
    keras_path,
    export_dir,
    version=None,
    top_k=5,
    image_size=None,
    class_names=None,
    format="saved_model",
):
    """Exports a saved `.keras` model, whatever backend trained it.

    On the TensorFlow backend the file is loaded here. On JAX or PyTorch it is
    loaded and exported by a subprocess (`python -m
    mmdsr_keras.export.saved_model_export`) with `KERAS_BACKEND=tensorflow`:
    a SavedModel holds TensorFlow graphs, which this process cannot trace.
    The weights are the same; outputs agree to float32 rounding (~1e-6).

    Args:
        keras_path: the `.keras` file.
        export_dir, version, top_k, image_size, class_names, format: as
            `export_saved_model`.

    Returns:
        The written version directory (`pathlib.Path`).
    """
    keras_path = pathlib.Path(keras_path)
    if not keras_path.is_file():
        raise FileNotFoundError(f"No such .keras file: {keras_path}")
    kwargs = {"version": version, "top_k": top_k, "image_size": image_size,
              "class_names": class_names, "format": format}
    if keras.backend.backend() == "tensorflow":
        return load_and_export(str(keras_path), export_dir, **kwargs)

    with tempfile.TemporaryDirectory(prefix="mmdsr_export_") as tmp:
        result_file = os.path.join(tmp, "result.json")
        request = {"keras_path": str(keras_path.resolve()),
                   "export_dir": str(pathlib.Path(export_dir).resolve()), **kwargs}
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        package_root = str(pathlib.Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH")) if p
        )
        completed = subprocess.run(
            [sys.executable, "-m", "mmdsr_keras.export.saved_model_export",
             "--request", json.dumps(request), "--result-file", result_file],
            env=env, capture_output=True, text=True,
        )
        result = {}
        if os.path.exists(result_file):
            with open(result_file, encoding="utf-8") as f:
                result = json.load(f)
        if completed.returncode == 0 and "path" in result:
            return pathlib.Path(result["path"])
        if "error_type" in result:
            error = _RERAISED_ERRORS.get(result["error_type"], RuntimeError)
            raise error(result["message"])
        raise RuntimeError(
            "SavedModel export subprocess (KERAS_BACKEND=tensorflow) failed with "
            f"exit status {completed.returncode}:\n{completed.stderr[-4000:]}"
        )


def main(argv=None):
    """Subprocess entry point of `export_saved_model_from_file`."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--request", required=True, help="JSON of the export arguments")
    parser.add_argument("--result-file", required=True)
    args = parser.parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("Run with KERAS_BACKEND=tensorflow.")
    request = json.loads(args.request)
    image_size = request.get("image_size")
    if isinstance(image_size, list):
        request["image_size"] = tuple(image_size)
    try:
        path = load_and_export(request.pop("keras_path"), request.pop("export_dir"), **request)
        result = {"path": str(path)}
    except Exception as error:  # reported to the parent, which re-raises
        result = {"error_type": type(error).__name__, "message": str(error)}
    with open(args.result_file, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0 if "path" in result else 1


if __name__ == "__main__":
    sys.exit(main())
