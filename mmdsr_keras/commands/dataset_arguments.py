"""The CLI's data arguments (`add_data_arguments`) and the datasets they name (`load_split`)."""

import os

DATASETS = ("shapes", "coco-json", "voc-devkit", "csv", "folder", "voc2007", "coco2014")


def add_data_arguments(parser, inherit=False):
    """Adds the `data` argument group (`--dataset` and each source's options) to `parser`.

    Args:
        parser: an `argparse.ArgumentParser` (a sub-command's).
        inherit: leave every default None, so that unset options come from a
            run's saved arguments (`evaluate`). Defaults to False.
    """
    default = (lambda value: None) if inherit else (lambda value: value)
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default=default("shapes"), help=" | ".join(DATASETS))
    g.add_argument("--num-images", type=int,
                   help="shapes: training images to generate (validation gets a quarter)")
    g.add_argument("--images", help="coco-json: the images folder")
    g.add_argument("--annotations", help="coco-json: the instances JSON")
    g.add_argument("--val-images", help="coco-json: a separate validation images folder")
    g.add_argument("--val-annotations", help="coco-json: a separate validation JSON")
    g.add_argument("--root", help="voc-devkit / folder: the dataset root")
    g.add_argument("--train-split",
                   help="voc-devkit: training image set(s), e.g. trainval or train+val "
                        "(default: trainval when ImageSets/Main/test.txt exists, else train)")
    g.add_argument("--val-split",
                   help="voc-devkit: validation image set (default: test when it exists, "
                        "else val)")
    g.add_argument("--csv", help="csv: the label CSV file")
    g.add_argument("--data-dir", help="voc2007 / coco2014: the tensorflow-datasets data dir")
    g.add_argument("--manual-dir", help="voc2007 / coco2014: folder holding the archives")
    g.add_argument("--val-fraction", type=float, default=default(0.2),
                   help="held-out share when the source has no validation split (default 0.2)")
    g.add_argument("--drop-unlabeled", action="store_true", default=default(False),
                   help="coco-json: drop images without any annotation (default: keep)")
    g.add_argument("--on-error", choices=("skip", "raise"), default=default("skip"),
                   help="a missing or corrupt image: skip with a warning, or fail")


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
    # Imported here: the parser imports this module, and the data package
    # imports TensorFlow (`mmdsr-keras --help` stays fast on JAX and PyTorch).
    from mmdsr_keras.data import load_dataset

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
