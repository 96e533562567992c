"""write_report: three files, strict JSON matching the meter, never overwrites."""

import json

import numpy as np
import pytest

from mmdsr_keras.evaluation import REPORT_FILES, AveragePrecisionMeter, write_report


def _case(n=60, c=24, seed=0):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, c)) < 0.2).astype(np.int64)
    scores = rng.normal(size=(n, c)) + 2.0 * targets
    if c > 5:
        targets[:, 5] = 0  # a class without positives
    ignore = rng.random((n, c)) < 0.03
    return scores, targets, ignore


def test_writes_three_files_and_metrics_match_meter(tmp_path):
    scores, targets, ignore = _case()
    names = [f"label{i}" for i in range(scores.shape[1])]
    out = tmp_path / "report"
    with pytest.warns(RuntimeWarning):
        paths = write_report(out, scores, targets, ignore, names)
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    for key in ("pr_curves", "per_class_ap"):
        with open(paths[key], "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(paths["metrics"], encoding="utf-8") as fh:
        report = json.loads(fh.read(), parse_constant=lambda s: pytest.fail(f"non-JSON {s}"))
    meter = AveragePrecisionMeter()
    meter.add(scores, targets, ignore)
    with pytest.warns(RuntimeWarning):
        expected = meter.compute()
    assert report["mAP"] == pytest.approx(expected["mAP"])
    assert report["OF1_top3"] == pytest.approx(expected["OF1_top3"])
    assert report["AP"][5] is None and report["num_positives"][5] == 0
    assert report["class_names"] == names and report["num_examples"] == 60
    assert 0 < report["micro_AP"] <= 100


def test_refuses_to_overwrite(tmp_path):
    scores, targets, _ = _case(n=20, c=3)
    targets[0] = 1
    out = tmp_path / "r"
    out.mkdir()
    (out / "metrics.json").write_text("keep me")
    with pytest.raises(FileExistsError, match="metrics.json"):
        write_report(out, scores, targets, None, ["a", "b", "c"])
    assert (out / "metrics.json").read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json"]  # nothing else written
    fresh = tmp_path / "r2"
    write_report(fresh, scores, targets)
    with pytest.raises(FileExistsError, match="pr_curves.png"):
        write_report(fresh, scores, targets)
    with pytest.raises(ValueError, match="class names"):
        write_report(tmp_path / "r3", scores, targets, class_names=["a"])
