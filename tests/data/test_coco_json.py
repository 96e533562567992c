"""coco-json labels checked image by image against pycocotools (coco-mini)."""

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from mmdsr_keras.data import load_coco_json, load_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
COCO_MINI = REPO_ROOT / ".." / "shared" / "data" / "coco-mini" / "train2017"
IMAGES = COCO_MINI / "images"
ANNOTATIONS = COCO_MINI / "annotations" / "instances.json"


@pytest.fixture(scope="module")
def coco():
    if not ANNOTATIONS.exists():
        pytest.skip(f"coco-mini not present at {COCO_MINI}")
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(ANNOTATIONS))


def _expected_names(coco, image_id, iscrowd=None):
    """Independent path: getAnnIds/loadAnns/loadCats for one image."""
    annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=iscrowd))
    return {coco.loadCats(a["category_id"])[0]["name"] for a in annotations}


def _row_names(data, row):
    return {data.class_names[c] for c in np.flatnonzero(data.labels[row])}


def test_every_image_matches_pycocotools(coco):
    data = load_coco_json(IMAGES, ANNOTATIONS, keep_unlabeled=True)
    assert len(data) == len(coco.getImgIds()) == 337
    for row, image_id in enumerate(data.image_ids):
        assert _row_names(data, row) == _expected_names(coco, image_id), image_id
        assert os.path.basename(data.paths[row]) == coco.loadImgs(image_id)[0]["file_name"]
    assert all(os.path.exists(p) for p in data.paths)
    assert data.ignore_mask.sum() == 0


def test_class_order_is_ascending_category_id(coco):
    data = load_coco_json(IMAGES, ANNOTATIONS, keep_unlabeled=True)
    ids = sorted(coco.getCatIds())
    assert data.class_names == [coco.loadCats(i)[0]["name"] for i in ids]
    assert data.class_names[:3] == ["person", "bicycle", "car"] and len(ids) == 80


def test_name_order_is_ml_gcn_alphabetical_with_the_same_labels(coco):
    by_id = load_coco_json(IMAGES, ANNOTATIONS, keep_unlabeled=True)
    by_name = load_coco_json(IMAGES, ANNOTATIONS, keep_unlabeled=True, class_order="name")
    assert by_name.class_names == sorted(by_id.class_names)
    assert by_name.class_names[:3] == ["airplane", "apple", "backpack"]
    for row in range(len(by_id)):
        assert _row_names(by_id, row) == _row_names(by_name, row)


def test_unlabeled_images_are_dropped_or_kept_explicitly(coco):
    kept = load_coco_json(IMAGES, ANNOTATIONS, keep_unlabeled=True)
    dropped = load_coco_json(IMAGES, ANNOTATIONS, keep_unlabeled=False)
    empty = [i for i in coco.getImgIds() if not coco.getAnnIds(imgIds=[i])]
    assert len(empty) == 3
    assert len(dropped) == 334 and not set(empty) & set(dropped.image_ids)
    assert set(empty) <= set(kept.image_ids)
    with pytest.raises(TypeError):
        load_coco_json(IMAGES, ANNOTATIONS)  # keep_unlabeled has no default


def test_without_crowd_every_image_matches_pycocotools_non_crowd(coco):
    data = load_coco_json(IMAGES, ANNOTATIONS, keep_unlabeled=True, include_crowd=False)
    assert coco.getAnnIds(iscrowd=True)  # coco-mini has 18 crowd regions
    for row, image_id in enumerate(data.image_ids):
        assert _row_names(data, row) == _expected_names(coco, image_id, iscrowd=False)


def test_a_crowd_only_class_is_present_unless_crowd_is_excluded(tmp_path):
    # In coco-mini every crowd region's class also has a plain instance, so
    # the difference shows on a small hand-made json.
    annotations = {
        "images": [
            {"id": 1, "file_name": "1.jpg", "width": 4, "height": 4},
            {"id": 2, "file_name": "2.jpg", "width": 4, "height": 4},
        ],
        "annotations": [
            {"id": i, "image_id": image, "category_id": category, "iscrowd": crowd,
             "bbox": [0, 0, 1, 1], "area": 1}
            for i, (image, category, crowd) in enumerate([(1, 5, 0), (1, 1, 1), (2, 1, 1)])
        ],
        "categories": [{"id": 5, "name": "airplane"}, {"id": 1, "name": "person"}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(annotations))
    with_crowd = load_coco_json(tmp_path, path, keep_unlabeled=False)
    assert with_crowd.class_names == ["person", "airplane"]
    np.testing.assert_array_equal(with_crowd.labels, [[1, 1], [1, 0]])
    without = load_coco_json(tmp_path, path, keep_unlabeled=False, include_crowd=False)
    assert without.image_ids == [1]  # image 2 had only a crowd region
    np.testing.assert_array_equal(without.labels, [[0, 1]])
    kept = load_coco_json(tmp_path, path, keep_unlabeled=True, include_crowd=False)
    np.testing.assert_array_equal(kept.labels, [[0, 1], [0, 0]])


def test_through_load_dataset_and_the_pipeline(coco):
    data = load_dataset(
        "coco-json", images_dir=IMAGES, annotations_file=ANNOTATIONS, keep_unlabeled=False
    )
    images, labels = next(iter(data.subset(range(6)).to_tf_dataset(48, 6, training=True)))
    assert images.shape == (6, 48, 48, 3) and labels.shape == (6, 80)
    np.testing.assert_array_equal(labels.numpy().sum(), data.labels[:6].sum())
