"""`mmdsr-keras train` on bad input and bad settings: one clear line, nothing silently wrong.

Real files: images of coco-mini (copied into a temporary folder, some
corrupted on purpose) and small json / CSV files written here.
"""

import json

from mmdsr_keras.cli import main
from tests.shared_data import shared_path

TINY_MODEL = ["--image-size", "32", "--backbone", "mobilenet_0.25", "--weights", "none",
              "--units", "16", "--num-heads", "2", "--batch-size", "4", "--warmup-epochs", "0"]


def _folders(root):
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def _error_line(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def _coco_subset(tmp_path, count, corrupt=()):
    """`count` real COCO images and their annotations; rows in `corrupt` truncated."""
    source = shared_path("data", "coco-mini", "train2017")
    full = json.loads((source / "annotations" / "instances.json").read_text())
    labelled = {a["image_id"] for a in full["annotations"]}
    images = [i for i in full["images"] if i["id"] in labelled][:count]
    ids = {i["id"] for i in images}
    folder = tmp_path / "images"
    folder.mkdir()
    for row, image in enumerate(images):
        data = (source / "images" / image["file_name"]).read_bytes()
        (folder / image["file_name"]).write_bytes(data[:300] if row in corrupt else data)
    subset = dict(full, images=images,
                  annotations=[a for a in full["annotations"] if a["image_id"] in ids])
    annotations = tmp_path / "instances.json"
    annotations.write_text(json.dumps(subset))
    return folder, annotations, subset


def test_a_diverged_run_fails_loudly_and_saves_no_model(tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["train", "--dataset", "shapes", "--num-images", "64", "--image-size", "32",
                 "--epochs", "2", "--batch-size", "16", "--backbone", "mobilenet_0.25",
                 "--weights", "none", "--units", "16", "--lr", "1e6", "--runs-dir", str(runs)])
    assert code == 1
    line = _error_line(capsys)
    assert "diverged" in line and "epoch 1" in line and "--lr" in line
    (run,) = _folders(runs)
    assert not (run / "model.keras").exists()
    assert "diverged" in (run / "FAILED.txt").read_text()


def test_skipped_images_are_found_before_training_and_listed(tmp_path, capsys):
    images, annotations, subset = _coco_subset(tmp_path, 19, corrupt={2, 7, 11, 16})
    runs = tmp_path / "runs"
    code = main(["train", "--dataset", "coco-json", "--images", str(images), "--annotations",
                 str(annotations), "--val-annotations", str(annotations), "--epochs", "2",
                 "--runs-dir", str(runs), "--on-error", "skip", *TINY_MODEL])
    assert code == 0
    (run,) = _folders(runs)
    corrupt = {subset["images"][i]["file_name"] for i in (2, 7, 11, 16)}
    for split in ("train", "val"):
        listed = (run / f"skipped_{split}_images.txt").read_text().strip().splitlines()
        assert {line.split("\t")[0].rsplit("/", 1)[-1] for line in listed} == corrupt
    assert "train: 15 images" in capsys.readouterr().out
    # Every epoch whole: 15 images / batch 4 = 4 steps, the trainer's count.
    from mmdsr_keras.data import load_dataset
    from mmdsr_keras.commands.train_command import drop_unreadable_images

    data = load_dataset("coco-json", images_dir=images, annotations_file=annotations,
                        keep_unlabeled=True)
    kept, _ = drop_unreadable_images(data, "train", "skip")
    batches = list(kept.to_tf_dataset(32, 4, training=True, epochs=(0, 2)))
    assert len(batches) == 2 * 4 and sum(len(b[1]) for b in batches) == 2 * 15
    assert len((run / "log.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs


def test_on_error_raise_names_the_file_in_one_line(tmp_path, capsys):
    images, annotations, subset = _coco_subset(tmp_path, 6, corrupt={3})
    runs = tmp_path / "runs"
    code = main(["train", "--dataset", "coco-json", "--images", str(images), "--annotations",
                 str(annotations), "--epochs", "1", "--runs-dir", str(runs),
                 "--on-error", "raise", *TINY_MODEL])
    assert code == 1
    assert subset["images"][3]["file_name"] in _error_line(capsys)
    assert _folders(runs) == []  # a data error leaves no run folder


def test_malformed_json_names_file_line_and_column(tmp_path, capsys):
    images, annotations, _ = _coco_subset(tmp_path, 2)
    text = json.dumps(json.loads(annotations.read_text()), indent=1)
    broken = text.replace('"images": [', '"images": [,', 1)
    annotations.write_text(broken)
    line_number = broken[: broken.index('"images": [,')].count("\n") + 1
    code = main(["train", "--dataset", "coco-json", "--images", str(images), "--annotations",
                 str(annotations), "--runs-dir", str(tmp_path / "runs"), *TINY_MODEL])
    assert code == 1
    line = _error_line(capsys)
    assert str(annotations) in line and f"line {line_number}, column" in line


def test_annotation_of_an_unknown_image_is_named(tmp_path, capsys):
    images, annotations, subset = _coco_subset(tmp_path, 3)
    subset["annotations"][0]["image_id"] = 999_999_999
    annotations.write_text(json.dumps(subset))
    code = main(["train", "--dataset", "coco-json", "--images", str(images), "--annotations",
                 str(annotations), "--runs-dir", str(tmp_path / "runs"), *TINY_MODEL])
    assert code == 1
    line = _error_line(capsys)
    assert "annotations[0]" in line and "999999999" in line and "not in 'images'" in line


def test_validation_categories_are_checked_before_training(tmp_path, capsys):
    images, annotations, subset = _coco_subset(tmp_path, 4)
    other = dict(subset, categories=subset["categories"][:-1],
                 annotations=[a for a in subset["annotations"]
                              if a["category_id"] != subset["categories"][-1]["id"]])
    val = tmp_path / "val.json"
    val.write_text(json.dumps(other))
    runs = tmp_path / "runs"
    code = main(["train", "--dataset", "coco-json", "--images", str(images), "--annotations",
                 str(annotations), "--val-annotations", str(val), "--runs-dir", str(runs),
                 *TINY_MODEL])
    assert code == 1
    line = _error_line(capsys)
    assert str(val) in line and subset["categories"][-1]["name"] in line
    assert _folders(runs) == []


def test_csv_with_only_empty_label_cells_is_refused(tmp_path, capsys):
    images, _, subset = _coco_subset(tmp_path, 3)
    csv = tmp_path / "labels.csv"
    csv.write_text("path,labels\n" + "".join(f"images/{i['file_name']},\n"
                                            for i in subset["images"]))
    code = main(["train", "--dataset", "csv", "--csv", str(csv),
                 "--runs-dir", str(tmp_path / "runs"), *TINY_MODEL])
    assert code == 1
    line = _error_line(capsys)
    assert str(csv) in line and "every 'labels' cell is empty" in line


def test_csv_hygiene_warnings(tmp_path, caplog, capsys):
    images, _, subset = _coco_subset(tmp_path, 4)
    names = [i["file_name"] for i in subset["images"]]
    csv = tmp_path / "labels.csv"
    csv.write_text("path,labels\n"
                   f"images/{names[0]},Dog;cat\n images/{names[1]},dog\n"
                   f"images/{names[2]},cat\nimages/{names[2]},cat\nimages/{names[3]},cat\n")
    from mmdsr_keras.data import load_dataset

    with caplog.at_level("WARNING", logger="mmdsr_keras.data"):
        data = load_dataset("csv", csv_file=csv)
    text = caplog.text
    assert "differ only in case or spacing" in text and "'Dog'" in text and "'dog'" in text
    assert "listed more than once" in text and names[2] in text
    assert len(data) == 4  # the repeated row kept once


def test_duplicate_coco_image_ids_are_kept_once(tmp_path, caplog):
    images, annotations, subset = _coco_subset(tmp_path, 3)
    subset["images"].append(dict(subset["images"][0]))
    annotations.write_text(json.dumps(subset))
    from mmdsr_keras.data import load_dataset

    with caplog.at_level("WARNING", logger="mmdsr_keras.data"):
        data = load_dataset("coco-json", images_dir=images, annotations_file=annotations,
                            keep_unlabeled=True)
    assert len(data) == 3 and len(set(data.image_ids)) == 3
    assert "listed more than once" in caplog.text


def test_resume_refuses_flags_that_change_the_run(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "--dataset", "shapes", "--num-images", "16", "--epochs", "1",
                 "--runs-dir", str(runs), *TINY_MODEL]) == 0
    (run,) = _folders(runs)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "5", "--lr", "0.01"]) == 1
    line = _error_line(capsys)
    assert "--epochs 5 (saved: 1)" in line and "--lr 0.01" in line
    assert main(["train", "--resume", str(run)]) == 0  # the run as it was: fine
