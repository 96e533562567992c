"""voc2007 / coco2014 through TFDS, with `tfds.testing.mock_data`.

`mock_data`'s random example generator cannot build these datasets'
`objects` sequences (it draws each sub-feature's length independently:
"The length of all elements of one sequence should be the same"), so the
mock is given examples built here and serialized/parsed by the builder's own
`FeaturesDict` (`as_dataset_fn`), i.e. exactly the records a prepared
dataset holds.
"""

import io

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from mmdsr_keras.data import COCO_CLASS_NAMES, VOC_CLASS_NAMES, load_dataset
from mmdsr_keras.data.coco2014_tfds import COCO2014_ARCHIVES
from mmdsr_keras.data.voc2007_tfds import VOC2007_ARCHIVES

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _jpeg(color, orientation=None, size=(24, 32)):
    pixels = np.zeros(size + (3,), np.uint8)
    pixels[:] = color
    pixels[: size[0] // 2, : size[1] // 2] = RED  # top-left marker
    buffer = io.BytesIO()
    kwargs = {}
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95, **kwargs)
    return buffer.getvalue()


def _box():
    return tfds.features.BBox(0.1, 0.1, 0.5, 0.5)


def _voc_object(name, difficult):
    return {
        "label": name, "bbox": _box(), "pose": "frontal",
        "is_truncated": False, "is_difficult": difficult,
    }


def _voc_example(filename, objects, orientation=None):
    names = sorted({n for n, _ in objects})
    return {
        "image": _jpeg((0, 255, 0), orientation),
        "image/filename": filename,
        "objects": [_voc_object(n, d) for n, d in objects],
        "labels": names,
        "labels_no_difficult": sorted({n for n, d in objects if not d}),
    }


VOC_TRAIN = [
    _voc_example("000005.jpg", [("dog", False), ("person", True)]),
    _voc_example("000007.jpg", [("cat", True), ("cat", False)]),
    _voc_example("000009.jpg", [("car", False)], orientation=6),
]
VOC_TEST = [_voc_example("000001.jpg", [("aeroplane", True)])]


def _coco_example(image_id, objects):
    return {
        "image": _jpeg((0, 0, 255)),
        "image/filename": f"{image_id}.jpg",
        "image/id": image_id,
        "objects": [
            {"id": 100 + i, "area": 4, "bbox": _box(), "label": label, "is_crowd": crowd}
            for i, (label, crowd) in enumerate(objects)
        ],
    }


COCO_TRAIN = [
    _coco_example(1, [(0, False), (2, False)]),  # person, car
    _coco_example(2, [(0, True)]),  # only a crowd of people
    _coco_example(3, []),  # no annotation
]


def _mock(examples_by_split):
    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        del read_config, shuffle_files
        examples = examples_by_split["test" if "test" in str(split) else "train"]
        features = self.info.features
        serialized = [features.serialize_example(e) for e in examples]
        return tf.data.Dataset.from_tensor_slices(serialized).map(
            lambda s: features.deserialize_example(s, decoders=decoders)
        )

    return tfds.testing.mock_data(
        as_dataset_fn=as_dataset, policy=tfds.testing.MockPolicy.USE_CODE
    )


@pytest.fixture
def manual_dir(tmp_path):
    """Archives 'present' (empty files): the mock makes preparation a no-op."""
    for name in VOC2007_ARCHIVES + COCO2014_ARCHIVES:
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def _column(name):
    return VOC_CLASS_NAMES.index(name)


def test_voc2007_labels_ignore_mask_and_images(manual_dir):
    with _mock({"train": VOC_TRAIN, "test": VOC_TEST}):
        train = load_dataset("voc2007", split="train", manual_dir=manual_dir)
        test = load_dataset("voc2007", split="test", manual_dir=manual_dir)
        assert train.class_names == list(VOC_CLASS_NAMES)
        assert train.image_ids == ["000005.jpg", "000007.jpg", "000009.jpg"]
        expected = np.zeros((3, 20), np.float32)
        expected[0, [_column("dog"), _column("person")]] = 1
        expected[1, _column("cat")] = 1
        expected[2, _column("car")] = 1
        np.testing.assert_array_equal(train.labels, expected)
        ignore = np.zeros((3, 20), np.float32)
        ignore[0, _column("person")] = 1
        np.testing.assert_array_equal(train.ignore_mask, ignore)
        assert test.ignore_mask[0, _column("aeroplane")] == 1

        images, labels, mask = next(iter(train.to_tf_dataset(16, 8, with_ignore_mask=True)))
        assert images.shape == (3, 16, 16, 3)
        np.testing.assert_array_equal(labels.numpy(), train.labels)
        np.testing.assert_array_equal(mask.numpy(), train.ignore_mask)
        # 000009.jpg has EXIF orientation 6: its red top-left is now top-right.
        np.testing.assert_allclose(images[2, 2, 13].numpy(), RED, atol=25)
        np.testing.assert_allclose(images[0, 2, 2].numpy(), RED, atol=25)

        batches = list(train.to_tf_dataset(16, 2, training=True, seed=3))
        assert sum(len(b[0]) for b in batches) == 3


def test_voc2007_subset_streams_only_its_rows(manual_dir):
    with _mock({"train": VOC_TRAIN, "test": VOC_TEST}):
        train = load_dataset("voc2007", split="train", manual_dir=manual_dir)
        sub = train.subset([0, 2])
        (_, labels), = list(sub.to_tf_dataset(16, 8))
        np.testing.assert_array_equal(labels.numpy(), train.labels[[0, 2]])
        with pytest.raises(ValueError, match="increasing"):
            train.subset([2, 0])


def test_coco2014_labels_crowd_unlabeled_and_class_order(manual_dir):
    with _mock({"train": COCO_TRAIN, "test": []}):
        data = load_dataset("coco2014", split="train", manual_dir=manual_dir)
        # The mocked builder has no stored names ("0".."79"): the official
        # COCO-80 list in ascending category id stands in.
        assert data.class_names == list(COCO_CLASS_NAMES)
        assert data.image_ids == ["1.jpg", "2.jpg"]  # unlabeled dropped
        person, car = COCO_CLASS_NAMES.index("person"), COCO_CLASS_NAMES.index("car")
        assert set(np.flatnonzero(data.labels[0])) == {person, car}
        assert set(np.flatnonzero(data.labels[1])) == {person}  # crowd counts

        no_crowd = load_dataset("coco2014", manual_dir=manual_dir, include_crowd=False)
        assert no_crowd.image_ids == ["1.jpg"]
        kept = load_dataset(
            "coco2014", manual_dir=manual_dir, include_crowd=False, keep_unlabeled=True
        )
        assert kept.image_ids == ["1.jpg", "2.jpg", "3.jpg"]
        assert kept.labels[1:].sum() == 0

        by_name = load_dataset("coco2014", manual_dir=manual_dir, class_order="name")
        assert by_name.class_names == sorted(COCO_CLASS_NAMES)
        names = {by_name.class_names[c] for c in np.flatnonzero(by_name.labels[0])}
        assert names == {"person", "car"}

        _, labels = next(iter(data.to_tf_dataset(8, 4)))
        np.testing.assert_array_equal(labels.numpy(), data.labels)


@pytest.mark.parametrize(
    "name, archives", [("voc2007", VOC2007_ARCHIVES), ("coco2014", COCO2014_ARCHIVES)]
)
def test_unprepared_dataset_says_which_archives_go_where(tmp_path, name, archives):
    manual = tmp_path / "archives"
    with pytest.raises(FileNotFoundError) as error:
        load_dataset(name, data_dir=tmp_path / "tfds", manual_dir=manual)
    message = str(error.value)
    assert str(manual) in message
    for archive in archives:
        assert archive in message
