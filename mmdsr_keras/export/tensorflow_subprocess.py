"""Runs an export in a Python subprocess with `KERAS_BACKEND=tensorflow`.

A SavedModel holds TensorFlow graphs, which a JAX or PyTorch process cannot
trace. `run_in_tensorflow` sends the request (JSON) to a child process
running `python -m mmdsr_keras.export.saved_model_export`; the child answers
with `answer_request` (the written path, or the error's type and message),
and the parent returns the path or re-raises the error.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import keras

# The module the child runs; it calls `answer_request` with its exporter.
CHILD_MODULE = "mmdsr_keras.export.saved_model_export"
# Errors of the child raised again, with their type, in the parent.
_RERAISED_ERRORS = {"FileExistsError": FileExistsError, "ValueError": ValueError,
                    "FileNotFoundError": FileNotFoundError}


def run_in_tensorflow(request):
    """Runs the export `request` in a TensorFlow child process.

    Args:
        request: dict of `load_and_export`'s arguments, JSON-able (paths as
            absolute strings).

    Returns:
        The written version directory (`pathlib.Path`).

    Raises:
        FileExistsError, ValueError, FileNotFoundError: as raised in the child.
        RuntimeError: the child failed otherwise (its stderr's tail attached).
    """
    with tempfile.TemporaryDirectory(prefix="mmdsr_export_") as tmp:
        result_file = os.path.join(tmp, "result.json")
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        package_root = str(pathlib.Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH")) if p
        )
        completed = subprocess.run(
            [sys.executable, "-m", CHILD_MODULE,
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


def answer_request(export, argv=None):
    """The child's side: runs `export(**request)` and writes the result file.

    Args:
        export: the exporter, called as `export(keras_path, export_dir, **options)`.
        argv: `--request JSON --result-file PATH`. Defaults to `sys.argv[1:]`.

    Returns:
        The exit status: 0 when the export was written, 1 otherwise.
    """
    parser = argparse.ArgumentParser(description="Export a .keras model (TensorFlow backend).")
    parser.add_argument("--request", required=True, help="JSON of the export arguments")
    parser.add_argument("--result-file", required=True)
    options = parser.parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("Run with KERAS_BACKEND=tensorflow.")
    request = json.loads(options.request)
    if isinstance(request.get("image_size"), list):  # JSON has no tuples
        request["image_size"] = tuple(request["image_size"])
    try:
        path = export(request.pop("keras_path"), request.pop("export_dir"), **request)
        result = {"path": str(path)}
    except Exception as error:  # reported to the parent, which re-raises
        result = {"error_type": type(error).__name__, "message": str(error)}
    with open(options.result_file, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0 if "path" in result else 1
