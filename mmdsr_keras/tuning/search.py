"""Runs a KerasTuner search of `MMDSRHyperModel` (random, Bayesian or Hyperband), resumably."""

import hashlib
import importlib.util
import json
import pathlib

import keras_tuner
import numpy as np

from mmdsr_keras.tuning.trial_checks import val_map_objective

TUNERS = ("random", "bayesian", "hyperband")
PROJECT_FACTS_FILE = "mmdsr_tuning.json"
# Files KerasTuner writes at the root of a project folder.
_KERAS_TUNER_FILES = ("oracle.json", "tuner0.json")


class ProjectMismatchError(ValueError):
    """An existing tuning project was made for another dataset, space or tuner."""


class SearchStoppedError(RuntimeError):
    """KerasTuner stopped the search (too many failed trials in a row); `.tuner` holds it."""

    def __init__(self, message, tuner):
        super().__init__(message)
        self.tuner = tuner


def _labels_digest(dataset):
    labels = np.ascontiguousarray(np.asarray(dataset.labels, dtype=np.float32))
    return hashlib.sha1(labels.tobytes() + str(labels.shape).encode()).hexdigest()[:16]


def project_facts(hypermodel, tuner, train, val):
    """What a project is tied to: tuner kind, search space, and both datasets."""
    return {
        "tuner": tuner,
        "objective": "val_mAP (max)",
        "hypermodel": hypermodel.describe(),
        "train": {"images": len(train), "labels_sha1": _labels_digest(train)},
        "val": {"images": len(val), "labels_sha1": _labels_digest(val)},
    }


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _flatten(facts, prefix=""):
    """`{"a": {"b": 1}}` -> `{"a.b": 1}` (lists stay values)."""
    flat = {}
    for key, value in facts.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_project(project_dir, facts, overwrite):
    """Checks `project_dir` before a tuner opens it; returns True if it resumes.

    With `overwrite=False` an existing project resumes only if it was made for
    the same tuner, search space and data (else `ProjectMismatchError`). With
    `overwrite=True` the project is deleted (by KerasTuner) only if the folder
    is a KerasTuner project or empty: an unrelated folder is never deleted.
    """
    project_dir = pathlib.Path(project_dir)
    if not project_dir.exists():
        return False
    if not project_dir.is_dir():
        raise ProjectMismatchError(f"{project_dir} exists and is not a folder.")
    entries = list(project_dir.iterdir())
    ours = (project_dir / PROJECT_FACTS_FILE).is_file()
    keras_tuner_project = any((project_dir / name).is_file() for name in _KERAS_TUNER_FILES)
    if entries and not ours and not keras_tuner_project:
        raise ProjectMismatchError(
            f"{project_dir} exists and is not a tuning project: refusing to "
            f"{'delete' if overwrite else 'write into'} it. Choose another `directory` "
            "or `project_name`."
        )
    if overwrite or not entries:
        return False
    if ours:
        saved = _flatten(json.loads((project_dir / PROJECT_FACTS_FILE).read_text()))
        wanted = _flatten(_jsonable(facts))
        differing = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
        if differing:
            details = "; ".join(
                f"{k}: project has {saved.get(k)!r}, this run {wanted.get(k)!r}" for k in differing
            )
            raise ProjectMismatchError(
                f"The tuning project {project_dir} was made for other settings ({details}). "
                "Resume it with the same settings, pick another `project_name`, or pass "
                "`overwrite=True` to delete it and start over."
            )
    return keras_tuner_project


def build_tuner(hypermodel, tuner="random", directory="tuning_runs", project_name="mmdsr",
                overwrite=False, max_trials=10, max_epochs=4, factor=3,
                hyperband_iterations=1, num_initial_points=None, seed=0,
                executions_per_trial=1, max_consecutive_failed_trials=3,
                distribution_strategy=None):
    """A KerasTuner tuner of `hypermodel` on `val_mAP` (max).

    Args:
        hypermodel: an `MMDSRHyperModel`.
        tuner: `"random"` (`RandomSearch`), `"bayesian"`
            (`BayesianOptimization`, needs scipy: the `bayesian` extra) or
            `"hyperband"` (`Hyperband`: `max_epochs`, `factor`,
            `hyperband_iterations`; it sets each trial's epochs).
        directory, project_name: the project is `directory/project_name`.
        overwrite: delete an existing project and start over. Defaults to
            False: an existing project is reloaded and its finished trials are
            not run again.
        max_trials: trials in all (random, bayesian), counting finished ones
            of a resumed project.
        num_initial_points: random trials before the Gaussian process
            (bayesian). Defaults to KerasTuner's (3 x the number of
            hyperparameters).
        seed: the oracle's seed.
        executions_per_trial: trainings per trial (averaged). `build` is
            deterministic, so every execution starts from the same weights:
            more than 1 only averages out nondeterministic kernels.
        max_consecutive_failed_trials: a search stops after this many failed
            trials in a row. Defaults to 3.
        distribution_strategy: a `tf.distribute.Strategy` each trial runs in
            (TensorFlow backend), e.g. `tf.distribute.MirroredStrategy()`.

    Returns:
        The tuner.
    """
    common = dict(
        hypermodel=hypermodel,
        objective=val_map_objective(),
        seed=seed,
        max_consecutive_failed_trials=max_consecutive_failed_trials,
        executions_per_trial=executions_per_trial,
        distribution_strategy=distribution_strategy,
        directory=str(directory),
        project_name=project_name,
        overwrite=overwrite,
    )
    if tuner == "random":
        return keras_tuner.RandomSearch(max_trials=max_trials, **common)
    if tuner == "bayesian":
        if importlib.util.find_spec("scipy") is None:  # KerasTuner's Gaussian process needs it
            raise ImportError(
                "tuner='bayesian' needs scipy: pip install 'mmdsr-keras[bayesian]'."
            )
        return keras_tuner.BayesianOptimization(
            max_trials=max_trials, num_initial_points=num_initial_points, **common
        )
    if tuner == "hyperband":
        return keras_tuner.Hyperband(max_epochs=max_epochs, factor=factor,
                                     hyperband_iterations=hyperband_iterations, **common)
    raise ValueError(f"tuner={tuner!r}; expected one of {TUNERS}.")


def run_search(hypermodel, train, val, tuner="random", directory="tuning_runs",
               project_name="mmdsr", overwrite=False, callbacks=(), verbose=1,
               **tuner_kwargs):
    """Searches (or resumes searching) the MMDSR hyperparameters on `train`/`val`.

    Writes `mmdsr_tuning.json` into the project (tuner, space, data
    fingerprints: a later run resumes only with the same ones), builds the
    tuner (`build_tuner`) and calls `tuner.search(train,
    validation_data=val)`. Finished trials of a resumed project are kept; an
    interrupted one is run again.

    Args:
        hypermodel: an `MMDSRHyperModel` (e.g. `MMDSRHyperModel.from_dataset(train)`).
        train, val: `MultiLabelDataset`s.
        tuner, directory, project_name, overwrite: see `build_tuner`.
        callbacks: extra Keras callbacks for every trial (deep-copied per
            trial; a `keras.callbacks.TensorBoard` gets one folder per trial
            and, on TensorFlow, the HParams dashboard).
        verbose: Keras and KerasTuner verbosity.
        **tuner_kwargs: the rest of `build_tuner`'s arguments.

    Returns:
        `(tuner, resumed)`: the tuner after the search, and whether an
        existing project was resumed.

    Raises:
        ProjectMismatchError: the project exists for other settings, or the
            folder is not a tuning project.
        SearchStoppedError: `max_consecutive_failed_trials` trials failed in
            a row (its `.tuner` still has every trial for the report).
    """
    project_dir = pathlib.Path(directory) / project_name
    facts = project_facts(hypermodel, tuner, train, val)
    resumed = check_project(project_dir, facts, overwrite)
    search_tuner = build_tuner(hypermodel, tuner=tuner, directory=directory,
                               project_name=project_name, overwrite=overwrite, **tuner_kwargs)
    project_dir.mkdir(parents=True, exist_ok=True)
    (project_dir / PROJECT_FACTS_FILE).write_text(json.dumps(_jsonable(facts), indent=2))
    try:
        search_tuner.search(train, validation_data=val, callbacks=list(callbacks),
                            verbose=verbose)
    except RuntimeError as error:
        if "consecutive failures" not in str(error):
            raise
        raise SearchStoppedError(str(error), search_tuner) from error
    return search_tuner, resumed
