"""`export_saved_model`: a TF Serving SavedModel of an MMDSR model.

The model base directory holds one integer folder per version
(`version_directory`), each a SavedModel with the `serving_default` and
`serve_bytes` signatures and the class names as `assets/labels.txt`
(`serving_archive`); ONNX and LiteRT files come from Keras' own
`model.export`.

TensorFlow is imported lazily, so `export_saved_model_from_file` can be
called from a JAX or PyTorch process: it re-runs itself in a subprocess with
`KERAS_BACKEND=tensorflow` (`python -m mmdsr_keras.export.saved_model_export`,
see `tensorflow_subprocess`).
"""

import os
import pathlib
import sys
import tempfile

import keras

from mmdsr_keras.export.serving_archive import (
    IMAGE_INPUT,
    LABELS_ASSET,
    build_serving_archive,
    decode_for_serving,
    write_labels,
)
from mmdsr_keras.export.tensorflow_subprocess import answer_request, run_in_tensorflow
from mmdsr_keras.export.version_directory import (
    check_version,
    publish_version,
    refuse_existing_version,
)
from mmdsr_keras.models import class_names_of

FORMATS = ("onnx", "litert")
# `decode_for_serving` is re-exported: it was defined here before the serving
# archive had a module of its own.
__all__ = ["FORMATS", "decode_for_serving", "export_saved_model", "export_saved_model_from_file",
           "load_and_export"]


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
        version = check_version(version)
        refuse_existing_version(export_dir, version)
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
            write_labels(labels_file, class_names)
            archive = build_serving_archive(model, class_names, height, width, top_k,
                                            labels_file)
            archive.write_out(str(staging), verbose=False)
        else:
            staging.mkdir()
            _export_other_format(model, staging, format, height, width, class_names)
        return publish_version(staging, export_dir, version)


def _export_other_format(model, directory, format, height, width, class_names):
    """ONNX / LiteRT through Keras' own `model.export` (no custom converter)."""
    spec = keras.InputSpec(shape=(None, height, width, 3), dtype="float32", name=IMAGE_INPUT)
    if format == "onnx":
        model.export(str(directory / "model.onnx"), format="onnx",
                     input_signature=[spec], verbose=False)
    else:
        model.export(str(directory / "model.tflite"), format="litert",
                     input_signature=[spec], verbose=False)
    write_labels(directory / LABELS_ASSET, class_names)


def load_and_export(keras_path, export_dir, **kwargs):
    """Loads a `.keras` file (TensorFlow backend) and exports it with `export_saved_model`.

    Importing this module imported `mmdsr_keras`, which registers the
    package's serializable classes for `load_model`.
    """
    model = keras.saving.load_model(keras_path, compile=False)
    return export_saved_model(model, export_dir, **kwargs)


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

    Raises:
        FileNotFoundError: `keras_path` is no file.
    """
    keras_path = pathlib.Path(keras_path)
    if not keras_path.is_file():
        raise FileNotFoundError(f"No such .keras file: {keras_path}")
    kwargs = {"version": version, "top_k": top_k, "image_size": image_size,
              "class_names": class_names, "format": format}
    if keras.backend.backend() == "tensorflow":
        return load_and_export(str(keras_path), export_dir, **kwargs)
    return run_in_tensorflow({"keras_path": str(keras_path.resolve()),
                              "export_dir": str(pathlib.Path(export_dir).resolve()), **kwargs})


if __name__ == "__main__":
    # The child process of `run_in_tensorflow`.
    sys.exit(answer_request(load_and_export))
