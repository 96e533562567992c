"""Heads on stage features (MMDSR and the baselines) and views of a built model."""

from mmdsr_keras.models.baselines import BASELINE_HEADS, baseline_head
from mmdsr_keras.models.mmdsr import (
    build_deep_supervision_model,
    build_explainer,
    class_names_of,
    mmdsr_head,
    resolve_class_names,
)

__all__ = [
    "BASELINE_HEADS",
    "baseline_head",
    "build_deep_supervision_model",
    "build_explainer",
    "class_names_of",
    "mmdsr_head",
    "resolve_class_names",
]
