"""MultiLabelDataset: bookkeeping and the tf.data pipeline's contract."""

import numpy as np
import pytest
import tensorflow as tf

from mmdsr_keras.data import MultiLabelDataset


STEP = 15  # pixel value step between rows; 16 rows stay below 256


def _indexed(n=10, size=12, classes=3):
    """In-memory dataset whose pixel values encode the row number."""
    values = np.arange(n, dtype=np.uint8) * STEP
    images = np.repeat(values, size * size * 3).reshape(n, size, size, 3)
    labels = np.eye(classes, dtype=np.float32)[np.arange(n) % classes]
    mask = np.zeros_like(labels)
    mask[0, 1] = 1.0
    return MultiLabelDataset(["a", "b", "c"], labels, ignore_mask=mask, images=images)


def test_shapes_and_validation():
    data = _indexed()
    assert len(data) == 10 and data.num_classes == 3
    assert data.labels.dtype == np.float32 and data.ignore_mask.dtype == np.float32
    with pytest.raises(ValueError):
        MultiLabelDataset(["a"], [[1.0]])  # no image storage
    with pytest.raises(ValueError):
        MultiLabelDataset(["a"], [[1.0]], ignore_mask=[[0.0, 1.0]], paths=["x.jpg"])


def test_subset_and_random_split():
    data = _indexed()
    sub = data.subset([4, 2])
    assert sub.image_ids == [4, 2]
    np.testing.assert_array_equal(sub.labels, data.labels[[4, 2]])
    a, b = data.random_split(0.7, seed=5)
    a2, _ = data.random_split(0.7, seed=5)
    a3, _ = data.random_split(0.7, seed=6)
    assert (len(a), len(b)) == (7, 3)
    assert a.image_ids == a2.image_ids and a.image_ids != a3.image_ids
    assert sorted(a.image_ids + b.image_ids) == list(range(10))
    assert a.image_ids == sorted(a.image_ids)  # original order kept


def test_label_density_and_class_frequencies():
    data = MultiLabelDataset(["a", "b"], [[1, 0], [1, 1], [0, 0], [1, 0]], paths=list("wxyz"))
    assert data.label_density() == pytest.approx(4 / 8)
    np.testing.assert_allclose(data.class_frequencies(), [0.75, 0.25])
    np.testing.assert_allclose(data.class_frequencies(normalize=False), [3, 1])


def test_evaluation_pipeline_shapes_dtypes_and_order():
    data = _indexed()
    dataset = data.to_tf_dataset(8, 4)
    images, labels = dataset.element_spec
    assert images.shape.as_list() == [None, 8, 8, 3] and images.dtype == tf.float32
    assert labels.shape.as_list() == [None, 3] and labels.dtype == tf.float32
    batches = list(dataset)
    assert [len(b[0]) for b in batches] == [4, 4, 2]  # remainder kept
    pixels = np.concatenate([b[0].numpy()[:, 0, 0, 0] for b in batches])
    np.testing.assert_allclose(pixels, np.arange(10) * STEP, atol=1e-3)  # row order
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), data.labels)


def test_ignore_mask_is_yielded_on_request():
    data = _indexed()
    images, labels, mask = next(iter(data.to_tf_dataset(8, 10, with_ignore_mask=True)))
    np.testing.assert_array_equal(mask.numpy(), data.ignore_mask)


def test_training_pipeline_shuffles_with_a_seed_and_augments():
    data = _indexed(n=16, size=20)

    def epoch(dataset):
        images, labels = zip(*[(i.numpy(), l.numpy()) for i, l in dataset])
        return np.concatenate(images), np.concatenate(labels)

    first = data.to_tf_dataset(8, 5, training=True, seed=1)
    images, labels = epoch(first)
    assert images.shape == (16, 8, 8, 3) and images.min() >= 0 and images.max() <= 255
    rows = np.rint(images[:, 4, 4, 0] / STEP).astype(int)
    assert sorted(rows) == list(range(16)) and list(rows) != list(range(16))
    np.testing.assert_array_equal(labels, data.labels[rows])  # labels follow images
    again, _ = epoch(data.to_tf_dataset(8, 5, training=True, seed=1))
    np.testing.assert_array_equal(images, again)  # same seed, same epoch
    other, _ = epoch(data.to_tf_dataset(8, 5, training=True, seed=2))
    assert not np.array_equal(images, other)
    second_epoch, _ = epoch(first)
    assert not np.array_equal(images, second_epoch)  # reshuffled each epoch


def test_training_crops_vary_with_the_seed():
    gradient = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3))
    data = MultiLabelDataset(["a"], np.ones((8, 1)), images=np.stack([gradient] * 8))
    crops = next(iter(data.to_tf_dataset(16, 8, training=True, seed=0)))[0].numpy()
    # Different scales/offsets/flips give different views of the same image.
    assert len({c.tobytes() for c in crops}) > 1


def test_bad_on_error_value():
    with pytest.raises(ValueError):
        _indexed().to_tf_dataset(8, 2, on_error="ignore")
