"""The 20 PASCAL VOC classes as columns of a COCO-80 model's output.

Every VOC class is a COCO category, under another name for six of them
(aeroplane/airplane, diningtable/dining table, motorbike/motorcycle,
pottedplant/potted plant, sofa/couch, tvmonitor/tv). Scoring a COCO model on
these 20 columns gives the "VOC-20" view of its results.
"""

import numpy as np

# VOC name -> COCO name, in the VOC devkit's class order.
VOC_TO_COCO = {
    "aeroplane": "airplane",
    "bicycle": "bicycle",
    "bird": "bird",
    "boat": "boat",
    "bottle": "bottle",
    "bus": "bus",
    "car": "car",
    "cat": "cat",
    "chair": "chair",
    "cow": "cow",
    "diningtable": "dining table",
    "dog": "dog",
    "horse": "horse",
    "motorbike": "motorcycle",
    "person": "person",
    "pottedplant": "potted plant",
    "sheep": "sheep",
    "sofa": "couch",
    "train": "train",
    "tvmonitor": "tv",
}
VOC_CLASSES = tuple(VOC_TO_COCO)


def voc_columns(coco_class_names):
    """Column index of each VOC class (VOC order) among `coco_class_names`.

    Example:
    >>> names = ["person", "tv", "airplane"] + [c for c in VOC_TO_COCO.values()
    ...     if c not in ("person", "tv", "airplane")]
    >>> [int(i) for i in voc_columns(names)[:3]]
    [2, 3, 4]
    """
    position = {str(name): i for i, name in enumerate(coco_class_names)}
    missing = [coco for coco in VOC_TO_COCO.values() if coco not in position]
    if missing:
        raise ValueError(
            f"class names lack the COCO categories {missing} needed for the VOC-20 view "
            "(expected the 80 COCO category names, e.g. from instances.json)."
        )
    return np.array([position[coco] for coco in VOC_TO_COCO.values()], dtype=np.int64)
