"""The procedurally generated `shapes` dataset."""

import time

import numpy as np
import pytest

from mmdsr_keras.data import SHAPE_CLASS_NAMES, load_dataset, load_shapes
from mmdsr_keras.data.shapes_dataset import SCENES


def test_same_seed_same_arrays_different_seed_different():
    a = load_shapes("train", num_images=40, image_size=32, seed=3)
    b = load_shapes("train", num_images=40, image_size=32, seed=3)
    c = load_shapes("train", num_images=40, image_size=32, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)


def test_splits_are_different_draws():
    train = load_shapes("train", num_images=20, image_size=32)
    val = load_shapes("val", num_images=20, image_size=32)
    assert not np.array_equal(train.images, val.images)
    assert val.image_ids[0] == "shapes-val-00000"


def test_images_labels_and_object_counts():
    data = load_shapes("train", num_images=300, image_size=48, seed=1)
    assert data.images.shape == (300, 48, 48, 3) and data.images.dtype == np.uint8
    assert data.class_names == list(SHAPE_CLASS_NAMES) and len(SHAPE_CLASS_NAMES) == 10
    per_image = data.labels.sum(axis=1)
    assert per_image.min() >= 1 and per_image.max() <= 4
    assert (data.labels.sum(axis=0) > 0).all()  # every class occurs
    assert data.ignore_mask.sum() == 0
    assert data.images.std() > 30  # cluttered, not a flat background


def test_classes_of_a_scene_co_occur():
    data = load_shapes("train", num_images=1500, image_size=32, seed=0)
    labels, names = data.labels, data.class_names
    # "square" and "frame" share only the "blocks" scene.
    assert "square" in SCENES["blocks"] and "frame" in SCENES["blocks"]
    square, frame = names.index("square"), names.index("frame")
    marginal = labels[:, frame].mean()
    conditional = labels[labels[:, square] == 1, frame].mean()
    assert conditional > 2.0 * marginal
    # Classes of disjoint scenes are anti-correlated.
    crescent = names.index("crescent")
    assert labels[labels[:, square] == 1, crescent].mean() < labels[:, crescent].mean()


def test_load_dataset_defaults_to_2000_train_and_500_val_images():
    val = load_dataset("shapes", split="val", image_size=16)
    assert len(val) == 500


@pytest.mark.slow
def test_default_train_and_val_generate_in_a_few_seconds():
    start = time.perf_counter()
    train, val = load_shapes("train"), load_shapes("val")
    assert len(train) == 2000 and len(val) == 500
    assert time.perf_counter() - start < 15.0  # ~2 s on an idle 2-core machine
