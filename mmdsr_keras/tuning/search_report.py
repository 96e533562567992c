"""The summary of a search: trial table (printed and CSV), plot and best hyperparameters."""

import csv
import json
import math
import pathlib

REPORT_FILES = ("trials.csv", "search.png", "best_hyperparameters.json")
# Short column names of the printed table (the CSV has every hyperparameter).
TABLE_COLUMNS = (
    ("graph", "graph"), ("num_perspectives", "K"), ("sparsity_threshold", "eps"),
    ("prior_weight", "lambda"), ("global_weight", "alpha"),
    ("trainable_global_weight", "alpha_tr"), ("units", "d"), ("node_units", "d_v"),
    ("cross_layer", "xlayer"), ("num_heads", "heads"), ("dual_branch", "dual"),
    ("reduction", "r"), ("learning_rate", "lr"), ("backbone_lr_multiplier", "bb_mult"),
    ("weight_decay", "wd"), ("batch_size", "bs"), ("epochs", "ep"),
    ("tuner/epochs", "hb_ep"), ("tuner/trial_id", "hb_from"),
)


def _last_line(message):
    lines = [line.strip() for line in str(message or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _in_space_order(values, space):
    ordered = {name: values[name] for name in space if name in values}
    ordered.update({k: v for k, v in values.items() if k not in ordered})
    return ordered


def _fmt_full(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trial_rows(tuner):
    """One dict per trial, in start order: id, status, val_mAP, best epoch, hyperparameters.

    `val_mAP` is the trial's score (its best epoch's value) for COMPLETED
    trials, None otherwise; `message` is the last line of a failed trial's
    error.
    """
    oracle = tuner.oracle
    order = list(oracle.start_order) + sorted(set(oracle.trials) - set(oracle.start_order))
    space = [hp.name for hp in oracle.hyperparameters.space]
    rows = []
    for trial_id in order:
        trial = oracle.trials[trial_id]
        completed = trial.status == "COMPLETED" and trial.score is not None
        # Hyperband continues a trial from `tuner/initial_epoch`: KerasTuner's
        # best step counts the epochs of this call only.
        first_epoch = int(trial.hyperparameters.values.get("tuner/initial_epoch", 0) or 0)
        rows.append({
            "trial_id": trial_id,
            "status": trial.status,
            "val_mAP": float(trial.score) if completed else None,
            "best_epoch": first_epoch + int(trial.best_step) + 1
            if completed and trial.best_step is not None
            else None,
            "hyperparameters": _in_space_order(trial.hyperparameters.values, space),
            "message": _last_line(trial.message) if trial.status != "COMPLETED" else "",
        })
    return rows


def best_row(rows):
    """The COMPLETED row with the highest val_mAP (None if there is none)."""
    done = [r for r in rows if r["val_mAP"] is not None and not math.isnan(r["val_mAP"])]
    return max(done, key=lambda r: r["val_mAP"]) if done else None


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def format_trial_table(rows):
    """The trial table as text: id, status, val_mAP and the key hyperparameters."""
    used = [(key, short) for key, short in TABLE_COLUMNS
            if any(key in r["hyperparameters"] for r in rows)]
    header = ["trial", "status", "val_mAP"] + [short for _, short in used]
    body = []
    for r in rows:
        cells = [r["trial_id"], r["status"],
                 "-" if r["val_mAP"] is None else f"{r['val_mAP']:.2f}"]
        cells += [_fmt(r["hyperparameters"].get(key)) for key, _ in used]
        body.append(cells)
    widths = [max(len(str(c)) for c in column) for column in zip(header, *body)]
    lines = ["  ".join(f"{c:>{w}}" for c, w in zip(header, widths))]
    lines += ["  ".join(f"{c:>{w}}" for c, w in zip(cells, widths)) for cells in body]
    best = best_row(rows)
    if best is not None:
        lines.append(f"best: trial {best['trial_id']}, val_mAP {best['val_mAP']:.2f} "
                     f"(epoch {best['best_epoch']})")
    failed = [r for r in rows if r["status"] != "COMPLETED"]
    for r in failed:
        lines.append(f"trial {r['trial_id']} {r['status']}: {r['message'][:200]}")
    return "\n".join(lines)


def write_trial_csv(rows, path):
    """Writes the rows to a CSV: id, status, val_mAP, best_epoch, every hyperparameter, message."""
    names = []
    for r in rows:
        names += [k for k in r["hyperparameters"] if k not in names]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial_id", "status", "val_mAP", "best_epoch", *names, "message"])
        for r in rows:
            writer.writerow([r["trial_id"], r["status"],
                             "" if r["val_mAP"] is None else repr(r["val_mAP"]),
                             "" if r["best_epoch"] is None else r["best_epoch"],
                             *["" if r["hyperparameters"].get(k) is None
                               else r["hyperparameters"][k] for k in names],
                             r["message"]])


def plot_search(rows, path, title="MMDSR hyperparameter search"):
    """Draws val_mAP per trial with the best-so-far curve, and the best hyperparameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, text_ax) = plt.subplots(1, 2, figsize=(11, 4.2),
                                      gridspec_kw={"width_ratios": [1.6, 1]})
    x = list(range(1, len(rows) + 1))
    scores = [r["val_mAP"] for r in rows]
    done = [(i, s) for i, s in zip(x, scores) if s is not None]
    if done:
        ax.plot([i for i, _ in done], [s for _, s in done], "o", color="tab:blue",
                label="val_mAP of the trial")
    best, best_curve = -math.inf, []
    for s in scores:
        if s is not None and s > best:
            best = s
        best_curve.append(best if best > -math.inf else math.nan)
    ax.step(x, best_curve, where="post", color="tab:orange", label="best so far")
    low = min([s for _, s in done], default=0.0)
    failed = [i for i, r in zip(x, rows) if r["status"] != "COMPLETED"]
    if failed:
        ax.plot(failed, [low] * len(failed), "x", color="tab:red", markersize=9,
                label="failed / invalid")
    ax.set_xlabel("trial (start order)")
    ax.set_ylabel("val_mAP (%)")
    ax.set_xticks(x)
    ax.set_xticklabels([r["trial_id"] for r in rows], rotation=90 if len(rows) > 20 else 0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    text_ax.axis("off")
    top = best_row(rows)
    if top is None:
        text = "no completed trial"
    else:
        items = [f"{k} = {_fmt_full(v)}" for k, v in top["hyperparameters"].items()
                 if not k.startswith("tuner/")]
        text = (f"best: trial {top['trial_id']}\nval_mAP = {top['val_mAP']:.2f} "
                f"(epoch {top['best_epoch']})\n\n" + "\n".join(items))
    text_ax.text(0.0, 1.0, text, va="top", ha="left", family="monospace", fontsize=8,
                 transform=text_ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_search_report(tuner, out_dir):
    """Prints-ready table plus `trials.csv`, `search.png`, `best_hyperparameters.json` in `out_dir`.

    Returns:
        `(rows, table_text)`.
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = trial_rows(tuner)
    write_trial_csv(rows, out_dir / "trials.csv")
    plot_search(rows, out_dir / "search.png")
    best = best_row(rows)
    (out_dir / "best_hyperparameters.json").write_text(json.dumps(
        None if best is None else {"trial_id": best["trial_id"], "val_mAP": best["val_mAP"],
                                   "best_epoch": best["best_epoch"],
                                   "hyperparameters": best["hyperparameters"]},
        indent=2, default=str))
    return rows, format_trial_table(rows)
