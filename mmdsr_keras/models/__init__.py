"""Model builders: MMDSR and the baseline heads."""

from mmdsr_keras.models.baselines import BASELINE_HEADS, build_baseline
from mmdsr_keras.models.mmdsr import build_explainer, build_mmdsr, class_names_of
