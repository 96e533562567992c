"""Tasks: classifiers with their backbone, recipe-aware `compile` and presets."""

from mmdsr_keras.tasks.baseline_image_classifier import BaselineImageClassifier, build_baseline
from mmdsr_keras.tasks.classifier_preset import load_classifier_preset, save_classifier_preset
from mmdsr_keras.tasks.mmdsr_image_classifier import MMDSRImageClassifier, build_mmdsr
from mmdsr_keras.tasks.multi_label_image_classifier import MultiLabelImageClassifier

__all__ = [
    "BaselineImageClassifier",
    "build_baseline",
    "load_classifier_preset",
    "save_classifier_preset",
    "MMDSRImageClassifier",
    "build_mmdsr",
    "MultiLabelImageClassifier",
]
