"""The `mmdsr-keras` sub-commands (the application layer on top of the package).

Each `run_<command>(args)` takes the parsed `argparse.Namespace` and returns
the exit status; `*_arguments` modules define the flags. The commands are
imported on first use, so the parser (`mmdsr_keras.cli.build_parser`) loads
neither the data pipeline nor TensorFlow.
"""

import importlib

_EXPORTS = {
    "run_evaluate": "evaluate_command",
    "run_export": "export_command",
    "run_predict": "predict_command",
    "run_train": "train_command",
    "run_tune": "tune_command",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)
