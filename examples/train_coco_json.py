"""
Title: MMDSR on your own COCO-format data
Author: mmdsr-keras team
Date created: 2026/11/27
Last modified: 2026/12/03
Description: Train and evaluate MMDSR on a COCO instances JSON (images folder + annotations).
Accelerator: CPU (the 337-image coco-mini sample; a GPU for datasets of thousands of images)
"""

"""
## Introduction

Any dataset annotated in COCO's instances format works: the image-level labels are the
categories of each image's annotations. This example uses the coco-mini sample that sits
beside this repository (`../shared/data/coco-mini`, run it from the repository root) with
the official MobileNet (alpha 0.25) ImageNet weights from a local file. For your own
data, pass a folder holding `images/` and `annotations/instances.json`, and a backbone
weights file, as the two arguments.

It follows the package's `transfer` recipe, what `mmdsr-keras train` runs on a pretrained
backbone: the backbone's BatchNorms stay in inference mode, its stage features are
computed once for a few augmented views of every image, and the head trains on them
with AdamW (`docs/BENCHMARKS.md` shows why: full fine-tuning from step 0 on a few hundred
images wrecks the pretrained features).
"""

"""
## Setup
"""

import pathlib
import sys
import tempfile

import keras
import numpy as np

import mmdsr_keras
from mmdsr_keras.data import load_dataset
from mmdsr_keras.evaluation import AveragePrecisionMeter, format_metric_table
from mmdsr_keras.training import (
    StageFeatureCache,
    TrainingConfig,
    calibrate_on_cache,
    fit_frozen_phase,
    freeze_backbone_batchnorm,
    frozen_phase_epochs,
    recipe_defaults,
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

Pretrained backbone weights from a local file; `from_dataset` takes the class names,
the prior A0 and the class bias's label density from the training labels.
"""

model = mmdsr_keras.MMDSRImageClassifier.from_dataset(
    train, backbone="mobilenet_0.25", image_size=IMAGE_SIZE, weights=WEIGHTS,
    score_calibration=True)
freeze_backbone_batchnorm(model)

"""
## Training: the frozen-backbone phase on cached features

Four views per image (plain, mirrored, two MultiScaleCrop + flip), stored as float16
memory-mapped arrays; then about 12,000 image views of AdamW with cosine decay.
"""

recipe = recipe_defaults("transfer", "mmdsr")
config = TrainingConfig(**{**recipe, "frozen_epochs": frozen_phase_epochs(len(train))})
cache = StageFeatureCache.compute(model, train, IMAGE_SIZE, tempfile.mkdtemp(),
                                  views=config.cache_views, verbose=1)
fit_frozen_phase(model, cache.load_into_memory(), config, verbose=2)

"""
## Calibration

The L2-penalised head's scores are shrunk: few pass 0.5 on 80 classes. A per-class
Platt scale and bias, fitted on the training images' cached views, go into the
model's output layer; every class's ranking (its AP) stays, F1 at 0.5 recovers.
"""

scale, bias = calibrate_on_cache(model, cache)
print(f"median Platt scale {np.median(scale):.2f}, bias {np.median(bias):+.2f}")

"""
## Evaluation
"""

meter = AveragePrecisionMeter()
for images, labels, mask in val.to_tf_dataset(IMAGE_SIZE, 32, with_ignore_mask=True):
    meter.add(model.predict_on_batch(images), np.asarray(labels), np.asarray(mask))
print(format_metric_table(meter.compute()))
