"""Evaluation report: PR curves, sorted per-class AP bars and a metrics JSON."""

import json
import math
import os

import numpy as np

from mmdsr_keras.evaluation.average_precision_meter import (
    AveragePrecisionMeter,
    average_precision_of_hits,
    ranked_hits,
)
from mmdsr_keras.evaluation.metric_table import format_metric

# The files `write_report` writes, in its output directory.
REPORT_FILES = ("pr_curves.png", "per_class_ap.png", "metrics.json")


def _pr_curve(scores, positive):
    """Precision and recall at every rank of the stable descending-score order (the AP's ranks)."""
    hits = ranked_hits(scores, positive)
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, hits.size + 1)
    recall = tp / max(int(hits.sum()), 1)
    return (np.concatenate([[0.0], recall]), np.concatenate([[1.0], precision]),
            average_precision_of_hits(hits))


def _json_ready(value):
    """NaN → None (strict JSON), numpy scalars → Python."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_report(
    out_dir,
    scores,
    targets,
    ignore_mask=None,
    class_names=None,
    top_k=3,
    max_highlighted=20,
):
    """Writes `pr_curves.png`, `per_class_ap.png` and `metrics.json` into `out_dir`.

    The metrics are those of `AveragePrecisionMeter` (`mAP = 100 · mean_c AP_c` with the
    non-interpolated `AP_c = (1/P_c) Σ_{i: y_(i)=1} prec@i`, difficult labels skipped; CP, CR,
    CF1, OP, OR, OF1 at logit ≥ 0 and their top-k variants). The PR curves are drawn from the same
    ranking (stable sort, ignored labels skipped): at rank i, `precision = TP_i / i` and
    `recall = TP_i / P_c`. At most `max_highlighted` classes are drawn in colour with a legend
    (all of them if C ≤ `max_highlighted`, otherwise classes spread evenly over the AP ranking,
    best to worst), the others in light grey; the micro-average curve (all non-ignored
    (example, class) pairs ranked together) is drawn in black. Classes without a positive have no
    curve and no bar (their AP is NaN, `null` in the JSON).

    `metrics.json` holds the `AveragePrecisionMeter.compute` dict (percentages; NaN written
    as `null`) plus `class_names`, `num_positives` (per class, after ignoring),
    `micro_AP`, `num_examples`, `num_classes` and `top_k`.

    Nothing is overwritten: if any of the three files already exists, `FileExistsError` naming
    it is raised before anything is written (and files are opened in exclusive mode). The caller
    is expected to pass a new directory; it is created if missing. Figures are rendered with the
    Agg renderer through `matplotlib.figure.Figure`, without touching `pyplot` or the global
    backend.

    Args:
        out_dir: the output directory (created if missing).
        scores: `(N, C)` logits.
        targets: `(N, C)` multi-hot {0, 1}.
        ignore_mask: `(N, C)` {0, 1}, 1 for difficult/ignored labels. Defaults to None.
        class_names: the C names. Defaults to None: `class_0`, `class_1`, ….
        top_k: k of the top-k metrics. Defaults to 3.
        max_highlighted: most classes drawn in colour in the PR figure. Defaults to 20.

    Returns:
        dict mapping `"pr_curves"`, `"per_class_ap"`, `"metrics"` to the written paths.

    Raises:
        FileExistsError: if one of the target files exists.
        ValueError: on bad shapes / values or a wrong number of class names.

    Example:
    >>> import numpy as np, tempfile, os
    >>> rng = np.random.default_rng(0)
    >>> out = os.path.join(tempfile.mkdtemp(), "report")
    >>> paths = write_report(out, rng.normal(size=(20, 3)), rng.random((20, 3)) > 0.5)
    >>> sorted(os.listdir(out))
    ['metrics.json', 'per_class_ap.png', 'pr_curves.png']
    """
    from matplotlib.figure import Figure  # Agg canvas by default; no pyplot state

    meter = AveragePrecisionMeter()
    meter.add(scores, targets, ignore_mask)
    s, t, ign = meter.arrays()
    n, c = s.shape
    if class_names is None:
        class_names = [f"class_{i}" for i in range(c)]
    class_names = [str(name) for name in class_names]
    if len(class_names) != c:
        raise ValueError(f"{len(class_names)} class names for {c} classes.")

    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "pr_curves": os.path.join(out_dir, REPORT_FILES[0]),
        "per_class_ap": os.path.join(out_dir, REPORT_FILES[1]),
        "metrics": os.path.join(out_dir, REPORT_FILES[2]),
    }
    for path in paths.values():
        if os.path.lexists(path):
            raise FileExistsError(f"Refusing to overwrite existing report file: {path}")

    metrics = meter.compute(top_k=top_k)
    ap = np.asarray(metrics["AP"], dtype=np.float64)  # percent, NaN where undefined
    positive = t & ~ign
    valid = ~np.isnan(ap)
    keep = ~ign
    micro_r, micro_p, micro_ap = _pr_curve(s[keep], positive[keep])

    # --- PR curves ---------------------------------------------------------------------------
    ranked = [i for i in np.argsort(-np.where(valid, ap, -np.inf), kind="stable") if valid[i]]
    if len(ranked) <= max_highlighted:
        highlighted = ranked
    else:
        picks = np.linspace(0, len(ranked) - 1, max_highlighted).round().astype(int)
        highlighted = [ranked[i] for i in sorted(set(picks.tolist()))]
    fig = Figure(figsize=(11, 7))
    ax = fig.add_subplot(1, 1, 1)
    highlighted_set = set(highlighted)
    for i in ranked:
        if i not in highlighted_set:
            r, p, _ = _pr_curve(s[keep[:, i], i], positive[keep[:, i], i])
            ax.step(r, p, where="post", color="0.8", linewidth=0.6)
    for colour, i in zip(_palette(len(highlighted)), highlighted):
        r, p, _ = _pr_curve(s[keep[:, i], i], positive[keep[:, i], i])
        ax.step(r, p, where="post", color=colour, linewidth=1.2,
                label=f"{class_names[i]} (AP {ap[i]:.1f})")
    if not math.isnan(micro_ap):
        ax.step(micro_r, micro_p, where="post", color="black", linewidth=2.2,
                label=f"micro-average (AP {100 * micro_ap:.1f})")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    shown = "all classes" if len(highlighted) == len(ranked) else (
        f"{len(highlighted)} of {len(ranked)} classes highlighted (spread over the AP ranking)"
    )
    ax.set_title(f"Precision-recall, mAP {format_metric(metrics['mAP'])}, {n} images; {shown}")
    ax.grid(True, alpha=0.3)
    if highlighted or not math.isnan(micro_ap):
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()

    # --- per-class AP bars -------------------------------------------------------------------
    fig_bar = Figure(figsize=(8, max(3.0, 0.22 * len(ranked) + 1.2)))
    axb = fig_bar.add_subplot(1, 1, 1)
    if ranked:
        ypos = np.arange(len(ranked))
        axb.barh(ypos, [ap[i] for i in ranked], color="tab:blue")
        axb.set_yticks(ypos)
        axb.set_yticklabels([class_names[i] for i in ranked], fontsize=7)
        axb.invert_yaxis()
        axb.axvline(metrics["mAP"], color="tab:red", linestyle="--", label=f"mAP {metrics['mAP']:.2f}")
        axb.legend(loc="lower right", fontsize=8)
    missing = c - len(ranked)
    axb.set_xlim(0, 100)
    axb.set_xlabel("AP (%)")
    axb.set_title("Per-class AP (sorted)" + (f"; {missing} class(es) without positives omitted" if missing else ""))
    fig_bar.tight_layout()

    report = dict(metrics)
    report.update(
        class_names=class_names,
        num_positives=positive.sum(axis=0).astype(int).tolist(),
        micro_AP=100.0 * micro_ap,
        num_examples=int(n),
        num_classes=int(c),
        top_k=int(top_k),
    )
    # Exclusive mode: even a file created concurrently since the check is never overwritten.
    with open(paths["pr_curves"], "xb") as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
    with open(paths["per_class_ap"], "xb") as fh:
        fig_bar.savefig(fh, format="png", dpi=110, bbox_inches="tight")
    with open(paths["metrics"], "x", encoding="utf-8") as fh:
        json.dump(_json_ready(report), fh, indent=2, allow_nan=False)
        fh.write("\n")
    return paths


def _palette(n):
    """n distinct colours (tab20, then tab20b if more are needed)."""
    from matplotlib import colormaps

    base = list(colormaps["tab20"].colors) + list(colormaps["tab20b"].colors)
    return [base[i % len(base)] for i in range(n)]
