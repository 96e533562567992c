"""
Title: MMDSR on PASCAL VOC 2007, the paper's protocol
Author: mmdsr-keras team
Date created: 2026/11/27
Last modified: 2026/12/03
Description: ResNet-101 at 448 px with ImageNet weights, trainval -> test, difficult ignored.
Accelerator: GPU (an epoch is 5,011 images at 448 px; mixed float16 precision)
"""

"""
## Introduction

This is the protocol behind the published VOC 2007 numbers (ML-GCN 94.0 mAP, MSRN 94.8,
ADD-GCN 96.0 at 576 px). It needs the VOC 2007 archives and ImageNet weights: with
internet, tensorflow-datasets and Keras download them; offline, put
`VOCtrainval_06-Nov-2007.tar` and `VOCtest_06-Nov-2007.tar` in a folder and pass it as
the first argument (the loader's error message says where, if anything is missing).
"""

"""
## Setup
"""

import sys

import keras
import numpy as np

import mmdsr_keras
from mmdsr_keras.data import load_dataset
from mmdsr_keras.evaluation import (
    AveragePrecisionMeter,
    MeanAveragePrecisionCallback,
    format_metric_table,
)
from mmdsr_keras.training import (
    TrainingConfig,
    compile_for_training,
    set_precision,
    steps_per_epoch,
)

MANUAL_DIR = sys.argv[1] if len(sys.argv) > 1 else None
IMAGE_SIZE = 448
keras.utils.set_random_seed(0)

"""
## The data

`voc/2007`: train + validation (trainval, 5,011 images) for training, test (4,952) for
evaluation. A class present only through "difficult" objects counts as positive in
training and is ignored by the AP, as in ML-GCN.
"""

train = load_dataset("voc2007", split="train", manual_dir=MANUAL_DIR)
test = load_dataset("voc2007", split="test", manual_dir=MANUAL_DIR)

"""
## The model: ResNet-101, 448 px, ImageNet weights, mixed precision

The dtype policy is set before the model is built, so that its layers compute in
float16. `from_dataset` takes the class names, ML-GCN's prior A0 and the label density
from the trainval labels.
"""

config = TrainingConfig(epochs=20, batch_size=16, learning_rate=0.1, schedule="step",
                        step_epochs=(10, 15), warmup_epochs=1, mixed_precision="float16")
set_precision(config)
model = mmdsr_keras.MMDSRImageClassifier.from_dataset(
    train, backbone="resnet101", image_size=IMAGE_SIZE, weights="imagenet")

"""
## Training: SGD 0.1 head / 0.01 backbone, momentum 0.9, wd 1e-4, clip 10, step decay

ML-GCN's optimizer (the package's `ml-gcn` recipe) rather than `model.compile()`'s AdamW
`transfer` recipe: the published numbers train the whole network this way from the
first step.
"""

compile_for_training(model, config, steps_per_epoch(len(train), config.batch_size))
test_data = test.to_tf_dataset(IMAGE_SIZE, 32, with_ignore_mask=True)
model.fit(train.to_tf_dataset(IMAGE_SIZE, config.batch_size, training=True),
          epochs=config.epochs, callbacks=[MeanAveragePrecisionCallback(test_data)])

"""
## Evaluation on VOC 2007 test
"""

meter = AveragePrecisionMeter()
for images, labels, mask in test_data:
    meter.add(model.predict_on_batch(images), np.asarray(labels), np.asarray(mask))
print(format_metric_table(meter.compute(), class_names=test.class_names))
