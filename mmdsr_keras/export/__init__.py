"""Export for serving: TF Serving SavedModels (and ONNX / LiteRT via Keras).

`export_saved_model(model, export_dir)` writes the next version folder of a
TF Serving model directory; `export_saved_model_from_file` does the same for
a `.keras` file from any backend. See `docs/serving.md`.
"""

from mmdsr_keras.export.saved_model_export import (
    export_saved_model,
    export_saved_model_from_file,
)
from mmdsr_keras.export.serving_archive import (
    BYTES_INPUT,
    BYTES_SIGNATURE,
    DEFAULT_SIGNATURE,
    IMAGE_INPUT,
    LABELS_ASSET,
)
from mmdsr_keras.export.version_directory import existing_versions

__all__ = [
    "BYTES_INPUT",
    "BYTES_SIGNATURE",
    "DEFAULT_SIGNATURE",
    "IMAGE_INPUT",
    "LABELS_ASSET",
    "existing_versions",
    "export_saved_model",
    "export_saved_model_from_file",
]
