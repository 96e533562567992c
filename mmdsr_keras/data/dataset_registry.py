"""`load_dataset(name, **options)`: every dataset source under one name."""

from mmdsr_keras.data.coco2014_tfds import load_coco2014
from mmdsr_keras.data.coco_json import load_coco_json
from mmdsr_keras.data.image_folder import load_folder
from mmdsr_keras.data.label_csv import load_csv
from mmdsr_keras.data.shapes_dataset import load_shapes
from mmdsr_keras.data.voc2007_tfds import load_voc2007
from mmdsr_keras.data.voc_devkit import load_voc_devkit

DATASET_LOADERS = {
    "shapes": load_shapes,
    "coco-json": load_coco_json,
    "voc-devkit": load_voc_devkit,
    "csv": load_csv,
    "folder": load_folder,
    "voc2007": load_voc2007,
    "coco2014": load_coco2014,
}


def available_datasets():
    """Names `load_dataset` accepts.

    Returns:
        sorted list of str.

    Example:
    >>> "shapes" in available_datasets()
    True
    """
    return sorted(DATASET_LOADERS)


def load_dataset(name, **options):
    """Loads a dataset by source name.

    Names and their options (see each loader's docstring):

    - `"shapes"`: `load_shapes(split="train", num_images=None,
      image_size=64, seed=0)`, generated in memory;
    - `"coco-json"`: `load_coco_json(images_dir, annotations_file, *,
      keep_unlabeled, include_crowd=True, class_order="category_id")`;
    - `"voc-devkit"`: `load_voc_devkit(root, split="trainval")`;
    - `"csv"`: `load_csv(csv_file, class_names=None)`;
    - `"folder"`: `load_folder(root)`;
    - `"voc2007"`: `load_voc2007(split="train", data_dir=None,
      manual_dir=None, download_config=None, download=False)` (TFDS);
    - `"coco2014"`: `load_coco2014(split="train", data_dir=None,
      manual_dir=None, download_config=None, download=False,
      keep_unlabeled=False, include_crowd=True, class_order="category_id")`
      (TFDS).

    Args:
        name: one of the names above ("_" is accepted for "-").
        **options: passed to the loader.

    Returns:
        `MultiLabelDataset`.

    Example:
    >>> data = load_dataset("shapes", split="val", num_images=4, image_size=32)
    >>> len(data), data.num_classes
    (4, 10)
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in DATASET_LOADERS:
        raise ValueError(
            f"Unknown dataset {name!r}; available: {', '.join(available_datasets())}."
        )
    return DATASET_LOADERS[key](**options)
