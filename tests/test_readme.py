"""The README's keras-hub-style usage block runs as printed."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- tests/test_readme.py runs this block as it is -->"


def _marked_block():
    text = README.read_text()
    assert MARKER in text, "the README lost its tested usage block"
    match = re.search(r"```python\n(.*?)```", text[text.index(MARKER):], re.S)
    return match.group(1)


def test_usage_block_trains_saves_reloads_and_predicts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(_marked_block(), str(README), "exec"), namespace)
    model, train, logits = namespace["model"], namespace["train"], namespace["logits"]
    assert type(model).__name__ == "MMDSRImageClassifier"
    assert model.class_names == train.class_names
    assert logits.shape == (32, len(train.class_names)) and np.isfinite(logits).all()
    assert (tmp_path / "my_mmdsr" / "task.json").is_file()
    assert set(namespace["explain"].output) >= {"logits", "adjacency"}
