"""Stops a run at its first non-finite loss, with the step and what to try."""

import math

import keras


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite: the run diverged and its weights are unusable."""


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Raises `TrainingDivergedError` at the first NaN or infinite batch loss.

    Keras' `TerminateOnNaN` only stops training: `fit` returns normally and
    the caller saves and scores a model whose weights are NaN. This guard
    raises instead, before any later checkpoint or save, naming the epoch and
    step and the usual cure.

    Args:
        phase: what is training, for the message (e.g. `"fine-tuning"`).
            Defaults to `"training"`.
        hint: what to try, for the message. Defaults to a lower
            `learning_rate`.

    Example:
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(1e30), "mse")
    >>> try:
    ...     model.fit(np.ones((4, 1)) * 1e10, np.ones((4, 1)), epochs=3, verbose=0,
    ...               callbacks=[NonFiniteLossGuard()])
    ... except TrainingDivergedError as error:
    ...     print(str(error).split(":")[0])
    training diverged
    """

    def __init__(self, phase="training", hint="lower the learning rate (learning_rate)"):
        super().__init__()
        self.phase = phase
        self.hint = hint
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"{self.phase} diverged: loss {loss} at epoch {self._epoch + 1}, step {batch + 1}; "
                f"nothing was saved from this phase. Try: {self.hint}."
            )
