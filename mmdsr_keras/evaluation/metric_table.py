"""The printed table of ML-GCN's metrics (`format_metric_table`)."""

import math
import re

from mmdsr_keras.evaluation.average_precision_meter import THRESHOLD_METRICS

COLUMN_WIDTH = 7


def format_metric(value):
    """One metric as printed: two decimals, `nan`, or `-` for a missing value.

    Example:
    >>> format_metric(91.666), format_metric(float("nan")), format_metric(None)
    ('91.67', 'nan', '-')
    """
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "-"
    return "nan" if math.isnan(value) else f"{value:.2f}"


def format_metric_table(metrics, class_names=None):
    """Formats the dict of `AveragePrecisionMeter.compute` as a printable text table.

    One row for the metrics over all labels (`mAP CP CR CF1 OP OR OF1`) and one per top-k
    variant found in `metrics` (`CP_top3` … → row `top-3`; its mAP column is `-`). If
    `class_names` is given and `metrics` has `AP`, a per-class AP table follows.

    Args:
        metrics: dict as returned by `AveragePrecisionMeter.compute` (percentages).
        class_names: names of the C classes, for the per-class table. Defaults to None: no
            per-class table.

    Returns:
        The table as one string (lines joined by `\\n`, no trailing newline).

    Raises:
        ValueError: if `class_names` does not match the length of `metrics["AP"]`.

    Example:
    >>> print(format_metric_table({"mAP": 90.0, "CP": 80.0, "CR": 70.0, "CF1": 74.67,
    ...                            "OP": 81.0, "OR": 72.0, "OF1": 76.24}))
               mAP     CP     CR    CF1     OP     OR    OF1
    all      90.00  80.00  70.00  74.67  81.00  72.00  76.24
    """
    columns = ("mAP",) + THRESHOLD_METRICS
    width = COLUMN_WIDTH
    lines = [" " * 7 + "".join(f"{c:>{width}}" for c in columns)]
    lines.append(f"{'all':<7}" + "".join(f"{format_metric(metrics.get(c)):>{width}}"
                                         for c in columns))
    ks = sorted({int(m.group(1)) for key in metrics
                 for m in [re.fullmatch(r"CP_top(\d+)", key)] if m})
    for k in ks:
        row = [format_metric(metrics.get(f"mAP_top{k}"))] + [
            format_metric(metrics.get(f"{c}_top{k}")) for c in THRESHOLD_METRICS]
        lines.append(f"{'top-' + str(k):<7}" + "".join(f"{v:>{width}}" for v in row))
    if class_names is not None and "AP" in metrics:
        ap = list(metrics["AP"])
        if len(class_names) != len(ap):
            raise ValueError(f"{len(class_names)} class names for {len(ap)} per-class APs.")
        name_width = max([len("class")] + [len(str(n)) for n in class_names])
        lines.append("")
        lines.append(f"{'class':<{name_width}}  {'AP':>{width}}")
        for name, value in zip(class_names, ap):
            lines.append(f"{str(name):<{name_width}}  {format_metric(value):>{width}}")
    return "\n".join(lines)
