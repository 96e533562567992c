"""A dataset folder: images, a labels CSV and an optional class list.

Layout:

    root/
    ├── images/        the image files (any sub-folders)
    ├── labels.csv     header `path,labels`; `path` relative to images/,
    │                  labels separated by ";" or "|" (see `label_csv`)
    └── classes.txt    optional: one class name per line, the column order
                       (without it: every name in labels.csv, sorted)

Only the images listed in labels.csv belong to the dataset; a listed image
with an empty labels cell is an all-negative example.
"""

import os

from mmdsr_keras.data.label_csv import dataset_from_label_rows, read_label_csv

LABELS_FILE = "labels.csv"
CLASSES_FILE = "classes.txt"
IMAGES_DIR = "images"


def read_class_list(text_file):
    """Class names from a text file, one per line (blank lines skipped).

    Args:
        text_file: path of the file.

    Returns:
        list of str.

    Example:
    >>> read_class_list("root/classes.txt")  # doctest: +SKIP
    ['cat', 'dog']
    """
    with open(text_file) as f:
        return [line.strip() for line in f if line.strip()]


def load_folder(root):
    """Loads a dataset folder (layout in the module docstring).

    Args:
        root: the dataset folder.

    Returns:
        `MultiLabelDataset` with `paths`; `image_ids` are the paths as
        written in labels.csv.

    Example:
    >>> data = load_folder("my_dataset")  # doctest: +SKIP
    """
    root = os.fspath(root)
    labels_file = os.path.join(root, LABELS_FILE)
    if not os.path.exists(labels_file):
        raise FileNotFoundError(
            f"{labels_file} not found: a dataset folder holds {IMAGES_DIR}/, "
            f"{LABELS_FILE} and optionally {CLASSES_FILE}."
        )
    classes_file = os.path.join(root, CLASSES_FILE)
    class_names = read_class_list(classes_file) if os.path.exists(classes_file) else None
    rows = read_label_csv(labels_file, base_dir=os.path.join(root, IMAGES_DIR))
    return dataset_from_label_rows(
        rows,
        class_names,
        name=os.path.basename(os.path.abspath(root)),
        source=labels_file,
    )
