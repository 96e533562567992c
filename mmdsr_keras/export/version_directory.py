"""The integer version folders of a TF Serving model directory.

Layout (what TF Serving's file-system source watches):

    export_dir/
        1/                      one integer directory per version
            saved_model.pb
            variables/
            assets/labels.txt   the class names, one per line, output order

A version is written under a temporary non-integer name and renamed into
place (`publish_version`), so TF Serving never sees a half-written version
and an existing version is never overwritten.
"""

import os
import pathlib


def _is_version_name(name):
    return name.isdigit() and str(int(name)) == name


def existing_versions(export_dir):
    """The integer version directories under `export_dir`, sorted.

    Example:
    >>> import tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("2", "10", "007", "tmp"):
    ...     (root / name).mkdir()
    >>> existing_versions(root)
    [2, 10]
    """
    path = pathlib.Path(export_dir)
    if not path.is_dir():
        return []
    return sorted(
        int(p.name) for p in path.iterdir() if p.is_dir() and _is_version_name(p.name)
    )


def check_version(version):
    """`version` as a positive int (an int or its decimal string).

    Raises:
        ValueError: anything else (a bool, zero, a negative number, `"01"`).

    Example:
    >>> check_version("3")
    3
    """
    if isinstance(version, bool) or not isinstance(version, int):
        if isinstance(version, str) and _is_version_name(version):
            version = int(version)
        else:
            raise ValueError(f"version must be a positive int; got {version!r}.")
    if version < 1:
        raise ValueError(f"version must be a positive int; got {version}.")
    return version


def refuse_existing_version(export_dir, version):
    """Raises `FileExistsError` when `export_dir/<version>` exists (it is never overwritten)."""
    target = pathlib.Path(export_dir) / str(version)
    if target.exists():
        raise FileExistsError(
            f"Version {version} already exists in {export_dir} ({target}); it is never "
            "overwritten."
        )


def _claim(export_dir, version, staging):
    """Renames `staging` to `export_dir/<version>`; False when that exists."""
    target = export_dir / str(version)
    if target.exists():
        return False
    try:
        # rename() refuses a non-empty target; mkdir-first would race.
        os.rename(staging, target)
    except OSError:
        return False
    return True


def publish_version(staging, export_dir, version=None):
    """Moves the finished folder `staging` into place as a version of `export_dir`.

    Args:
        staging: a folder on the same file system as `export_dir` (renamed, not copied).
        export_dir: the model base directory.
        version: the version to write. Defaults to None: the largest existing
            version + 1 (retried when another exporter takes that number meanwhile).

    Returns:
        The version directory (`pathlib.Path`).

    Raises:
        FileExistsError: `version` exists, or no new version could be claimed.

    Example:
    >>> import tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "staging").mkdir()
    >>> publish_version(root / "staging", root).name
    '1'
    """
    export_dir = pathlib.Path(export_dir)
    if version is not None:
        if not _claim(export_dir, version, staging):
            refuse_existing_version(export_dir, version)
            raise FileExistsError(f"Could not write version {version} in {export_dir}.")
        return export_dir / str(version)
    for _ in range(100):
        version = max(existing_versions(export_dir), default=0) + 1
        if _claim(export_dir, version, staging):
            return export_dir / str(version)
    raise FileExistsError(f"Could not claim a new version directory in {export_dir}.")
