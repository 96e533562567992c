"""VOC devkit folders: labels, difficult handling, splits."""

import numpy as np
import pytest
from PIL import Image

from mmdsr_keras.data import VOC_CLASS_NAMES, load_dataset, load_voc_devkit


def _xml(objects, with_difficult_tag=True):
    parts = ["<annotation><size><width>40</width><height>30</height><depth>3</depth></size>"]
    for name, difficult in objects:
        tag = f"<difficult>{int(difficult)}</difficult>" if with_difficult_tag else ""
        parts.append(
            f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated>{tag}"
            "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


@pytest.fixture
def devkit(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2007"
    for folder in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (root / folder).mkdir(parents=True)
    annotations = {
        # dog clear; person only difficult -> present, ignored
        "000001": (_xml([("dog", False), ("person", True)]), True),
        # cat difficult and clear -> present, not ignored
        "000002": (_xml([("cat", True), ("cat", False), ("car", False)]), True),
        # no <difficult> tag at all -> not difficult
        "000003": (_xml([("tvmonitor", False)], with_difficult_tag=False), True),
        "000004": (_xml([("aeroplane", True)]), False),
    }
    rng = np.random.default_rng(0)
    for image_id, (xml, _) in annotations.items():
        (root / "Annotations" / f"{image_id}.xml").write_text(xml)
        pixels = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "JPEGImages" / f"{image_id}.jpg")
    (root / "ImageSets/Main/train.txt").write_text("000001\n000002\n")
    (root / "ImageSets/Main/val.txt").write_text("000003\n")
    (root / "ImageSets/Main/test.txt").write_text("000004\n")
    return root


def _column(name):
    return VOC_CLASS_NAMES.index(name)


def test_class_names_are_the_20_in_standard_order():
    assert len(VOC_CLASS_NAMES) == 20 and list(VOC_CLASS_NAMES) == sorted(VOC_CLASS_NAMES)
    assert VOC_CLASS_NAMES[:3] == ("aeroplane", "bicycle", "bird")


def test_labels_and_difficult_ignore_mask(devkit):
    data = load_voc_devkit(devkit, split="train+val")
    assert data.image_ids == ["000001", "000002", "000003"]
    expected = np.zeros((3, 20), np.float32)
    expected[0, [_column("dog"), _column("person")]] = 1
    expected[1, [_column("cat"), _column("car")]] = 1
    expected[2, _column("tvmonitor")] = 1
    np.testing.assert_array_equal(data.labels, expected)
    ignore = np.zeros((3, 20), np.float32)
    ignore[0, _column("person")] = 1
    np.testing.assert_array_equal(data.ignore_mask, ignore)
    assert data.paths[0].endswith("JPEGImages/000001.jpg")


def test_test_split_and_pipeline_with_mask(devkit):
    data = load_dataset("voc-devkit", root=devkit, split="test")
    aeroplane = _column("aeroplane")
    assert data.labels[0, aeroplane] == 1 and data.ignore_mask[0, aeroplane] == 1
    images, labels, mask = next(iter(data.to_tf_dataset(32, 4, with_ignore_mask=True)))
    assert images.shape == (1, 32, 32, 3)
    np.testing.assert_array_equal(mask.numpy(), data.ignore_mask)


def test_unknown_class_and_missing_split(devkit):
    (devkit / "Annotations" / "000001.xml").write_text(_xml([("unicorn", False)]))
    with pytest.raises(ValueError, match="unicorn"):
        load_voc_devkit(devkit, split="train")
    with pytest.raises(FileNotFoundError, match="nosuch"):
        load_voc_devkit(devkit, split="nosuch")


def test_cli_splits_default_to_the_official_protocol_and_can_be_chosen(devkit):
    import argparse

    from mmdsr_keras.commands.dataset_arguments import load_split

    def ids(split, **chosen):
        args = argparse.Namespace(dataset="voc-devkit", root=str(devkit), **chosen)
        return list(load_split(args, split).image_ids)

    # With a test list: trainval -> test (the trainval list is train + val here).
    (devkit / "ImageSets/Main/trainval.txt").write_text("000001\n000002\n000003\n")
    assert ids("train") == ["000001", "000002", "000003"] and ids("val") == ["000004"]
    assert ids("train", train_split="train", val_split="val") == ["000001", "000002"]
    assert ids("val", train_split="train", val_split="val") == ["000003"]
    assert ids("train", train_split="train+val") == ["000001", "000002", "000003"]
    # A trainval-only pack (no test list): train -> val.
    (devkit / "ImageSets/Main/test.txt").unlink()
    assert ids("train") == ["000001", "000002"] and ids("val") == ["000003"]
