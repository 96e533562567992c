"""Learning-rate schedule: linear warm-up, then step or cosine decay."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmdsr_keras")
class WarmupDecaySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to the base rate, then step or cosine decay (per step).

        warm-up (t < W):  lr(t) = base (t + 1) / W
        "step":           lr(t) = base * factor^(number of boundaries <= t)
        "cosine":         lr(t) = base * (m + (1 - m)(1 + cos(pi (t - W) / (T - W))) / 2)

    with m = `min_ratio`. Boundaries are in steps (epochs x steps per epoch).

    Args:
        base_learning_rate: the head learning rate after warm-up.
        total_steps: T, the length of training in steps.
        warmup_steps: W. Defaults to 0.
        decay: `"cosine"`, `"step"` or `"constant"`. Defaults to `"cosine"`.
        boundaries: step decay boundaries (steps). Defaults to `()`.
        factor: step decay factor. Defaults to 0.1.
        min_ratio: cosine floor as a fraction of the base rate. Defaults to 0.

    Example:
    >>> s = WarmupDecaySchedule(0.1, total_steps=100, warmup_steps=10, decay="step",
    ...                         boundaries=(50,))
    >>> [round(float(s(t)), 4) for t in (0, 9, 49, 50)]
    [0.01, 0.1, 0.1, 0.01]
    """

    def __init__(self, base_learning_rate, total_steps, warmup_steps=0, decay="cosine",
                 boundaries=(), factor=0.1, min_ratio=0.0):
        if decay not in ("cosine", "step", "constant"):
            raise ValueError(f"decay={decay!r}; expected 'cosine', 'step' or 'constant'.")
        self.base_learning_rate = float(base_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.decay = decay
        self.boundaries = tuple(int(b) for b in boundaries)
        self.factor = float(factor)
        self.min_ratio = float(min_ratio)

    def __call__(self, step):
        t = ops.cast(step, "float32")
        base = self.base_learning_rate
        if self.decay == "step":
            drops = sum(ops.cast(t >= b, "float32") for b in self.boundaries) if self.boundaries else 0.0
            decayed = base * ops.power(self.factor, drops)
        elif self.decay == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = ops.clip((t - self.warmup_steps) / span, 0.0, 1.0)
            cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
            decayed = base * (self.min_ratio + (1.0 - self.min_ratio) * cosine)
        else:
            decayed = base + 0.0 * t
        if self.warmup_steps <= 0:
            return decayed
        warm = base * (t + 1.0) / self.warmup_steps
        return ops.where(t < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
            "boundaries": list(self.boundaries),
            "factor": self.factor,
            "min_ratio": self.min_ratio,
        }
