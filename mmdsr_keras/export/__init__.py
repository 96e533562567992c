"""Export for serving: TF Serving SavedModels (and ONNX / LiteRT via Keras).

See `docs/serving.md`.
"""

from mmdsr_keras.export.saved_model_export import (
    BYTES_INPUT,
    BYTES_SIGNATURE,
    DEFAULT_SIGNATURE,
    IMAGE_INPUT,
    LABELS_ASSET,
    existing_versions,
    export_saved_model,
    export_saved_model_from_file,
)
