"""MS-COCO 2014 through TensorFlow Datasets (`coco/2014`).

Splits, as in ML-GCN: `"train"` = TFDS `train` (train2014), `"val"` = TFDS
`validation` (val2014). Class order: the TFDS label names, which TFDS takes
from the instances json's categories list, i.e. ascending category id (the
standard COCO-80 order, see `coco_json`); `class_order="name"` gives
ML-GCN's alphabetical order instead. Crowd regions and unlabeled images are
handled as in `coco_json` (defaults: crowd counts, unlabeled dropped, like
ML-GCN).

TFDS cannot download here. Its `coco/2014` builder fetches the archives of
all four of its splits, so preparing it needs all seven, unextracted, in the
manual directory (default `<data_dir>/downloads/manual`): train2014.zip,
val2014.zip, annotations_trainval2014.zip, plus test2014.zip,
image_info_test2014.zip, test2015.zip and image_info_test2015.zip. With
only the first three, extract them and use `load_coco_json` instead.
"""

import numpy as np

from mmdsr_keras.data.coco_json import CLASS_ORDERS
from mmdsr_keras.data.multi_label_dataset import MultiLabelDataset
from mmdsr_keras.data.tfds_image_source import TfdsImageSource
from mmdsr_keras.data.tfds_preparation import prepare_tfds_builder

COCO2014_ARCHIVES = (
    "train2014.zip",
    "val2014.zip",
    "annotations_trainval2014.zip",
    "test2014.zip",
    "image_info_test2014.zip",
    "test2015.zip",
    "image_info_test2015.zip",
)
COCO2014_SPLITS = {"train": "train", "val": "validation", "validation": "validation"}
# The 80 COCO categories in ascending category id. Used only when the
# builder carries no names (TFDS fills them in while preparing; a mocked or
# unprepared builder has "0".."79").
COCO_CLASS_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck",
    "boat", "traffic light", "fire hydrant", "stop sign", "parking meter", "bench",
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra",
    "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup",
    "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)


def _annotations(example):
    objects = example["objects"]
    return example["image/filename"], objects["label"], objects["is_crowd"]


def _tfds_class_names(builder):
    names = list(builder.info.features["objects"]["label"].names)
    if all(n.isdigit() for n in names) and len(names) == len(COCO_CLASS_NAMES):
        return list(COCO_CLASS_NAMES)
    return names


def load_coco2014(
    split="train",
    data_dir=None,
    manual_dir=None,
    download_config=None,
    download=False,
    keep_unlabeled=False,
    include_crowd=True,
    class_order="category_id",
):
    """Loads COCO 2014 from TFDS, preparing it from local archives if needed.

    Args:
        split: `"train"` or `"val"`. Defaults to `"train"`.
        data_dir: TFDS data directory. Defaults to None (tfds's default).
        manual_dir: folder with the archives. Defaults to None
            (`<data_dir>/downloads/manual`).
        download_config: a `tfds.download.DownloadConfig`. Defaults to None.
        download: let tfds download missing archives. Defaults to False.
        keep_unlabeled: keep images without annotations as all-negative rows.
            Defaults to False (dropped, as ML-GCN).
        include_crowd: count crowd annotations. Defaults to True (ML-GCN).
        class_order: `"category_id"` (TFDS order) or `"name"` (ML-GCN).
            Defaults to `"category_id"`.

    Returns:
        `MultiLabelDataset` backed by the TFDS records; `image_ids` are the
        file names, in record order.

    Raises:
        FileNotFoundError: not prepared and archives are missing; the message
            says which files to put in which folder.

    Example:
    >>> val = load_coco2014("val", manual_dir="/data/coco")  # doctest: +SKIP
    """
    if split not in COCO2014_SPLITS:
        raise ValueError(f"split must be one of {sorted(COCO2014_SPLITS)}, got {split!r}.")
    if class_order not in CLASS_ORDERS:
        raise ValueError(f"class_order must be one of {CLASS_ORDERS}, got {class_order!r}.")
    builder = prepare_tfds_builder(
        "coco/2014",
        COCO2014_ARCHIVES,
        data_dir=data_dir,
        manual_dir=manual_dir,
        download_config=download_config,
        download=download,
    )
    tfds_names = _tfds_class_names(builder)
    order = list(range(len(tfds_names)))
    if class_order == "name":
        order = sorted(order, key=lambda i: tfds_names[i])
    column = np.empty(len(order), np.int64)
    column[order] = np.arange(len(order))  # TFDS label index -> our column

    source = TfdsImageSource(builder, COCO2014_SPLITS[split])
    ids, rows = [], []
    for filename, classes, crowd in source.annotations(_annotations):
        if not include_crowd:
            classes = classes[~crowd]
        if len(classes) == 0 and not keep_unlabeled:
            continue
        labels = np.zeros(len(order), np.float32)
        labels[column[classes]] = 1.0
        ids.append(filename.decode())
        rows.append(labels)
    return MultiLabelDataset(
        [tfds_names[i] for i in order],
        np.asarray(rows, np.float32).reshape(-1, len(order)),
        image_ids=ids,
        tfds_source=source,
        name=f"coco2014-{split}",
    )
