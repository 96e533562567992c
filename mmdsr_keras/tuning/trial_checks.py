"""What a trial is scored on (`val_map_objective`) and when it counts as FAILED (`check_trial`).

KerasTuner counts a trial that raises `keras_tuner.errors.FailedTrialError`
as FAILED and starts the next one; any other error stops the search. A trial
whose loss diverged, whose model predicts NaN or whose `val_mAP` is undefined
must never count as a best one.
"""

import math

import keras_tuner
import numpy as np

OBJECTIVE_NAME = "val_mAP"


def val_map_objective():
    """`keras_tuner.Objective("val_mAP", "max")`: ML-GCN's mAP on the validation data.

    Example:
    >>> val_map_objective().name
    'val_mAP'
    """
    return keras_tuner.Objective(OBJECTIVE_NAME, direction="max")


def describe_hyperparameters(hp):
    """`"name=value, ..."` of a trial's hyperparameters, sorted by name, for messages.

    Example:
    >>> hp = keras_tuner.HyperParameters()
    >>> _ = hp.Fixed("units", 64), hp.Fixed("graph", "static")
    >>> describe_hyperparameters(hp)
    'graph=static, units=64'
    """
    return ", ".join(f"{k}={v}" for k, v in sorted(hp.values.items()))


def check_trial_data(train, val):
    """Both must be `MultiLabelDataset`s (the hypermodel builds the pipelines itself).

    Raises:
        keras_tuner.errors.FatalTypeError: the search cannot go on with such data.
    """
    for what, data in (("x", train), ("validation_data", val)):
        if not hasattr(data, "to_tf_dataset"):
            raise keras_tuner.errors.FatalTypeError(
                f"MMDSRHyperModel.fit: {what} must be a MultiLabelDataset, got "
                f"{type(data).__name__} (pass tuner.search(train, validation_data=val))."
            )


def failed_trial(error, hp):
    """The `FailedTrialError` reporting `error` (e.g. a diverged loss) with the trial's values."""
    return keras_tuner.errors.FailedTrialError(
        f"{error} Hyperparameters: {describe_hyperparameters(hp)}")


def check_trial(hp, history, val_map):
    """Raises `FailedTrialError` unless the trial's losses, predictions and `val_mAP` are usable.

    Args:
        hp: the trial's `HyperParameters`.
        history: the `History` of its `fit`.
        val_map: its `MeanAveragePrecisionCallback` (the last evaluation's meter).

    Raises:
        keras_tuner.errors.FailedTrialError: a training loss is not finite, the
            model predicts NaN on the validation data, or `val_mAP` is NaN at
            every epoch (no validation class with a positive label).
    """
    losses = [float(v) for v in history.history.get("loss", [])]
    values = describe_hyperparameters(hp)
    if not all(map(math.isfinite, losses)):
        raise keras_tuner.errors.FailedTrialError(
            f"Training loss per epoch {losses} is not finite. Hyperparameters: {values}"
        )
    if val_map.meter.num_examples and np.isnan(val_map.meter.arrays()[0]).any():
        raise keras_tuner.errors.FailedTrialError(
            f"The model predicts NaN on the validation data. Hyperparameters: {values}"
        )
    maps = history.history.get(OBJECTIVE_NAME, [])
    if not maps or all(math.isnan(float(v)) for v in maps):
        raise keras_tuner.errors.FailedTrialError(
            f"{OBJECTIVE_NAME} is undefined (NaN) at every epoch: the validation data has "
            "no class with a positive label."
        )
