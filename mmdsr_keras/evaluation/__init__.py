"""Evaluation: ML-GCN's multi-label metrics, a Keras callback logging them, and a report writer.

`AveragePrecisionMeter` reproduces ML-GCN's mAP / CP / CR / CF1 / OP / OR / OF1 (and top-3
variants) in numpy; `format_metric_table` prints them; `MeanAveragePrecisionCallback` writes
`val_mAP` (and `val_CF1`, `val_OF1`) into the epoch logs (put it first in the callbacks list);
`write_report` writes PR curves, per-class AP bars and a metrics JSON; `evaluate_and_report`
scores a model on a dataset and does all of that.
"""

from mmdsr_keras.evaluation.average_precision_meter import (
    AveragePrecisionMeter,
    from_ml_gcn_targets,
)
from mmdsr_keras.evaluation.mean_average_precision_callback import MeanAveragePrecisionCallback
from mmdsr_keras.evaluation.metric_table import format_metric_table
from mmdsr_keras.evaluation.model_evaluation import evaluate_and_report, predict_scores
from mmdsr_keras.evaluation.report import REPORT_FILES, write_report

__all__ = [
    "AveragePrecisionMeter",
    "MeanAveragePrecisionCallback",
    "REPORT_FILES",
    "evaluate_and_report",
    "format_metric_table",
    "from_ml_gcn_targets",
    "predict_scores",
    "write_report",
]
