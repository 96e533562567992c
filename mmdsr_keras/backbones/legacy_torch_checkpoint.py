"""Reads PyTorch `.pth` / `.pt` state dicts into numpy arrays without torch.

Two on-disk layouts exist:

* the legacy layout (`torch.save(..., _use_new_zipfile_serialization=False)`,
  and everything written before PyTorch 1.6): five pickles in a row -- a magic
  number, the protocol version (1001), a `sys_info` dict (byte order, type
  sizes), the object itself, and the list of storage keys -- followed, for each
  key in that list, by an int64 element count and the storage's raw bytes;
* the zip layout (PyTorch >= 1.6): a zip archive holding `<root>/data.pkl`
  (the object) and one raw file `<root>/data/<key>` per storage.

In both, the object pickle refers to storages through persistent ids
`('storage', <storage class>, key, location, numel[, view_metadata])` and builds
tensors with `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
...)`. The unpickler here resolves only the handful of globals a state dict
needs (`collections.OrderedDict`, the tensor rebuild functions and the typed
storage classes) and refuses everything else, so loading a file never runs
arbitrary code. Tensors come back as C-contiguous numpy arrays with torch's
shape, whatever their strides in the file.
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

__all__ = ["load_torch_state_dict", "UnsupportedCheckpointError"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# Typed storage class name -> numpy dtype. bfloat16 has no numpy dtype: its
# 16 bits are the top half of a float32 and it is widened on load.
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsupportedCheckpointError(ValueError):
    """The file is not a state dict this reader can parse safely.

    Example:
    >>> try:
    ...     load_torch_state_dict(__file__)  # a .py file is no checkpoint
    ... except UnsupportedCheckpointError as e:
    ...     print(type(e).__name__)
    UnsupportedCheckpointError
    """


class _StorageRef:
    """A storage named in the pickle; its bytes are attached later."""

    def __init__(self, key, dtype_name, numel):
        self.key = key
        self.dtype_name = dtype_name
        self.numel = int(numel)
        self.array = None  # 1-D numpy array once the bytes are read
        self.view_of = None  # (root _StorageRef, element offset) for views

    def elements(self):
        if self.view_of is not None:
            root, offset = self.view_of
            return root.elements()[offset:offset + self.numel]
        return self.array


class _TensorRef:
    """A tensor waiting for its storage bytes."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _StorageRef):
            raise UnsupportedCheckpointError(
                "tensor rebuilt from something that is not a storage reference"
            )
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def materialize(self):
        flat = self.storage.elements()
        if flat is None:
            raise UnsupportedCheckpointError(
                f"storage {self.storage.key!r} has no data in the file"
            )
        if any(s == 0 for s in self.size):
            return np.zeros(self.size, dtype=flat.dtype)
        if any(s < 0 for s in self.stride) or self.offset < 0:
            raise UnsupportedCheckpointError("negative tensor stride or offset")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= flat.size:
            raise UnsupportedCheckpointError(
                f"tensor of size {self.size}, stride {self.stride}, offset "
                f"{self.offset} reads past its storage of {flat.size} elements"
            )
        item = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
            writeable=False,
        )
        return np.array(view, copy=True, order="C")  # keeps 0-d tensors 0-d


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    # Serves torch._utils._rebuild_tensor and _rebuild_tensor_v2; the extra
    # arguments (requires_grad, backward hooks, metadata) do not matter here.
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
    # nn.Parameter pickles as its tensor plus requires_grad (and hooks).
    return data


class _StorageType:
    """Stands in for `torch.FloatStorage` etc. inside persistent ids."""

    def __init__(self, name):
        self.name = name


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickler resolving only the globals a plain state dict uses."""

    def __init__(self, file):
        super().__init__(file, encoding="utf-8")
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsupportedCheckpointError(
            f"the checkpoint needs {module}.{name}, which a plain state dict "
            f"does not use; load it with torch.load instead"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsupportedCheckpointError(f"unknown persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        view_metadata = pid[5] if len(pid) > 5 else None
        if not isinstance(storage_type, _StorageType):
            raise UnsupportedCheckpointError(f"unknown storage type {storage_type!r}")
        key = str(key)
        root = self.storages.get(key)
        if root is None:
            root = _StorageRef(key, storage_type.name, numel)
            self.storages[key] = root
        if view_metadata is None:
            return root
        view_key, offset, view_numel = view_metadata
        view = _StorageRef(str(view_key), storage_type.name, view_numel)
        view.view_of = (root, int(offset))
        return view


def _as_array(raw, dtype_name, numel, little_endian=True):
    dtype = _STORAGE_DTYPES[dtype_name]
    order = "<" if little_endian else ">"
    if dtype == "bfloat16":
        halves = np.frombuffer(raw, dtype=order + "u2", count=numel)
        return (halves.astype(np.uint32) << 16).view(np.float32)
    dt = np.dtype(dtype).newbyteorder(order)
    arr = np.frombuffer(raw, dtype=dt, count=numel)
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def _resolve(obj):
    """Replaces every `_TensorRef` inside dicts/lists/tuples by its array."""
    if isinstance(obj, _TensorRef):
        return obj.materialize()
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _resolve(v)
        return out
    if isinstance(obj, list):
        return [_resolve(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v) for v in obj)
    return obj


def _item_size(dtype_name):
    dtype = _STORAGE_DTYPES[dtype_name]
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def _load_legacy(data):
    f = io.BytesIO(data)
    safe = lambda: _StateDictUnpickler(f).load()  # noqa: E731
    try:
        magic = safe()
    except Exception as e:  # not a pickle at all
        raise UnsupportedCheckpointError(
            f"neither a zip nor a legacy torch checkpoint ({e})"
        ) from e
    if magic != _LEGACY_MAGIC:
        raise UnsupportedCheckpointError(
            "not a torch checkpoint (wrong magic number); files from PyTorch "
            "< 0.4 (tar layout) are not supported"
        )
    protocol = safe()
    if protocol != _LEGACY_PROTOCOL:
        raise UnsupportedCheckpointError(f"unknown legacy protocol {protocol!r}")
    sys_info = safe()
    little_endian = bool(sys_info.get("little_endian", True))
    unpickler = _StateDictUnpickler(f)
    obj = unpickler.load()
    keys = safe()
    for key in keys:
        (numel,) = struct.unpack("<q" if little_endian else ">q", f.read(8))
        ref = unpickler.storages.get(str(key))
        if ref is None:
            raise UnsupportedCheckpointError(f"storage {key!r} is not referenced")
        if numel != ref.numel:
            raise UnsupportedCheckpointError(
                f"storage {key!r}: header says {numel} elements, pickle {ref.numel}"
            )
        nbytes = numel * _item_size(ref.dtype_name)
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise UnsupportedCheckpointError(f"file truncated in storage {key!r}")
        ref.array = _as_array(raw, ref.dtype_name, numel, little_endian)
    return _resolve(obj)


def _load_zip(path):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pickles = [n for n in names if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise UnsupportedCheckpointError(
                f"zip checkpoint should hold one data.pkl, found {pickles}"
            )
        root = pickles[0][: -len("data.pkl")]
        byteorder = root + "byteorder"
        little_endian = True
        if byteorder in names:
            little_endian = zf.read(byteorder).decode().strip() == "little"
        unpickler = _StateDictUnpickler(io.BytesIO(zf.read(pickles[0])))
        obj = unpickler.load()
        for key, ref in unpickler.storages.items():
            raw = zf.read(f"{root}data/{key}")
            nbytes = ref.numel * _item_size(ref.dtype_name)
            if len(raw) < nbytes:
                raise UnsupportedCheckpointError(f"storage {key!r} is truncated")
            ref.array = _as_array(raw[:nbytes], ref.dtype_name, ref.numel, little_endian)
    return _resolve(obj)


def load_torch_state_dict(path):
    """Reads a PyTorch state dict file into numpy arrays, without torch.

    Handles both the legacy (pre-1.6, pickle stream + raw storages) and the
    zip layout. Only plain state dicts (nested dicts/lists of tensors and
    Python scalars) are accepted: any other class in the pickle raises
    `UnsupportedCheckpointError` instead of being imported.

    Args:
        path: path of a `.pth` / `.pt` file written by `torch.save`.

    Returns:
        The saved object with every tensor replaced by a C-contiguous numpy
        array of the same shape and dtype (an `OrderedDict` for a state dict).

    Raises:
        UnsupportedCheckpointError: the file is not a torch checkpoint, or
            needs classes beyond a plain state dict.

    Example:
    >>> sd = load_torch_state_dict("efficientnet-lite0-57934424.pth")  # doctest: +SKIP
    >>> sd["_conv_stem.weight"].shape  # doctest: +SKIP
    (32, 3, 3, 3)
    """
    path = os.fspath(path)
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    with open(path, "rb") as f:
        data = f.read()
    return _load_legacy(data)
