"""Turns the CLI's data arguments into train and validation datasets."""

import os

from mmdsr_keras.data import load_dataset


def _require(args, *names):
    missing = [f"--{n.replace('_', '-')}" for n in names if not getattr(args, n, None)]
    if missing:
        raise SystemExit(f"--dataset {args.dataset} needs {' and '.join(missing)}.")


def voc_split(args, split):
    """The VOC image set(s) of `split`: --train-split / --val-split, or the official default.

    With a test list (the full VOC 2007 devkit): trainval -> test, the
    field's protocol; without one (a trainval-only pack): train -> val.
    """
    has_test = os.path.isfile(os.path.join(args.root, "ImageSets", "Main", "test.txt"))
    if split == "train":
        return getattr(args, "train_split", None) or ("trainval" if has_test else "train")
    chosen = getattr(args, "val_split", None) if split == "val" else None
    return chosen or ("test" if has_test else "val")


def load_split(args, split):
    """The `split` ("train", "val" or "test") of the dataset named by `args`.

    Sources without a validation split (coco-json, csv, folder) hold out a
    seeded `--val-fraction` of the data; a separate `--val-annotations` file
    takes precedence.
    """
    name = args.dataset.replace("_", "-")
    seed = getattr(args, "seed", 0) or 0
    if name == "shapes":
        count = getattr(args, "num_images", None)
        if count and split != "train":
            count = max(1, count // 4)
        return load_dataset("shapes", split=split, num_images=count,
                            image_size=args.image_size or 64)
    if name in ("voc2007", "coco2014"):
        tfds_split = {"val": "test" if name == "voc2007" else "val"}.get(split, split)
        return load_dataset(name, split=tfds_split, data_dir=args.data_dir,
                            manual_dir=args.manual_dir)
    if name == "voc-devkit":
        _require(args, "root")
        return load_dataset(name, root=args.root, split=voc_split(args, split))
    if name == "coco-json" and split != "train" and getattr(args, "val_annotations", None):
        return load_dataset(name, images_dir=args.val_images or args.images,
                            annotations_file=args.val_annotations,
                            keep_unlabeled=not args.drop_unlabeled)
    if name == "coco-json":
        _require(args, "images", "annotations")
        data = load_dataset(name, images_dir=args.images, annotations_file=args.annotations,
                            keep_unlabeled=not args.drop_unlabeled)
        if getattr(args, "val_annotations", None):
            return data
    elif name == "csv":
        _require(args, "csv")
        data = load_dataset(name, csv_file=args.csv)
    elif name == "folder":
        _require(args, "root")
        data = load_dataset(name, root=args.root)
    else:
        raise SystemExit(f"Unknown --dataset {args.dataset!r}.")
    held_out, kept = data.random_split(args.val_fraction, seed=seed)
    return kept if split == "train" else held_out
