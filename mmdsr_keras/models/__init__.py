"""Model builders."""

from mmdsr_keras.models.mmdsr import build_explainer, build_mmdsr, class_names_of
