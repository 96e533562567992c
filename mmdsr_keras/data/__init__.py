"""Multi-label datasets and the tf.data input pipeline.

`load_dataset(name, **options)` returns a `MultiLabelDataset`;
`dataset.to_tf_dataset(image_size, batch_size, training=...)` gives the
pipeline `model.fit` consumes on every Keras backend.
"""

from mmdsr_keras.data.coco2014_tfds import COCO_CLASS_NAMES, load_coco2014
from mmdsr_keras.data.coco_json import load_coco_json
from mmdsr_keras.data.dataset_registry import available_datasets, load_dataset
from mmdsr_keras.data.image_decoding import ImageReadError
from mmdsr_keras.data.image_folder import load_folder
from mmdsr_keras.data.label_csv import load_csv
from mmdsr_keras.data.multi_label_dataset import MultiLabelDataset
from mmdsr_keras.data.multi_scale_crop import MultiScaleCrop
from mmdsr_keras.data.shapes_dataset import SHAPE_CLASS_NAMES, load_shapes
from mmdsr_keras.data.voc2007_tfds import load_voc2007
from mmdsr_keras.data.voc_devkit import VOC_CLASS_NAMES, load_voc_devkit

__all__ = [
    "COCO_CLASS_NAMES",
    "ImageReadError",
    "MultiLabelDataset",
    "MultiScaleCrop",
    "SHAPE_CLASS_NAMES",
    "VOC_CLASS_NAMES",
    "available_datasets",
    "load_coco2014",
    "load_coco_json",
    "load_csv",
    "load_dataset",
    "load_folder",
    "load_shapes",
    "load_voc2007",
    "load_voc_devkit",
]
