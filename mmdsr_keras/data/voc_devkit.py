"""PASCAL VOC devkit folders (Annotations XML + ImageSets + JPEGImages).

Labels from the object annotations: a class is present (label 1) when the
image has any object of it, "difficult" or not — ML-GCN trains with
difficult = positive. When all its objects are difficult, the class's
`ignore_mask` is 1, so evaluation leaves it out, as VOC's own devkit (and
ML-GCN's `AveragePrecisionMeter`) does. This equals reading the devkit's
per-class `ImageSets/Main/<class>_<split>.txt` files (1 / 0 / -1).
"""

import os
import xml.etree.ElementTree as ElementTree

import numpy as np

from mmdsr_keras.data.multi_label_dataset import MultiLabelDataset

# The 20 VOC classes in the standard (alphabetical) order.
VOC_CLASS_NAMES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle",
    "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def read_voc_objects(xml_file):
    """(class name, difficult) of every object in one VOC annotation file.

    Args:
        xml_file: path of `Annotations/<id>.xml`.

    Returns:
        list of `(str, bool)`; a missing `<difficult>` counts as not difficult.

    Example:
    >>> read_voc_objects("VOC2007/Annotations/000005.xml")  # doctest: +SKIP
    [('chair', False), ('chair', False), ('chair', True), ...]
    """
    root = ElementTree.parse(xml_file).getroot()
    objects = []
    for obj in root.findall("object"):
        name = obj.findtext("name", default="").strip().lower()
        difficult = obj.findtext("difficult", default="0").strip()
        objects.append((name, difficult not in ("", "0")))
    return objects


def load_voc_devkit(root, split="trainval", class_names=VOC_CLASS_NAMES):
    """Loads one split of a VOC devkit folder.

    Args:
        root: the folder holding `Annotations/`, `ImageSets/Main/` and
            `JPEGImages/` (e.g. `VOCdevkit/VOC2007`).
        split: image-set name, or several joined with "+" (e.g.
            `"train+val"`). Defaults to `"trainval"`.
        class_names: the classes in column order. Defaults to the 20 VOC
            classes in the standard order.

    Returns:
        `MultiLabelDataset` with `paths`, the VOC ids as `image_ids`, labels
        (difficult-only classes present) and the ignore mask.

    Raises:
        ValueError: an annotation names a class outside `class_names`.

    Example:
    >>> data = load_voc_devkit("VOCdevkit/VOC2007", "test")  # doctest: +SKIP
    """
    root = os.fspath(root)
    column = {name: i for i, name in enumerate(class_names)}
    ids = []
    for part in split.split("+"):
        list_file = os.path.join(root, "ImageSets", "Main", f"{part}.txt")
        if not os.path.exists(list_file):
            raise FileNotFoundError(
                f"VOC image set {list_file} not found: root must be the folder "
                "with Annotations/, ImageSets/Main/ and JPEGImages/."
            )
        with open(list_file) as f:
            ids.extend(line.split()[0] for line in f if line.strip())

    labels = np.zeros((len(ids), len(class_names)), np.float32)
    clear = np.zeros_like(labels)  # a non-difficult object was seen
    for row, image_id in enumerate(ids):
        xml_file = os.path.join(root, "Annotations", f"{image_id}.xml")
        for name, difficult in read_voc_objects(xml_file):
            if name not in column:
                raise ValueError(f"{xml_file}: unknown class {name!r}.")
            labels[row, column[name]] = 1.0
            if not difficult:
                clear[row, column[name]] = 1.0
    return MultiLabelDataset(
        class_names,
        labels,
        ignore_mask=labels * (1.0 - clear),
        image_ids=ids,
        paths=[os.path.join(root, "JPEGImages", f"{i}.jpg") for i in ids],
        name=f"{os.path.basename(root.rstrip(os.sep))}-{split}",
    )
