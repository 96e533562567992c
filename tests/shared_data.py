"""Where the real data and weights shared by the tests live (`../shared`, or `$MMDSR_SHARED`)."""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("MMDSR_SHARED", REPO_ROOT.parent / "shared"))


def shared_path(*parts):
    """A path under ../shared, skipping the test when that file is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path
