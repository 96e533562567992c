"""COCO-format instance annotations (a json + an image folder) as labels.

Conventions, chosen to match ML-GCN's COCO labels (`coco.py` of
megvii-research/ML-GCN) except where said:

- every annotation of a category makes the category present, crowd regions
  (`iscrowd` = 1) included: a crowd of people still shows people, and
  ML-GCN counts them too. `include_crowd=False` drops them;
- images without any (kept) annotation: ML-GCN drops them, and so does
  `keep_unlabeled=False`; `keep_unlabeled=True` keeps them as all-negative
  examples. The argument has no default: the choice changes the mAP
  denominator and must be made knowingly;
- class order: `class_order="category_id"` (default) is ascending category
  id, the standard COCO-80 order ("person", "bicycle", "car", ...), the order
  of the official json and of TFDS's `coco/2014` labels. ML-GCN's
  `category.json` is NOT this order: it sorts the category *names*
  alphabetically ("airplane", "apple", "backpack", ...); use
  `class_order="name"` to match it (e.g. to reuse its `coco_adj.pkl` or
  GloVe embeddings);
- images keep the order of the json's `images` list.
"""

import collections
import contextlib
import io
import json
import logging
import os

import numpy as np
from pycocotools.coco import COCO

from mmdsr_keras.data.multi_label_dataset import MultiLabelDataset

CLASS_ORDERS = ("category_id", "name")
logger = logging.getLogger("mmdsr_keras.data")


def read_annotations_json(path):
    """The parsed json file; malformed json raises a ValueError with its line and column.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "bad.json")
    >>> _ = open(path, "w").write('{"images": [1,]}')
    >>> try:
    ...     read_annotations_json(path)
    ... except ValueError as error:
    ...     print(str(error).split(": ", 1)[1])
    not valid JSON at line 1, column 15: Expecting value
    """
    try:
        with open(os.fspath(path), encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON at line {error.lineno}, column "
                         f"{error.colno}: {error.msg}") from None


def _check_structure(dataset, path):
    if not isinstance(dataset, dict):
        raise ValueError(f"{path}: expected a COCO json object with 'images', 'annotations' "
                         f"and 'categories', got a {type(dataset).__name__}.")
    for field in ("images", "annotations", "categories"):
        if not isinstance(dataset.get(field, []), list):
            raise ValueError(f"{path}: field {field!r} must be a list.")
    for i, image in enumerate(dataset.get("images", [])):
        missing = [k for k in ("id", "file_name") if not isinstance(image, dict) or k not in image]
        if missing:
            raise ValueError(f"{path}: images[{i}] lacks {' and '.join(map(repr, missing))}.")
    for i, category in enumerate(dataset.get("categories", [])):
        if not isinstance(category, dict) or "id" not in category or "name" not in category:
            raise ValueError(f"{path}: categories[{i}] needs an 'id' and a 'name'.")
    image_ids = {image["id"] for image in dataset.get("images", [])}
    for i, annotation in enumerate(dataset.get("annotations", [])):
        if not isinstance(annotation, dict) or "image_id" not in annotation \
                or "category_id" not in annotation:
            raise ValueError(f"{path}: annotations[{i}] needs an 'image_id' and a 'category_id'.")
        if annotation["image_id"] not in image_ids:
            raise ValueError(
                f"{path}: annotations[{i}] (id {annotation.get('id')}) refers to image_id "
                f"{annotation['image_id']!r}, which is not in 'images'.")


def _without_duplicate_images(dataset, path):
    """Keeps the first entry of each image id (a duplicate could land in train and val)."""
    counts = collections.Counter(image["id"] for image in dataset["images"])
    duplicates = sorted((i for i, n in counts.items() if n > 1), key=str)
    if not duplicates:
        return dataset
    logger.warning("%s: %d image id(s) listed more than once, kept once: %s", path,
                   len(duplicates), duplicates[:10])
    seen, images = set(), []
    for image in dataset["images"]:
        if image["id"] not in seen:
            seen.add(image["id"])
            images.append(image)
    return dict(dataset, images=images)


def ordered_categories(categories, class_order="category_id"):
    """Sorts COCO category dicts into the class order.

    Args:
        categories: list of `{"id", "name", ...}` dicts.
        class_order: `"category_id"` (ascending id) or `"name"` (alphabetical,
            ML-GCN). Defaults to `"category_id"`.

    Returns:
        list of the category dicts in class order.

    Example:
    >>> cats = [{"id": 3, "name": "car"}, {"id": 1, "name": "person"}]
    >>> [c["name"] for c in ordered_categories(cats)]
    ['person', 'car']
    >>> [c["name"] for c in ordered_categories(cats, "name")]
    ['car', 'person']
    """
    if class_order not in CLASS_ORDERS:
        raise ValueError(f"class_order must be one of {CLASS_ORDERS}, got {class_order!r}.")
    key = (lambda c: c["id"]) if class_order == "category_id" else (lambda c: c["name"])
    return sorted(categories, key=key)


def load_coco_json(
    images_dir,
    annotations_file,
    *,
    keep_unlabeled,
    include_crowd=True,
    class_order="category_id",
):
    """Loads a COCO-format dataset (instances json + images folder).

    Args:
        images_dir: folder with the images named by the json's `file_name`.
        annotations_file: the instances json (read with pycocotools).
        keep_unlabeled: keep images with no annotation as all-negative rows
            (True) or drop them as ML-GCN does (False). Required.
        include_crowd: count `iscrowd` = 1 annotations. Defaults to True.
        class_order: `"category_id"` or `"name"` (see the module docstring).
            Defaults to `"category_id"`.

    Returns:
        `MultiLabelDataset` with `paths`, COCO image ids as `image_ids` and no
        ignore mask (COCO has no "difficult" flag).

    Example:
    >>> data = load_coco_json(  # doctest: +SKIP
    ...     "coco-mini/train2017/images",
    ...     "coco-mini/train2017/annotations/instances.json",
    ...     keep_unlabeled=False)
    """
    dataset = read_annotations_json(annotations_file)
    _check_structure(dataset, annotations_file)
    dataset = _without_duplicate_images(dataset, annotations_file)
    # pycocotools prints progress to stdout; keep library output quiet.
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
    categories = ordered_categories(coco.dataset.get("categories", []), class_order)
    column = {c["id"]: i for i, c in enumerate(categories)}

    images = coco.dataset.get("images", [])
    row = {image["id"]: i for i, image in enumerate(images)}
    labels = np.zeros((len(images), len(categories)), np.float32)
    for annotation in coco.dataset.get("annotations", []):
        if annotation.get("iscrowd", 0) and not include_crowd:
            continue
        if annotation["category_id"] not in column:
            raise ValueError(
                f"{annotations_file}: annotation {annotation.get('id')} has "
                f"category_id {annotation['category_id']}, not among the categories."
            )
        labels[row[annotation["image_id"]], column[annotation["category_id"]]] = 1.0

    keep = np.arange(len(images))
    if not keep_unlabeled:
        keep = keep[labels.sum(axis=1) > 0]
    return MultiLabelDataset(
        [c["name"] for c in categories],
        labels[keep],
        image_ids=[images[i]["id"] for i in keep],
        paths=[os.path.join(os.fspath(images_dir), images[i]["file_name"]) for i in keep],
        name=os.path.basename(os.fspath(annotations_file)),
    )
