"""A training run's folder: always new, reopened only on explicit resume."""

import datetime
import json
import os
import pathlib
import shutil
import tempfile

from mmdsr_keras.training.multi_label_trainer import BACKUP_DIR

CONFIG_FILE = "config.json"


class RunDirectory:
    """The folder of one run: config, checkpoints, logs, model and report.

    `RunDirectory.create` never reuses a folder (a numeric suffix is added
    when the timestamped name exists); `RunDirectory.resume` only opens a
    folder that holds a run's `config.json`.

    Args:
        path: the run folder.

    Example:
    >>> import tempfile
    >>> run = RunDirectory.create(tempfile.mkdtemp(), "shapes")
    >>> run.write_config({"epochs": 3}); run.read_config()["epochs"]
    3
    """

    def __init__(self, path):
        self.path = pathlib.Path(path)

    @classmethod
    def create(cls, root="runs", name="run"):
        root = pathlib.Path(root)
        root.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = root / f"{name}-{stamp}"
        candidate, n = base, 1
        while True:
            try:
                candidate.mkdir()
                return cls(candidate)
            except FileExistsError:
                n += 1
                candidate = pathlib.Path(f"{base}-{n}")

    @classmethod
    def resume(cls, path):
        path = pathlib.Path(path)
        if not (path / CONFIG_FILE).is_file():
            raise ValueError(
                f"{path}: not a run folder (no {CONFIG_FILE}); resume takes the folder "
                "of an earlier run, the one `RunDirectory.create` made for it."
            )
        return cls(path)

    def file(self, *parts):
        target = self.path.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def subdir(self, *parts):
        """A folder inside the run (created if missing)."""
        target = self.path.joinpath(*parts)
        target.mkdir(parents=True, exist_ok=True)
        return target

    def write_config(self, config):
        with open(self.file(CONFIG_FILE), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True, default=str)

    def read_config(self):
        with open(self.path / CONFIG_FILE) as f:
            return json.load(f)

    def new_subdir(self, name):
        """A fresh sub-folder (`name`, `name-2`, ...), e.g. for a report."""
        candidate, n = self.path / name, 1
        while True:
            try:
                candidate.mkdir(parents=True)
                return candidate
            except FileExistsError:
                n += 1
                candidate = self.path / f"{name}-{n}"

    def __fspath__(self):
        return os.fspath(self.path)

    def __str__(self):
        return str(self.path)


def worker_folder(process_id, chief_folder=None):
    """A new temporary folder for a non-chief worker, holding a copy of the chief's backup.

    In a multi-process run only the chief writes the run folder. A worker
    writes its files here (the caller removes the folder), and on resume it
    must restore the chief's weights, optimizer state and epoch: it copies
    `backup/` of `chief_folder` (the run folder, on a shared file system).

    Args:
        process_id: the worker's index (in the folder's name).
        chief_folder: the run folder being resumed. Defaults to None.
    """
    folder = tempfile.mkdtemp(prefix=f"mmdsr-worker{process_id}-")
    backup = os.path.join(chief_folder, BACKUP_DIR) if chief_folder else None
    if backup and os.path.isdir(backup):
        shutil.copytree(backup, os.path.join(folder, BACKUP_DIR))
    return folder
