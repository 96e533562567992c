"""Scores a model on a dataset and writes the metrics and figures."""

import json

import keras
import numpy as np

from mmdsr_keras.evaluation import AveragePrecisionMeter, format_metric_table, write_report


def predict_scores(model, data):
    """Logits, labels and ignore masks over a `(images, labels, mask)` dataset."""
    scores, labels, masks = [], [], []
    for images, y, mask in data:
        scores.append(keras.ops.convert_to_numpy(model.predict_on_batch(images)))
        labels.append(np.asarray(y))
        masks.append(np.asarray(mask))
    return np.concatenate(scores), np.concatenate(labels), np.concatenate(masks)


def evaluate_and_report(model, data, class_names, out_dir):
    """ML-GCN metrics of `model` on `data`, printed and written to `out_dir`.

    Writes `metrics.json`, `pr_curves.png`, `per_class_ap.png` and
    `scores.npz` (logits, labels, masks) into `out_dir` (a new folder).

    Returns:
        The metrics dict (percentages).
    """
    scores, labels, masks = predict_scores(model, data)
    meter = AveragePrecisionMeter()
    meter.add(scores, labels, masks)
    metrics = meter.compute()
    write_report(out_dir, scores, labels, masks, class_names=class_names)
    np.savez_compressed(out_dir / "scores.npz", logits=scores, labels=labels, ignore_mask=masks)
    print(format_metric_table(metrics))
    print(f"Report: {out_dir}")
    return metrics
