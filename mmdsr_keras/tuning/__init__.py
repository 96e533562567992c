"""Hyperparameter search for MMDSR with KerasTuner.

`MMDSRHyperModel` is the search space (model and training hyperparameters),
built from a training dataset; `run_search` runs a random, Bayesian or
Hyperband search on `val_mAP` (resumable); `write_search_report` writes the
trial table (CSV), a plot and the best hyperparameters. `mmdsr-keras tune`
(and `tuning/tune_mmdsr.py`) run the same from the command line.

The names are imported on first use: importing one submodule (the CLI's
parser reads `search.TUNERS`) then loads neither the model code nor the
training code.
"""

import importlib

_EXPORTS = {
    "MMDSRHyperModel": "mmdsr_hypermodel",
    "val_map_objective": "trial_checks",
    "TUNERS": "search",
    "ProjectMismatchError": "search",
    "SearchStoppedError": "search",
    "build_tuner": "search",
    "run_search": "search",
    "REPORT_FILES": "search_report",
    "format_trial_table": "search_report",
    "plot_search": "search_report",
    "trial_rows": "search_report",
    "write_search_report": "search_report",
    "write_trial_csv": "search_report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)
