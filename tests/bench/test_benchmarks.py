"""The benchmarks run as the README says, on tiny settings, and report what they measured."""

import importlib.util
import json
import os
import statistics
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, shared_path

pytestmark = pytest.mark.slow


def run_bench(script, *arguments):
    environment = {**os.environ, "KERAS_BACKEND": "tensorflow", "MPLBACKEND": "Agg"}
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / script), *arguments],
        capture_output=True, text=True, cwd=REPO_ROOT, env=environment, timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def load_module(script):
    spec = importlib.util.spec_from_file_location(script, REPO_ROOT / "bench" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_quality_bench_runs_resumes_and_summarizes(tmp_path):
    coco = shared_path("data", "coco-mini")
    arguments = ["--coco-mini", str(coco), "--backbone", "mobilenet_0.25", "--weights", "none",
                 "--image-size", "32", "--heads", "gap", "mmdsr", "--seeds", "0", "1",
                 "--frozen-epochs", "1", "--finetune-epochs", "1", "--out", str(tmp_path)]
    run_bench("quality.py", *arguments)
    (folder,) = tmp_path.iterdir()
    runs = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["head"], r["seed"]) for r in runs) == [
        ("gap", 0), ("gap", 1), ("mmdsr", 0), ("mmdsr", 1)]
    for run in runs:
        assert len(run["losses"]) == 2 and all(np.isfinite(run["losses"]))
        assert 0 <= run["coco80"]["mAP"] <= 100 and 0 <= run["voc20"]["mAP"] <= 100
    assert (folder / "quality.png").stat().st_size > 0

    # The summary's mean and sample std, recomputed here from the per-run lines.
    summary = (folder / "summary.md").read_text()
    gap = [r["coco80"]["mAP"] for r in runs if r["head"] == "gap"]
    expected = f"| gap | 2 | {statistics.mean(gap):.2f} ± {statistics.stdev(gap):.2f} |"
    assert expected in summary

    # --resume finishes nothing twice.
    output = run_bench("quality.py", "--resume", str(folder))
    assert " seed 0:" not in output and " seed 1:" not in output
    assert len((folder / "runs.jsonl").read_text().splitlines()) == 4


def test_head_specs_carry_options():
    quality = load_module("quality")
    assert quality.parse_head("mmdsr:global_weight=0.8,graph=static") == (
        "mmdsr", {"global_weight": 0.8, "graph": "static"})
    with pytest.raises(SystemExit, match="unknown head"):
        quality.parse_head("resnet")
