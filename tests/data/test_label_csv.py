"""The csv and folder sources."""

import numpy as np
import pytest
from PIL import Image

from mmdsr_keras.data import load_csv, load_dataset, load_folder


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 16), (10, 200, 30)).save(path)


def test_csv_separators_relative_paths_and_sorted_classes(tmp_path):
    for name in ("a.jpg", "sub/b.png", "c.jpg"):
        _image(tmp_path / "imgs" / name)
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text(
        "path,labels\n"
        "imgs/a.jpg,dog;cat\n"
        '"imgs/sub/b.png", person | dog \n'
        "imgs/c.jpg,\n"
    )
    data = load_csv(csv_file)
    assert data.class_names == ["cat", "dog", "person"]
    np.testing.assert_array_equal(data.labels, [[1, 1, 0], [0, 1, 1], [0, 0, 0]])
    assert data.image_ids == ["imgs/a.jpg", "imgs/sub/b.png", "imgs/c.jpg"]
    assert data.paths[1] == str(tmp_path / "imgs" / "sub" / "b.png")
    images, labels = next(iter(data.to_tf_dataset(16, 8)))
    assert images.shape == (3, 16, 16, 3)


def test_csv_with_given_classes_rejects_unknown_names(tmp_path):
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("path,labels\nx.jpg,dog\ny.jpg,zebra\n")
    data = load_dataset("csv", csv_file=csv_file, class_names=["zebra", "dog", "cat"])
    np.testing.assert_array_equal(data.labels, [[0, 1, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="zebra"):
        load_csv(csv_file, class_names=["dog"])


def test_csv_needs_a_header(tmp_path):
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("x.jpg,dog\n")
    with pytest.raises(ValueError, match="header"):
        load_csv(csv_file)


def test_folder_layout_with_and_without_class_list(tmp_path):
    _image(tmp_path / "images" / "one.jpg")
    _image(tmp_path / "images" / "deep" / "two.jpg")
    (tmp_path / "labels.csv").write_text("path,labels\none.jpg,b\ndeep/two.jpg,a|b\n")
    data = load_folder(tmp_path)
    assert data.class_names == ["a", "b"]
    assert data.paths[1] == str(tmp_path / "images" / "deep" / "two.jpg")
    (tmp_path / "classes.txt").write_text("b\na\nc\n")
    data = load_dataset("folder", root=tmp_path)
    assert data.class_names == ["b", "a", "c"]
    np.testing.assert_array_equal(data.labels, [[1, 0, 0], [1, 1, 0]])
    assert len(list(data.to_tf_dataset(8, 1))) == 2


def test_folder_without_labels_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        load_folder(tmp_path)
