"""The scripts of bench/ as importable modules, for tests of their functions."""

import importlib.util

from tests.shared_data import REPO_ROOT


def load_module(script):
    """`bench/<script>.py` imported as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(script, REPO_ROOT / "bench" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
