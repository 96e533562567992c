"""Evaluation: ML-GCN's multi-label metrics, a Keras callback logging them, and a report writer.

``AveragePrecisionMeter`` reproduces ML-GCN's mAP / CP / CR / CF1 / OP / OR / OF1 (and top-3
variants) in numpy; ``MeanAveragePrecisionCallback`` writes ``val_mAP`` (and ``val_CF1``,
``val_OF1``) into the epoch logs (put it first in the callbacks list); ``write_report`` writes PR
curves, per-class AP bars and a metrics JSON.
"""

from mmdsr_keras.evaluation.average_precision_meter import (
    AveragePrecisionMeter,
    format_metric_table,
    from_ml_gcn_targets,
)
from mmdsr_keras.evaluation.mean_average_precision_callback import MeanAveragePrecisionCallback
from mmdsr_keras.evaluation.report import REPORT_FILES, write_report

__all__ = [
    "AveragePrecisionMeter",
    "MeanAveragePrecisionCallback",
    "REPORT_FILES",
    "format_metric_table",
    "from_ml_gcn_targets",
    "write_report",
]
