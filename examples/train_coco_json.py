"""
Title: MMDSR on your own COCO-format data
Description: Train and evaluate MMDSR on a COCO instances JSON (images folder + annotations).

Any dataset annotated in COCO's instances format works: the image-level labels are the
categories of each image's annotations. This example uses the coco-mini sample that sits
beside this repository (`../shared/data/coco-mini`) with the official MobileNet (alpha
0.25) ImageNet weights from a local file; point the paths at your own data.
"""

"""
## Setup
"""

import pathlib
import sys

import keras
import numpy as np

import mmdsr_keras
from mmdsr_keras.data import load_dataset
from mmdsr_keras.evaluation import AveragePrecisionMeter, format_metric_table
from mmdsr_keras.training.multi_label_trainer import (
    TrainingConfig,
    compile_for_training,
    steps_per_epoch,
)

keras.utils.set_random_seed(0)
ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/coco-mini/train2017")
WEIGHTS = sys.argv[2] if len(sys.argv) > 2 else "../shared/weights/mobilenet_2_5_224_tf_no_top.h5"
IMAGE_SIZE = 224

"""
## The data

Category ids map to contiguous indices in ascending id order (the standard COCO-80
order). A fifth of the images, chosen with a fixed seed, is held out for validation.
"""

data = load_dataset("coco-json", images_dir=ROOT / "images",
                    annotations_file=ROOT / "annotations" / "instances.json",
                    keep_unlabeled=True)
val, train = data.random_split(0.2, seed=0)
print(f"{len(train)} training and {len(val)} validation images, {data.num_classes} classes")

"""
## The model

Pretrained backbone weights from a local file; the prior and class bias from the
training labels.
"""

model = mmdsr_keras.build_mmdsr(
    class_names=train.class_names,
    backbone="mobilenet_0.25",
    image_size=IMAGE_SIZE,
    weights=WEIGHTS,
    label_prior=mmdsr_keras.ml_gcn_label_prior(train.labels),
    label_density=train.label_density(),
)

"""
## Training: the field's recipe

Head learning rate 0.1, backbone 0.01, momentum 0.9, weight decay 1e-4, gradient norm
clipped at 10, MultiScaleCrop + flip augmentation.
"""

config = TrainingConfig(epochs=8, batch_size=16, learning_rate=0.1, warmup_epochs=1)
compile_for_training(model, config, steps_per_epoch(len(train), config.batch_size))
model.fit(train.to_tf_dataset(IMAGE_SIZE, config.batch_size, training=True),
          epochs=config.epochs)

"""
## Evaluation
"""

meter = AveragePrecisionMeter()
for images, labels, mask in val.to_tf_dataset(IMAGE_SIZE, 32, with_ignore_mask=True):
    meter.add(model.predict_on_batch(images), np.asarray(labels), np.asarray(mask))
print(format_metric_table(meter.compute()))
