"""Sets the statistics of a head's feature standardisation from the training images."""

import keras
import numpy as np

from mmdsr_keras.models.head_model import stage_tensors
from mmdsr_keras.training.stage_feature_cache import PLAIN_VIEW

STANDARDIZATION_SUFFIX = "_standardization"


def standardization_layers(model):
    """The `Normalization` layers that `standardized_linear` put in `model`'s head."""
    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.Normalization)
            and layer.name.endswith(STANDARDIZATION_SUFFIX)]


def fit_feature_standardization(model, cache, rows=None, view=PLAIN_VIEW, batch_size=64):
    """Sets mu and sigma^2 of every head standardisation to the training images' statistics.

    For each layer of `standardization_layers(model)`, with x_i its input
    (the pooled features) on the cached `view` of image i in `rows`:

        mu = mean_i x_i,    sigma^2 = mean_i (x_i - mu)^2

    (per channel, the population variance, as `StandardScaler` and
    `Normalization.adapt` use; a channel constant on the training images
    gets sigma^2 = 1, as in `StandardScaler`, so that it cannot blow up on
    new images). The frozen-backbone phase calls it before the
    head trains; the statistics are weights of the model, saved with it, and
    stay fixed while the backbone is fine-tuned.

    Args:
        model: a model built by this package.
        cache: the `StageFeatureCache` of the training images.
        rows: the cache rows of the training images. Defaults to all.
        view: the cached view. Defaults to the plain (evaluation) view.
        batch_size: inference batch. Defaults to 64.

    Returns:
        The number of layers set.

    Example:
    >>> import tempfile, numpy as np, mmdsr_keras
    >>> from mmdsr_keras.data import MultiLabelDataset
    >>> from mmdsr_keras.training import StageFeatureCache
    >>> images = np.random.default_rng(0).integers(0, 255, (2, 40, 40, 3), np.uint8)
    >>> data = MultiLabelDataset(["a", "b"], [[1.0, 0.0], [0.0, 1.0]], images=images)
    >>> model = mmdsr_keras.build_baseline("gap", num_classes=2, backbone="mobilenet_0.25",
    ...                                    image_size=32, weights=None, linear_l2=5e-3)
    >>> cache = StageFeatureCache.compute(model, data, 32, tempfile.mkdtemp(), views=1)
    >>> fit_feature_standardization(model, cache)
    1
    """
    layers = standardization_layers(model)
    if not layers:
        return 0
    rows = np.arange(len(cache)) if rows is None else np.asarray(rows)
    if len(rows) == 0:
        raise ValueError("fit_feature_standardization: no training rows.")
    features = keras.Model(stage_tensors(model), [layer.input for layer in layers])
    totals = [0.0] * len(layers)
    squares = [0.0] * len(layers)
    for start in range(0, len(rows), batch_size):
        outputs = features.predict_on_batch(cache.features(rows[start:start + batch_size], view))
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for i, value in enumerate(outputs):
            value = keras.ops.convert_to_numpy(value).astype(np.float64)
            totals[i] = totals[i] + value.sum(axis=0)
            squares[i] = squares[i] + (value ** 2).sum(axis=0)
    for layer, total, square in zip(layers, totals, squares):
        mean = total / len(rows)
        variance = np.maximum(square / len(rows) - mean ** 2, 0.0)
        variance[variance <= 1e-12 * np.maximum(mean ** 2, 1.0)] = 1.0
        layer.adapt_mean.assign(mean.astype(np.float32))
        layer.adapt_variance.assign(variance.astype(np.float32))
        # Normalization reads constants made from its variables.
        layer.finalize_state()
    return len(layers)
