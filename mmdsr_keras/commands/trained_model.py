"""Finds the model of a run folder (or a `.keras` file) and its run arguments."""

import json
import pathlib

import keras

import mmdsr_keras  # noqa: F401  (registers the package's serializable classes)


def load_trained_model(path):
    """`(model, arguments)`: the `.keras` model and the run's arguments (or `{}`).

    Args:
        path: a run folder written by `mmdsr-keras train`, or a `.keras` file.
    """
    path = pathlib.Path(path)
    arguments = {}
    if path.is_dir():
        config = path / "config.json"
        if config.is_file():
            arguments = json.loads(config.read_text()).get("arguments", {})
        path = path / "model.keras"
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
