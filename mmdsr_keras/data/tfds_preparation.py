"""Getting a TFDS builder ready offline, or failing with what to put where."""

import os

import tensorflow_datasets as tfds


def _default_manual_dir(builder):
    # Where tfds itself looks when DownloadConfig.manual_dir is not set.
    return os.path.join(os.fspath(builder.data_dir_root), "downloads", "manual")


def _instructions(builder, archives, manual_dir, missing):
    listed = "\n".join(f"  - {name}" for name in archives)
    text = (
        f"The TFDS dataset {builder.name}/{builder.builder_config.name} is not "
        f"prepared in {builder.data_dir}, and this machine cannot download it.\n"
        f"Put these archive files, unextracted and with exactly these names, in "
        f"{manual_dir}:\n{listed}\n"
        "then call again (pass manual_dir=... to use another folder, "
        "data_dir=... to choose where the prepared dataset is written)."
    )
    if missing:
        text += "\nMissing now: " + ", ".join(missing) + "."
    return text


def prepare_tfds_builder(
    name,
    archives,
    data_dir=None,
    manual_dir=None,
    download_config=None,
    download=False,
):
    """Returns a prepared `tfds` builder, preparing it from local archives.

    Args:
        name: TFDS name with config, e.g. `"voc/2007"`.
        archives: file names of the archives the builder downloads; they are
            looked for in the manual directory.
        data_dir: TFDS data directory. Defaults to None (tfds's default,
            `~/tensorflow_datasets` or `$TFDS_DATA_DIR`).
        manual_dir: folder holding the archives. Defaults to None, which means
            `download_config.manual_dir` or else `<data_dir>/downloads/manual`.
        download_config: a `tfds.download.DownloadConfig`. Defaults to None.
        download: let tfds download the archives that are not in the manual
            directory. Defaults to False (never touch the network).

    Returns:
        A `tfds.core.DatasetBuilder` whose data is prepared.

    Raises:
        FileNotFoundError: not prepared and archives missing (with
            `download=False`); the message says which files go where.
        RuntimeError: tfds failed while preparing; the message adds the same
            instructions to tfds's own error.

    Example:
    >>> builder = prepare_tfds_builder(  # doctest: +SKIP
    ...     "voc/2007", ["VOCtrainval_06-Nov-2007.tar", "VOCtest_06-Nov-2007.tar"],
    ...     manual_dir="/data/archives")
    """
    builder = tfds.builder(name, data_dir=data_dir)
    if builder.is_prepared():
        return builder
    config = download_config or tfds.download.DownloadConfig()
    if not download:
        # Otherwise tfds first asks Google Cloud Storage for a prepared copy.
        config = config.replace(try_download_gcs=False)
    if manual_dir is not None:
        config = config.replace(manual_dir=os.fspath(manual_dir))
    manual = os.fspath(config.manual_dir or _default_manual_dir(builder))
    missing = [a for a in archives if not os.path.exists(os.path.join(manual, a))]
    if missing and not download:
        raise FileNotFoundError(_instructions(builder, archives, manual, missing))
    try:
        builder.download_and_prepare(download_config=config)
    except Exception as exc:
        raise RuntimeError(
            f"tfds could not prepare {name}: {exc}\n"
            + _instructions(builder, archives, manual, missing)
        ) from exc
    return builder
