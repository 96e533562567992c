"""PASCAL VOC 2007 through TensorFlow Datasets (`voc/2007`).

Splits, as in ML-GCN: `"train"` = TFDS `train+validation` (VOC's trainval,
5,011 images), `"test"` = TFDS `test` (4,952 images). Class order: the TFDS
label names, which are the 20 VOC classes in the standard alphabetical order.
Labels and ignore mask follow `voc_devkit`: difficult-only classes are
present and ignored in evaluation.

TFDS cannot download here. Prepare once from the two archives, unextracted,
put in the manual directory (default `<data_dir>/downloads/manual`):
VOCtrainval_06-Nov-2007.tar and VOCtest_06-Nov-2007.tar.
"""

import numpy as np

from mmdsr_keras.data.multi_label_dataset import MultiLabelDataset
from mmdsr_keras.data.tfds_image_source import TfdsImageSource
from mmdsr_keras.data.tfds_preparation import prepare_tfds_builder

VOC2007_ARCHIVES = ("VOCtrainval_06-Nov-2007.tar", "VOCtest_06-Nov-2007.tar")
VOC2007_SPLITS = {"train": "train+validation", "trainval": "train+validation", "test": "test"}


def _annotations(example):
    objects = example["objects"]
    return example["image/filename"], objects["label"], objects["is_difficult"]


def load_voc2007(
    split="train",
    data_dir=None,
    manual_dir=None,
    download_config=None,
    download=False,
):
    """Loads VOC 2007 from TFDS, preparing it from local archives if needed.

    Args:
        split: `"train"` (trainval) or `"test"`. Defaults to `"train"`.
        data_dir: TFDS data directory. Defaults to None (tfds's default).
        manual_dir: folder with the archives. Defaults to None
            (`<data_dir>/downloads/manual`).
        download_config: a `tfds.download.DownloadConfig`. Defaults to None.
        download: let tfds download missing archives. Defaults to False.

    Returns:
        `MultiLabelDataset` backed by the TFDS records; `image_ids` are the
        file names (`"000005.jpg"`), in record order.

    Raises:
        FileNotFoundError: not prepared and the archives are missing; the
            message says which files to put in which folder.

    Example:
    >>> test = load_voc2007("test", manual_dir="/data/voc")  # doctest: +SKIP
    """
    if split not in VOC2007_SPLITS:
        raise ValueError(f"split must be one of {sorted(VOC2007_SPLITS)}, got {split!r}.")
    builder = prepare_tfds_builder(
        "voc/2007",
        VOC2007_ARCHIVES,
        data_dir=data_dir,
        manual_dir=manual_dir,
        download_config=download_config,
        download=download,
    )
    class_names = list(builder.info.features["objects"]["label"].names)
    source = TfdsImageSource(builder, VOC2007_SPLITS[split])
    ids, label_rows, clear_rows = [], [], []
    for filename, classes, difficult in source.annotations(_annotations):
        labels = np.zeros(len(class_names), np.float32)
        clear = np.zeros(len(class_names), np.float32)
        labels[classes] = 1.0
        clear[classes[~difficult]] = 1.0
        ids.append(filename.decode())
        label_rows.append(labels)
        clear_rows.append(clear)
    labels = np.asarray(label_rows, np.float32).reshape(-1, len(class_names))
    clear = np.asarray(clear_rows, np.float32).reshape(-1, len(class_names))
    return MultiLabelDataset(
        class_names,
        labels,
        ignore_mask=labels * (1.0 - clear),
        image_ids=ids,
        tfds_source=source,
        name=f"voc2007-{split}",
    )
