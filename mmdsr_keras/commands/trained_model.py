"""Finds the model of a run folder (or a `.keras` file) and its run arguments."""

import json
import pathlib

import keras

from mmdsr_keras.training.run_directory import CONFIG_FILE

# The model file of a run folder (`mmdsr-keras train` writes it last).
MODEL_FILE = "model.keras"


def model_file(path):
    """The `.keras` file of `path`: a run folder's `model.keras`, or `path` itself.

    Example:
    >>> import tempfile
    >>> model_file(tempfile.mkdtemp()).name, model_file("other.keras").name
    ('model.keras', 'other.keras')
    """
    path = pathlib.Path(path)
    return path / MODEL_FILE if path.is_dir() else path


def load_trained_model(path):
    """`(model, arguments)`: the `.keras` model and the run's arguments (or `{}`).

    Importing this package imported `mmdsr_keras`, which registers the
    package's serializable classes for `load_model`.

    Args:
        path: a run folder written by `mmdsr-keras train`, or a `.keras` file.
    """
    path = pathlib.Path(path)
    arguments = {}
    config = path / CONFIG_FILE
    if path.is_dir() and config.is_file():
        arguments = json.loads(config.read_text()).get("arguments", {})
    path = model_file(path)
    if not path.is_file():
        raise SystemExit(f"No trained model at {path} (expected a run folder or a .keras file).")
    return keras.saving.load_model(path), arguments


def output_folder(model_path, requested, name):
    """A new folder for a command's output: `requested`, or one inside the run."""
    if requested:
        folder = pathlib.Path(requested)
        if folder.exists() and any(folder.iterdir()):
            raise SystemExit(f"--out {folder} exists and is not empty; choose a new folder.")
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    base = pathlib.Path(model_path)
    base = base if base.is_dir() else base.parent
    candidate, n = base / name, 1
    while candidate.exists():
        n += 1
        candidate = base / f"{name}-{n}"
    candidate.mkdir(parents=True)
    return candidate
