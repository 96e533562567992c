"""Classifier presets in keras-hub's layout: a folder of configs and weights."""

import datetime
import json
import pathlib

import keras

# A run folder of `mmdsr-keras train` holds its preset here (its own
# `config.json` is the run's configuration).
RUN_PRESET_DIR = "preset"
METADATA_FILE = "metadata.json"
BACKBONE_CONFIG_FILE = "config.json"
BACKBONE_WEIGHTS_FILE = "model.weights.h5"
TASK_CONFIG_FILE = "task.json"
TASK_WEIGHTS_FILE = "task.weights.h5"
PRESET_FILES = (METADATA_FILE, BACKBONE_CONFIG_FILE, BACKBONE_WEIGHTS_FILE, TASK_CONFIG_FILE,
                TASK_WEIGHTS_FILE)


def save_classifier_preset(model, preset_dir, overwrite=False):
    """Writes `model` (a `MultiLabelImageClassifier`) as a preset into `preset_dir`.

    `config.json` + `model.weights.h5` hold the backbone (loadable alone with
    `keras.saving.deserialize_keras_object` + `load_weights`),
    `task.json` + `task.weights.h5` the whole classifier, `metadata.json` the
    versions. Refuses a folder that already holds any of these files unless
    `overwrite` (a run folder's own preset, saved again when a run resumes).
    """
    from mmdsr_keras import __version__

    folder = pathlib.Path(preset_dir)
    taken = [name for name in PRESET_FILES if (folder / name).exists()]
    if taken and not overwrite:
        raise FileExistsError(
            f"{folder}: already holds a preset ({', '.join(taken)}); save to a new folder.")
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / BACKBONE_CONFIG_FILE, keras.saving.serialize_keras_object(model.backbone))
    model.backbone.save_weights(folder / BACKBONE_WEIGHTS_FILE)
    _write_json(folder / TASK_CONFIG_FILE, keras.saving.serialize_keras_object(model))
    model.save_weights(folder / TASK_WEIGHTS_FILE)
    _write_json(folder / METADATA_FILE, {
        "keras_version": keras.__version__,
        "mmdsr_keras_version": __version__,
        "task": type(model).__name__,
        "class_names": model.class_names,
        "parameter_count": int(model.count_params()),
        "date_saved": datetime.datetime.now().isoformat(timespec="seconds"),
    })


def find_preset_dir(preset):
    """`preset` itself, or the `preset/` folder of a run folder."""
    folder = pathlib.Path(preset)
    for candidate in (folder, folder / RUN_PRESET_DIR):
        if (candidate / TASK_CONFIG_FILE).is_file():
            return candidate
    raise FileNotFoundError(
        f"{folder}: no {TASK_CONFIG_FILE} here or in {folder / RUN_PRESET_DIR}; expected a "
        "folder written by save_to_preset or an mmdsr-keras train run folder."
    )


def load_classifier_preset(preset, load_weights=True):
    """The classifier saved in `preset` (a preset folder or a run folder)."""
    folder = find_preset_dir(preset)
    path = folder / TASK_CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON at line {error.lineno}, column "
                         f"{error.colno}: {error.msg}.") from None
    model = keras.saving.deserialize_keras_object(config)
    if load_weights:
        model.load_weights(folder / TASK_WEIGHTS_FILE)
    return model


def _write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=2)
