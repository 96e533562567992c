"""Scores a model on a dataset and writes the metrics, figures and scores (`evaluate_and_report`)."""

import keras
import numpy as np

from mmdsr_keras.evaluation.average_precision_meter import AveragePrecisionMeter
from mmdsr_keras.evaluation.metric_table import format_metric_table
from mmdsr_keras.evaluation.report import write_report

SCORES_FILE = "scores.npz"


def predict_scores(model, data):
    """Logits, labels and ignore masks of `model` over a dataset.

    Args:
        model: a Keras model returning `(batch, C)` logits.
        data: an iterable of `(images, labels, ignore_mask)` batches, e.g.
            `MultiLabelDataset.to_tf_dataset(..., with_ignore_mask=True)`.

    Returns:
        `(scores, labels, masks)`: numpy arrays of shape `(N, C)` each.

    Example:
    >>> x = np.zeros((3, 2), "float32")
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4)])
    >>> scores, labels, masks = predict_scores(model, [(x, np.ones((3, 4)), np.zeros((3, 4)))])
    >>> scores.shape, labels.shape, masks.shape
    ((3, 4), (3, 4), (3, 4))
    """
    scores, labels, masks = [], [], []
    for images, y, mask in data:
        # numpy: JAX's and torch's predict_on_batch cannot take tf.data's tensors.
        scores.append(keras.ops.convert_to_numpy(model.predict_on_batch(np.asarray(images))))
        labels.append(np.asarray(y))
        masks.append(np.asarray(mask))
    return np.concatenate(scores), np.concatenate(labels), np.concatenate(masks)


def evaluate_and_report(model, data, class_names, out_dir):
    """ML-GCN metrics of `model` on `data`, printed and written to `out_dir`.

    Writes `metrics.json`, `pr_curves.png`, `per_class_ap.png` (`write_report`)
    and `scores.npz` (logits, labels, masks) into `out_dir`, and prints the
    metric table.

    Args:
        model: a Keras model returning `(batch, C)` logits.
        data: an iterable of `(images, labels, ignore_mask)` batches.
        class_names: the C class names.
        out_dir: a new folder (`pathlib.Path`); none of the files may exist.

    Returns:
        The metrics dict of `AveragePrecisionMeter.compute` (percentages).

    Example:
    >>> import contextlib, io, pathlib, tempfile
    >>> x = np.random.default_rng(0).normal(size=(6, 2)).astype("float32")
    >>> y = np.array([[1, 0], [0, 1]] * 3)
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> with contextlib.redirect_stdout(io.StringIO()) as printed:
    ...     metrics = evaluate_and_report(model, [(x, y, np.zeros_like(y))], ["a", "b"], out)
    >>> printed.getvalue().split()[:2], 0 <= metrics["mAP"] <= 100
    (['mAP', 'CP'], True)
    >>> sorted(p.name for p in out.iterdir())
    ['metrics.json', 'per_class_ap.png', 'pr_curves.png', 'scores.npz']
    """
    scores, labels, masks = predict_scores(model, data)
    meter = AveragePrecisionMeter()
    meter.add(scores, labels, masks)
    metrics = meter.compute()
    write_report(out_dir, scores, labels, masks, class_names=class_names)
    np.savez_compressed(out_dir / SCORES_FILE, logits=scores, labels=labels, ignore_mask=masks)
    print(format_metric_table(metrics))
    print(f"Report: {out_dir}")
    return metrics
