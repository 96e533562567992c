"""The benchmarks run as the README says, on tiny settings, and report what they measured."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.bench.bench_scripts import load_module
from tests.shared_data import REPO_ROOT, shared_path

pytestmark = pytest.mark.slow


def run_bench(script, *arguments):
    environment = {**os.environ, "KERAS_BACKEND": "tensorflow", "MPLBACKEND": "Agg"}
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / script), *arguments],
        capture_output=True, text=True, cwd=REPO_ROOT, env=environment, timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def test_speed_bench_reports_every_head(tmp_path):
    report = tmp_path / "speed.json"
    output = run_bench("speed.py", "--configs", "mobilenet_0.25@32", "--heads", "floor",
                       "mmdsr", "no_graph", "--batch-size", "2", "--rounds", "1", "--steps", "1",
                       "--xla", "off", "--memory-heads", "floor", "--json", str(report))
    results = json.loads(report.read_text())["results"]
    timing = results["mobilenet_0.25@32 xla=off"]
    for head in ("floor", "mmdsr", "no_graph"):
        for mode in ("infer", "train"):
            assert timing[head][f"{mode}_images_per_s"] == pytest.approx(
                2 / timing[head][f"{mode}_step_s"])
    assert timing["mmdsr"]["params"] > timing["no_graph"]["params"] > timing["floor"]["params"]
    assert results["mobilenet_0.25@32 memory"]["floor"]["peak_bytes"] > 0
    assert "graph (dynamic + GCN), train" in output
    # The report is never overwritten.
    with pytest.raises(AssertionError, match="exists"):
        run_bench("speed.py", "--configs", "mobilenet_0.25@32", "--json", str(report))


def test_quality_bench_cross_validates_resumes_and_summarizes(tmp_path):
    coco = shared_path("data", "coco-mini")
    arguments = ["--datasets", "coco", "--coco-mini", str(coco), "--backbone", "mobilenet_0.25",
                 "--weights", "none", "--image-size", "32", "--heads", "probe", "gap", "mmdsr",
                 "--finetune", "mmdsr", "--set", "recipe=transfer", "frozen_epochs=1",
                 "epochs=1", "cache_views=2", "--bootstrap", "20", "--out", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")]
    run_bench("quality.py", *arguments)
    (folder,) = (tmp_path / "out").iterdir()
    runs = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    # 5 folds x 3 heads, and the fine-tuning phase on coco folds 0 and 1.
    assert sorted((r["head"], r["fold"]) for r in runs) == sorted(
        [(h, f) for h in ("probe", "gap", "mmdsr") for f in range(5)]
        + [("mmdsr+ft", 0), ("mmdsr+ft", 1)])
    assert all(r["C"] in (0.001, 0.01, 0.1, 1.0) for r in runs if r["head"] == "probe")

    # The pooled out-of-fold mAP of the table, recomputed from the saved scores.
    from sklearn.model_selection import KFold

    from mmdsr_keras.data.coco_json import load_coco_json
    from mmdsr_keras.evaluation import AveragePrecisionMeter

    data = load_coco_json(coco / "train2017" / "images",
                          coco / "train2017" / "annotations" / "instances.json",
                          keep_unlabeled=True)
    folds = list(KFold(5, shuffle=True, random_state=0).split(np.arange(len(data))))
    rows = np.concatenate([test for _, test in folds])
    scores = np.concatenate([np.load(folder / "scores" / f"coco.cv.gap.fold{k}.plain.npy")
                             for k in range(5)])
    meter = AveragePrecisionMeter()
    meter.add(scores, data.labels[rows])
    summary = (folder / "summary.md").read_text()
    assert f"| gap | 5 | {meter.compute()['mAP']:.2f} |" in summary
    assert (folder / "pr_curves.png").stat().st_size > 0
    assert (folder / "per_class_ap_difference.png").stat().st_size > 0

    # --resume finishes nothing twice.
    output = run_bench("quality.py", "--resume", str(folder))
    assert "coco.cv." not in output.split("this invocation")[0]
    assert len((folder / "runs.jsonl").read_text().splitlines()) == 17

    # --resume with --heads extends the grid: only the new head trains.
    output = run_bench("quality.py", "--resume", str(folder), "--heads", "gap", "gmp")
    trained = output.split("this invocation")[0]
    assert "coco.cv.gmp.fold4" in trained and "coco.cv.gap." not in trained
    assert json.loads((folder / "config.json").read_text())["heads"] == [
        "probe", "gap", "mmdsr", "gmp"]
    assert "| gmp | 5 |" in (folder / "summary.md").read_text()


def test_head_specs_carry_options():
    quality = load_module("quality")
    assert quality.parse_head("mmdsr@frozen_lr=0.003,loss=asl") == (
        "mmdsr", {"frozen_lr": 0.003, "loss": "asl"})
    with pytest.raises(SystemExit, match="unknown head"):
        quality.parse_head("resnet")
