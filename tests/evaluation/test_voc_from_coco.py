"""The VOC-20 view of a COCO model: columns checked against the official categories."""

import json

import pytest

from mmdsr_keras.evaluation.voc_from_coco import VOC_CLASSES, VOC_TO_COCO, voc_columns
from tests.shared_data import shared_path


def test_voc_classes_are_the_devkit_order():
    # The 20 classes of the VOC devkit, alphabetical as the devkit lists them.
    assert list(VOC_CLASSES) == sorted(VOC_CLASSES)
    assert len(set(VOC_TO_COCO.values())) == 20


def test_columns_among_official_coco_categories():
    annotations = shared_path("data", "coco-mini", "train2017", "annotations", "instances.json")
    with open(annotations) as f:
        categories = sorted(json.load(f)["categories"], key=lambda c: c["id"])
    names = [c["name"] for c in categories]
    columns = voc_columns(names)
    by_id = {c["name"]: c["id"] for c in categories}
    # Official COCO ids of the VOC classes (airplane 5, dining table 67, tv 72, ...).
    assert by_id["airplane"] == 5 and by_id["dining table"] == 67 and by_id["tv"] == 72
    assert [names[i] for i in columns] == list(VOC_TO_COCO.values())
    assert names[columns[VOC_CLASSES.index("sofa")]] == "couch"


def test_missing_category_is_named():
    names = [n for n in VOC_TO_COCO.values() if n != "couch"]
    with pytest.raises(ValueError, match="couch"):
        voc_columns(names)
