import math

import keras
import pytest

from mmdsr_keras.training.warmup_decay_schedule import WarmupDecaySchedule


def _lr(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_step_decay_by_hand():
    s = WarmupDecaySchedule(0.1, total_steps=100, warmup_steps=4, decay="step",
                            boundaries=(40, 80), factor=0.1)
    # warm-up: 0.1 * (t + 1) / 4
    assert [_lr(s, t) for t in range(4)] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert _lr(s, 39) == pytest.approx(0.1)
    assert _lr(s, 40) == pytest.approx(0.01)
    assert _lr(s, 80) == pytest.approx(0.001)


def test_cosine_by_hand():
    s = WarmupDecaySchedule(0.2, total_steps=110, warmup_steps=10, decay="cosine", min_ratio=0.1)
    # halfway through the decay: 0.2 * (0.1 + 0.9 * 0.5)
    assert _lr(s, 60) == pytest.approx(0.2 * 0.55)
    quarter = 0.2 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert _lr(s, 35) == pytest.approx(quarter, rel=1e-5)
    assert _lr(s, 110) == pytest.approx(0.02)
    assert _lr(s, 500) == pytest.approx(0.02)


def test_config_round_trip():
    s = WarmupDecaySchedule(0.1, 50, 5, "step", (20,), 0.5)
    clone = WarmupDecaySchedule.from_config(s.get_config())
    assert [_lr(clone, t) for t in (0, 19, 20)] == [_lr(s, t) for t in (0, 19, 20)]


def test_rejects_unknown_decay():
    with pytest.raises(ValueError, match="decay='linear'"):
        WarmupDecaySchedule(0.1, 10, decay="linear")
