"""Keras callback writing ML-GCN's mAP (and CF1/OF1) into the epoch logs."""

import collections.abc
import copy

import keras
import numpy as np

from mmdsr_keras.evaluation.average_precision_meter import THRESHOLD_METRICS, AveragePrecisionMeter
from mmdsr_keras.evaluation.metric_table import format_metric


def _to_numpy(a):
    """Host numpy copy of a numpy / TensorFlow / torch / JAX array (None passes through)."""
    if a is None or isinstance(a, np.ndarray):
        return a
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch
        return a.detach().cpu().numpy()
    if hasattr(a, "numpy") and callable(a.numpy):  # eager TensorFlow
        return a.numpy()
    return np.asarray(a)


def _is_array(a):
    return hasattr(a, "shape") and hasattr(a, "dtype")


class MeanAveragePrecisionCallback(keras.callbacks.Callback):
    """Computes ML-GCN's mAP on validation data every `frequency` epochs and logs it.

    At the end of every `frequency`-th epoch the model predicts the validation data
    (`model.predict_on_batch`, batch by batch), an `AveragePrecisionMeter` computes
    `mAP = 100 · mean_c AP_c` (non-interpolated AP, difficult labels skipped) and the threshold
    metrics (`CF1 = 2·CP·CR/(CP+CR)`, `OF1 = 2·OP·OR/(OP+OR)` at logit ≥ 0), and
    `logs[prefix + name]` is set for each name in `log_metrics` (by default `val_mAP`,
    `val_CF1` and `val_OF1`, in percent). The full metric dict is kept in
    `last_metrics`.

    **Put this callback first in the `callbacks` list.** Keras calls the callbacks in list order
    and they share one `logs` dict; `ModelCheckpoint`, `EarlyStopping`,
    `ReduceLROnPlateau`, `TensorBoard` or `CSVLogger` placed *before* it would not see
    `val_mAP`. `History` and the progress bar are appended by Keras after the user's callbacks,
    so they always see it; so does KerasTuner (it reads `History` and appends its own checkpoint
    callback), so `kt.Objective("val_mAP", "max")` works. On epochs skipped by `frequency`
    the keys are absent (monitors then warn and skip): use `frequency=1` when a monitor depends
    on them.

    Works on every backend: predictions are brought to numpy with
    `keras.ops.convert_to_numpy`. KerasTuner deep-copies callbacks per trial; a copy shares the
    (read-only) validation data and gets a fresh meter.

    Args:
        validation_data: one of
            * a tuple `(x, y)` or `(x, y, ignore_mask)` of arrays (`x` may also be a
              dict/list of arrays for a multi-input model), batched here by `batch_size`;
            * a re-iterable of batches (`tf.data.Dataset`, list, `keras.utils.PyDataset`)
              yielding `(x, y)` or `(x, y, ignore_mask)`. A one-shot iterator/generator is
              rejected (it would be empty from the second evaluation on).
            `y` is multi-hot {0, 1}; `ignore_mask` is 1 for "difficult"/ignored labels
            (see `from_ml_gcn_targets` for ML-GCN's {-1, 0, 1} labels).
        batch_size: batch size of tuple-of-arrays data. Defaults to 32.
        frequency: evaluate at the end of epochs `frequency, 2·frequency, …` (1-based).
            Defaults to 1.
        top_k: k of the top-k metrics. Defaults to 3.
        from_logits: whether the model outputs logits. If False, outputs are probabilities
            and are mapped to logits `log p − log(1 − p)` (in float64) so the threshold stays
            at p ≥ 0.5. Defaults to True.
        output: which model output holds the class scores when the model has several: an int
            index or a dict key. Defaults to None: the model must have a single output.
        prefix: prefix of the log keys. Defaults to `"val_"`.
        log_metrics: names of the metrics written into the logs. Defaults to
            `("mAP", "CF1", "OF1")`.
        verbose: 1 prints a one-line summary after each evaluation; 0 is silent. Defaults
            to 1.

    Example:
    >>> import numpy as np, keras
    >>> x = np.random.rand(16, 4).astype("float32")
    >>> y = (np.random.rand(16, 3) > 0.5).astype("float32")
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> model.compile("sgd", keras.losses.BinaryCrossentropy(from_logits=True))
    >>> cb = MeanAveragePrecisionCallback((x, y), verbose=0)
    >>> history = model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    >>> "val_mAP" in history.history
    True
    """

    def __init__(
        self,
        validation_data,
        batch_size=32,
        frequency=1,
        top_k=3,
        from_logits=True,
        output=None,
        prefix="val_",
        log_metrics=("mAP", "CF1", "OF1"),
        verbose=1,
    ):
        super().__init__()
        if int(frequency) < 1:
            raise ValueError(f"`frequency` must be ≥ 1, got {frequency}.")
        if int(batch_size) < 1:
            raise ValueError(f"`batch_size` must be ≥ 1, got {batch_size}.")
        if int(top_k) < 1:
            raise ValueError(f"`top_k` must be ≥ 1, got {top_k}.")
        if self._is_array_tuple(validation_data):
            if len(validation_data[1]) == 0:
                raise ValueError("`validation_data` is empty.")
        elif isinstance(validation_data, keras.utils.PyDataset):
            pass
        elif isinstance(validation_data, collections.abc.Iterator):
            raise TypeError(
                "`validation_data` is a one-shot iterator/generator: it would be exhausted "
                "after the first evaluation. Pass a tf.data.Dataset, a list of batches, a "
                "keras.utils.PyDataset or a tuple of arrays."
            )
        elif not isinstance(validation_data, collections.abc.Iterable):
            raise TypeError(
                "`validation_data` must be a tuple (x, y[, ignore_mask]) of arrays or a "
                f"re-iterable of batches, got {type(validation_data).__name__}."
            )
        known = {"mAP"} | {
            f"{m}{suffix}"
            for m in THRESHOLD_METRICS
            for suffix in ("", f"_top{int(top_k)}")
        }
        unknown = [m for m in log_metrics if m not in known]
        if unknown:
            raise ValueError(f"Unknown `log_metrics` {unknown}; known: {sorted(known)}.")
        self.validation_data = validation_data
        self.batch_size = int(batch_size)
        self.frequency = int(frequency)
        self.top_k = int(top_k)
        self.from_logits = bool(from_logits)
        self.output = output
        self.prefix = str(prefix)
        self.log_metrics = tuple(log_metrics)
        self.verbose = int(verbose)
        self.meter = AveragePrecisionMeter()
        self.last_metrics = None

    @staticmethod
    def _is_array_tuple(data):
        return isinstance(data, tuple) and len(data) in (2, 3) and _is_array(data[1])

    def __deepcopy__(self, memo):
        # KerasTuner deep-copies callbacks per trial: share the (read-only) data and the model
        # reference, copy the rest, start from a fresh meter.
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        shared = {"validation_data", "_model", "meter"}
        for key, value in self.__dict__.items():
            new.__dict__[key] = value if key in shared else copy.deepcopy(value, memo)
        new.meter = AveragePrecisionMeter()
        return new

    def _batches(self):
        data = self.validation_data
        if self._is_array_tuple(data):
            x, y = data[0], data[1]
            ignore = data[2] if len(data) == 3 else None
            n = len(y)
            for start in range(0, n, self.batch_size):
                sl = slice(start, start + self.batch_size)
                yield (
                    keras.tree.map_structure(lambda a: a[sl], x),
                    y[sl],
                    None if ignore is None else ignore[sl],
                )
            return
        if isinstance(data, keras.utils.PyDataset):
            batches = (data[i] for i in range(len(data)))
        else:
            batches = iter(data)
        for batch in batches:
            if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
                raise ValueError(
                    "Each validation batch must be (x, y) or (x, y, ignore_mask); got "
                    f"{type(batch).__name__}" + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
                    + "."
                )
            yield batch[0], batch[1], batch[2] if len(batch) == 3 else None

    def _select_output(self, outputs):
        if self.output is not None:
            return outputs[self.output]
        if isinstance(outputs, dict):
            if len(outputs) == 1:
                return next(iter(outputs.values()))
            raise ValueError(
                f"The model has several outputs {sorted(outputs)}: pass `output=` (a key)."
            )
        if isinstance(outputs, (list, tuple)):
            if len(outputs) == 1:
                return outputs[0]
            raise ValueError(
                f"The model has {len(outputs)} outputs: pass `output=` (an index)."
            )
        return outputs

    def evaluate(self, model=None):
        """Predicts the validation data and returns the meter's metric dict (also stored).

        Args:
            model: the model to evaluate. Defaults to None: the model being trained
                (`self.model`).

        Returns:
            The dict of `AveragePrecisionMeter.compute` (percentages).
        """
        if model is None:
            model = self.model  # fetched once: on JAX this syncs the training state
        convert_inputs = keras.backend.backend() != "tensorflow"
        self.meter.reset()
        for x, y, ignore in self._batches():
            if convert_inputs:
                x = keras.tree.map_structure(_to_numpy, x)
            scores = keras.ops.convert_to_numpy(self._select_output(model.predict_on_batch(x)))
            scores = np.asarray(scores, dtype=np.float64)
            if not self.from_logits:
                with np.errstate(divide="ignore"):
                    scores = np.log(scores) - np.log1p(-scores)
            self.meter.add(scores, _to_numpy(y), _to_numpy(ignore))
        self.last_metrics = self.meter.compute(top_k=self.top_k)
        return self.last_metrics

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.frequency != 0:
            return
        metrics = self.evaluate()
        if logs is not None:
            for name in self.log_metrics:
                logs[self.prefix + name] = float(metrics[name])
        if self.verbose:
            summary = " - ".join(
                f"{self.prefix}{name}: {format_metric(metrics[name])}"
                for name in ("mAP",) + THRESHOLD_METRICS
            )
            print(f"\nEpoch {epoch + 1}: {summary}", flush=True)
