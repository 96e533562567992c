"""`mmdsr-keras tune`: a KerasTuner search of MMDSR hyperparameters, resumable."""

import pathlib
import time

import keras

from mmdsr_keras.commands.dataset_arguments import load_split
from mmdsr_keras.commands.train_arguments import backbone_weights, default_recipe, jit_compile
from mmdsr_keras.commands.train_command import DEFAULTS_BY_DATASET, GENERIC_DEFAULTS
from mmdsr_keras.commands.tune_arguments import parse_fixed
from mmdsr_keras.training import (
    TrainingConfig,
    distribution_scope,
    recipe_defaults,
    recipe_head_arguments,
    resolve_frozen_epochs,
)
from mmdsr_keras.tuning import (
    MMDSRHyperModel,
    SearchStoppedError,
    run_search,
    write_search_report,
)

# Choices of the widths per dataset (the backbone, weights, image size, epochs
# and batch size default to those of `mmdsr-keras train`).
WIDTH_CHOICES_BY_DATASET = {"shapes": [32, 64, 128]}
GENERIC_WIDTH_CHOICES = [256, 512]


def fill_tune_defaults(args):
    """Fills unset arguments: the `train` command's defaults for the dataset,
    and width choices around them."""
    train_defaults = DEFAULTS_BY_DATASET.get(args.dataset, GENERIC_DEFAULTS)
    if args.weights is None:
        args.weights = train_defaults["weights"]
    if getattr(args, "recipe", None) is None:
        args.recipe = train_defaults.get("recipe", default_recipe(args.weights))
    recipe = recipe_defaults(args.recipe)
    # Fine-tuning epochs of a trial: the transfer recipe needs at least one
    # (KerasTuner keeps the model of the best epoch).
    train_defaults = {"epochs": max(1, recipe["epochs"]), "batch_size": recipe["batch_size"],
                      **train_defaults}
    widths = WIDTH_CHOICES_BY_DATASET.get(args.dataset, GENERIC_WIDTH_CHOICES)
    defaults = dict(
        backbone=train_defaults["backbone"], weights=train_defaults["weights"],
        image_size=train_defaults["image_size"], units=widths, node_units=widths,
        epochs=[train_defaults["epochs"]],
        batch_size=sorted({16, train_defaults["batch_size"]}),
    )
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.project_name is None:
        args.project_name = f"{args.dataset}_{args.tuner}"
    return args


def hypermodel_from_args(args, train):
    """The `MMDSRHyperModel` described by the `tune` arguments, for `train`."""
    recipe = {k: v for k, v in recipe_defaults(args.recipe).items()
              if k not in ("epochs", "batch_size")}
    base = TrainingConfig(**{
        **recipe, "loss": args.loss or recipe["loss"], "schedule": args.schedule,
        "warmup_epochs": (recipe["warmup_epochs"] if args.warmup_epochs is None
                          else args.warmup_epochs),
        "clip_global_norm": args.clip_norm,
        "frozen_epochs": resolve_frozen_epochs(recipe["frozen_epochs"], len(train)),
        "jit_compile": jit_compile(args.xla),
        # Trials are ranked by val mAP, which a per-class calibration (a_c > 0)
        # leaves unchanged; a chosen model can be calibrated afterwards
        # (`fit_score_calibration`).
        "calibrate": False,
    })
    # Hyperband sets every trial's epochs itself (up to --max-epochs).
    epochs = None if args.tuner == "hyperband" else args.epochs
    return MMDSRHyperModel.from_dataset(
        train, image_size=args.image_size, backbone=args.backbone,
        weights=backbone_weights(args.weights), freeze_backbone=args.freeze_backbone,
        units=args.units, node_units=args.node_units, batch_size=args.batch_size,
        epochs=epochs, fixed=parse_fixed(args.fix), base_config=base, seed=args.seed,
        on_error=args.on_error,
        feature_cache_dir=str(pathlib.Path(args.directory) / args.project_name / "feature_cache"),
        # Every trial's head as `mmdsr-keras train` builds it under this recipe.
        head_arguments=recipe_head_arguments(args.recipe, "mmdsr", base.frozen_epochs > 0),
    )


def run_tune(args):
    args = fill_tune_defaults(args)
    keras.utils.set_random_seed(args.seed)
    train = load_split(args, "train")
    val = load_split(args, "val")
    print(f"train: {len(train)} images, val: {len(val)} images, {train.num_classes} classes; "
          f"backend: {keras.backend.backend()}")
    hypermodel = hypermodel_from_args(args, train)
    project_dir = pathlib.Path(args.directory) / args.project_name
    callbacks = []
    if args.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(project_dir / "tensorboard")))
    started = time.time()
    stopped = None
    # A ProjectMismatchError (a ValueError) reaches the CLI's one-line error.
    try:
        with distribution_scope(args.distribution) as strategy:
            tuner, resumed = run_search(
                hypermodel, train, val, tuner=args.tuner, directory=args.directory,
                project_name=args.project_name, overwrite=args.overwrite, callbacks=callbacks,
                verbose=args.verbose, max_trials=args.max_trials, max_epochs=args.max_epochs,
                factor=args.factor, hyperband_iterations=args.hyperband_iterations,
                num_initial_points=args.num_initial_points, seed=args.seed,
                max_consecutive_failed_trials=args.max_consecutive_failed_trials,
                distribution_strategy=strategy,
            )
    except SearchStoppedError as error:
        stopped, tuner, resumed = error, error.tuner, None
    out_dir = pathlib.Path(args.out) if args.out else project_dir
    rows, table = write_search_report(tuner, out_dir)
    state = "Stopped" if stopped else ("Resumed" if resumed else "New")
    print(f"\n{state} project {project_dir} "
          f"({args.tuner}, {time.time() - started:.0f} s in this run)")
    print(table)
    if stopped:
        print(f"The search stopped: {str(stopped).splitlines()[0]}")
    print(f"Table: {out_dir / 'trials.csv'}, plot: {out_dir / 'search.png'}, "
          f"best: {out_dir / 'best_hyperparameters.json'}")
    return 0 if not stopped and any(r["status"] == "COMPLETED" for r in rows) else 1
