"""`MMDSRHyperModel`: the MMDSR search space and training recipe for KerasTuner."""

import contextlib

import keras
import keras_tuner
import numpy as np

from mmdsr_keras.evaluation import MeanAveragePrecisionCallback
from mmdsr_keras.models.mmdsr import MMDSR_HEAD_DEFAULTS
from mmdsr_keras.tasks import MMDSRImageClassifier, build_mmdsr
from mmdsr_keras.training.frozen_backbone_phase import fit_frozen_phase, freeze_backbone_batchnorm
from mmdsr_keras.training.multi_label_trainer import (
    TrainingConfig,
    compile_for_training,
    steps_per_epoch,
)
from mmdsr_keras.training.non_finite_loss_guard import NonFiniteLossGuard, TrainingDivergedError
from mmdsr_keras.training.stage_feature_cache import StageFeatureCache
from mmdsr_keras.tuning.trial_checks import check_trial, check_trial_data, failed_trial

GRAPH_CHOICES = ("dynamic", "static", "none")
HEAD_CHOICES = (1, 2, 4)
REDUCTION_CHOICES = (2, 4, 8)


def _choices(name, values):
    """A sorted tuple of distinct ints from an int or a sequence of ints."""
    values = (values,) if isinstance(values, (int, np.integer)) else tuple(values)
    if not values:
        raise ValueError(f"{name}: give at least one value.")
    values = tuple(sorted({int(v) for v in values}))
    if values[0] < 1:
        raise ValueError(f"{name}: values must be positive, got {values}.")
    return values


def _median(values):
    return values[(len(values) - 1) // 2]


class MMDSRHyperModel(keras_tuner.HyperModel):
    """The MMDSR search space, built from the facts of one training dataset.

    `build(hp)` returns an (uncompiled) MMDSR; `fit(hp, model, train,
    validation_data=val, ...)` makes the tf.data pipelines, compiles with the
    training recipe (`compile_for_training`) and trains with
    `MeanAveragePrecisionCallback` first in the callbacks, so the epoch logs
    hold `val_mAP` (ML-GCN's mAP, in points, exactly as `mmdsr-keras
    evaluate` computes it): use `objective=val_map_objective()`.

    Search space (name: values, default; "| cond" = only active when):

    | name | values | default |
    |---|---|---|
    | `graph` | dynamic, static, none | dynamic |
    | `num_perspectives` (K) | 2, 4, ..., 16  \\| graph=dynamic | 8 |
    | `sparsity_threshold` (eps) | 0.0, 0.05, ..., 0.5  \\| graph=dynamic | 0.0 |
    | `prior_weight` (lambda) | 0.0, 0.1, ..., 1.0  \\| graph=dynamic | 0.5 |
    | `global_weight` (alpha) | 0.0, 0.1, ..., 1.0 | 0.5 |
    | `trainable_global_weight` | False, True | False |
    | `units` (d) | `units` | middle choice |
    | `node_units` (d_v) | `node_units` | middle choice |
    | `cross_layer` | False, True | True |
    | `num_heads` | 1, 2, 4 (those dividing d and d/4)  \\| cross_layer | 4 |
    | `dual_branch` | False, True | True |
    | `reduction` (r) | 2, 4, 8  \\| dual_branch | 4 |
    | `learning_rate` (head) | 1e-3 .. 0.3, log (AdamW: 1e-5 .. 1e-2) | the base config's |
    | `backbone_lr_multiplier` | 0.01 .. 1, log | 0.1 (1.0 when `weights=None`) |
    | `weight_decay` | 1e-5 .. 1e-3, log | 1e-4 |
    | `batch_size` | `batch_size` | middle choice |
    | `epochs` | `epochs` | middle choice |
    | `frozen_learning_rate` | 3e-4 .. 3e-2, log  \| `base_config.frozen_epochs` > 0 | the base config's |

    With the `transfer` recipe as `base_config` (`recipe_defaults("transfer")`,
    what `mmdsr-keras tune` uses for pretrained backbones) every trial runs
    the CLI's two phases: the head alone on the shared feature cache for
    `frozen_epochs`, then `epochs` of fine-tuning with the backbone's
    BatchNorm frozen.

    `fixed={"name": value}` pins any of them (`hp.Fixed`), e.g.
    `fixed={"graph": "dynamic", "num_heads": 2}`; an int for `units`,
    `node_units`, `batch_size` or `epochs` pins that one too. A tuner that
    sets the epochs itself (Hyperband passes `epochs` and `initial_epoch` to
    `fit`) overrides the `epochs` hyperparameter: give `epochs=None` for such
    a tuner, and there is no `epochs` hyperparameter at all.

    `build` is deterministic: it seeds Keras (`keras.utils.set_random_seed`)
    with `seed` first, so the same `hp` gives the same initial weights (and
    KerasTuner's reload of the best model, a rebuild plus its checkpoint,
    gives the trained model back).

    A trial whose training loss becomes NaN/Inf is stopped at that batch
    (`NonFiniteLossGuard`, in either phase) and reported FAILED
    (`keras_tuner.errors.FailedTrialError`): the search goes on, and the trial
    never counts as a best one. So is a trial whose `val_mAP` is NaN at every
    epoch (no validation class with a positive label) or whose predictions
    are NaN.

    Args:
        class_names: the C class names.
        label_prior: `(C, C)` static prior A0 (`MMDSRImageClassifier.dataset_arguments`), or None.
        label_density: pi (float) or `(C,)` class frequencies.
        image_size: the input side S (int).
        backbone: backbone name. Defaults to `"mobilenet_0.25"`.
        weights: backbone weights (`"imagenet"`, None or a file). Defaults to
            None.
        freeze_backbone: train the head only. Defaults to False.
        units: choices of d (int: fixed). Defaults to (64, 128, 256).
        node_units: choices of d_v (int: fixed). Defaults to (64, 128, 256).
        batch_size: choices of the batch size (int: fixed). Defaults to
            (16, 32).
        epochs: choices of the epoch count (int: fixed; None: no such
            hyperparameter, the tuner passes `epochs` to `fit`, as Hyperband
            does). Defaults to 10.
        fixed: dict pinning hyperparameters by name. Defaults to None.
        base_config: `TrainingConfig` for everything not tuned (loss,
            schedule, warm-up, clipping, momentum, `jit_compile`). Its
            `seed` is replaced by `seed`. Defaults to `TrainingConfig()` with
            no warm-up.
        seed: seed of the initialisation, shuffling and augmentation.
            Defaults to 0.
        feature_cache_dir: where the frozen-backbone phase keeps its
            `StageFeatureCache` (computed by the first trial, reused by every
            other: the backbone is the same pretrained one). Used when
            `base_config.frozen_epochs > 0` (the `transfer` recipe); then
            `frozen_learning_rate` is a hyperparameter too. Defaults to
            None (a temporary folder).
        head_arguments: MMDSR head arguments every trial shares, outside
            the search space (`global_linear`, `linear_l2`, `head_l2`,
            `dropout`, ...: what `mmdsr-keras tune` takes from the recipe,
            `recipe_head_arguments`). Defaults to None (the design's head).
        eval_batch_size: batch size of the validation pipeline. Defaults to 32.
        on_error: a missing or corrupt image: `"skip"` or `"raise"`.
        name, tunable: as `keras_tuner.HyperModel`.

    Example:
    >>> from mmdsr_keras.data import load_dataset
    >>> train = load_dataset("shapes", split="train", num_images=16, image_size=32)
    >>> hypermodel = MMDSRHyperModel.from_dataset(train, image_size=32, units=16, node_units=16)
    >>> model = hypermodel.build(keras_tuner.HyperParameters())
    >>> model.output_shape
    (None, 10)
    """

    def __init__(
        self,
        class_names,
        label_prior=None,
        label_density=0.05,
        image_size=64,
        backbone="mobilenet_0.25",
        weights=None,
        freeze_backbone=False,
        units=(64, 128, 256),
        node_units=(64, 128, 256),
        batch_size=(16, 32),
        epochs=10,
        fixed=None,
        base_config=None,
        seed=0,
        eval_batch_size=32,
        on_error="skip",
        feature_cache_dir=None,
        head_arguments=None,
        name="mmdsr",
        tunable=True,
    ):
        super().__init__(name=name, tunable=tunable)
        self.class_names = [str(c) for c in class_names]
        self.label_prior = None if label_prior is None else np.asarray(label_prior, np.float32)
        self.label_density = label_density
        self.image_size = int(image_size)
        self.backbone = backbone
        self.weights = weights
        self.freeze_backbone = bool(freeze_backbone)
        self.units = _choices("units", units)
        self.node_units = _choices("node_units", node_units)
        self.batch_size = _choices("batch_size", batch_size)
        self.epochs = None if epochs is None else _choices("epochs", epochs)
        self.fixed = dict(fixed or {})
        unknown = sorted(set(self.fixed) - set(self.hyperparameter_names()))
        if unknown:
            raise ValueError(
                f"fixed: unknown hyperparameters {unknown}; known: {self.hyperparameter_names()}."
            )
        units_in_use = (int(self.fixed["units"]),) if "units" in self.fixed else self.units
        if min(units_in_use) < 4:
            raise ValueError(
                f"units: d must be at least 4 (the key width is d/4), got {units_in_use}."
            )
        # Head counts valid for every d (CrossLayerAttention: h divides d and d/4).
        self.head_choices = tuple(
            h for h in HEAD_CHOICES if all(d % h == 0 and (d // 4) % h == 0 for d in units_in_use)
        )
        base = base_config or TrainingConfig(warmup_epochs=0.0)
        self.base_config = TrainingConfig.from_dict({**base.to_dict(), "seed": int(seed)})
        self.seed = int(seed)
        self.eval_batch_size = int(eval_batch_size)
        self.on_error = on_error
        self.feature_cache_dir = feature_cache_dir
        self.head_arguments = dict(head_arguments or {})
        # The searched ones and the dataset's facts are not fixed head arguments.
        allowed = (set(MMDSR_HEAD_DEFAULTS) - {"label_density"}
                   - set(self.model_hyperparameters(keras_tuner.HyperParameters())))
        unknown = sorted(set(self.head_arguments) - allowed)
        if unknown:
            raise ValueError(f"head_arguments: {unknown} are not fixed MMDSR head arguments "
                             f"(searched ones go in `fixed`); expected some of {sorted(allowed)}.")

    @classmethod
    def from_dataset(cls, train, **kwargs):
        """The hypermodel for `train` (a `MultiLabelDataset`): its class names,
        ML-GCN prior A0 and label density; `kwargs` go to the constructor."""
        kwargs = {**MMDSRImageClassifier.dataset_arguments(train), **kwargs}
        return cls(kwargs.pop("class_names"), **kwargs)

    @staticmethod
    def hyperparameter_names():
        """Names of every hyperparameter of the space (see the class docstring)."""
        return [
            "graph", "num_perspectives", "sparsity_threshold", "prior_weight",
            "global_weight", "trainable_global_weight", "units", "node_units",
            "cross_layer", "num_heads", "dual_branch", "reduction",
            "learning_rate", "backbone_lr_multiplier", "weight_decay",
            "batch_size", "epochs", "frozen_learning_rate",
        ]

    def describe(self):
        """A JSON-able description of the space and the dataset facts it was made for."""
        return {
            "class_names": self.class_names,
            "image_size": self.image_size,
            "backbone": self.backbone if isinstance(self.backbone, str) else repr(self.backbone),
            "weights": self.weights,
            "freeze_backbone": self.freeze_backbone,
            "units": list(self.units),
            "node_units": list(self.node_units),
            "batch_size": list(self.batch_size),
            "epochs": None if self.epochs is None else list(self.epochs),
            "fixed": self.fixed,
            **({"head_arguments": self.head_arguments} if self.head_arguments else {}),
            "seed": self.seed,
            # XLA or not changes no result worth refusing a resume for.
            "training": {k: v for k, v in self.base_config.to_dict().items()
                         if k not in ("learning_rate", "backbone_lr_multiplier",
                                      "weight_decay", "batch_size", "epochs", "jit_compile")},
        }

    # -- the search space --------------------------------------------------

    def _get(self, hp, name, declare):
        if name in self.fixed:
            return hp.Fixed(name, self.fixed[name])
        return declare()

    def _int_choice(self, hp, name, values):
        if len(values) == 1:
            return self._get(hp, name, lambda: hp.Fixed(name, values[0]))
        return self._get(hp, name, lambda: hp.Choice(name, list(values), default=_median(values)))

    def model_hyperparameters(self, hp):
        """Declares (or reads) the model's hyperparameters; returns `build_mmdsr` kwargs."""
        get = self._get
        graph = get(hp, "graph", lambda: hp.Choice("graph", list(GRAPH_CHOICES), default="dynamic"))
        with hp.conditional_scope("graph", ["dynamic"]):
            num_perspectives = get(hp, "num_perspectives",
                                   lambda: hp.Int("num_perspectives", 2, 16, step=2, default=8))
            sparsity = get(hp, "sparsity_threshold",
                           lambda: hp.Float("sparsity_threshold", 0.0, 0.5, step=0.05, default=0.0))
            prior_weight = get(hp, "prior_weight",
                               lambda: hp.Float("prior_weight", 0.0, 1.0, step=0.1, default=0.5))
        global_weight = get(hp, "global_weight",
                            lambda: hp.Float("global_weight", 0.0, 1.0, step=0.1, default=0.5))
        trainable_alpha = get(hp, "trainable_global_weight",
                              lambda: hp.Boolean("trainable_global_weight", default=False))
        units = self._int_choice(hp, "units", self.units)
        node_units = self._int_choice(hp, "node_units", self.node_units)
        cross_layer = get(hp, "cross_layer", lambda: hp.Boolean("cross_layer", default=True))
        with hp.conditional_scope("cross_layer", [True]):
            heads = self.head_choices
            num_heads = get(hp, "num_heads", lambda: hp.Choice(
                "num_heads", list(heads), default=4 if 4 in heads else heads[-1]))
        dual_branch = get(hp, "dual_branch", lambda: hp.Boolean("dual_branch", default=True))
        with hp.conditional_scope("dual_branch", [True]):
            reduction = get(hp, "reduction", lambda: hp.Choice(
                "reduction", list(REDUCTION_CHOICES), default=4))
        return dict(
            graph=graph,
            # Inactive (None) values only feed parts of the model that are off.
            num_perspectives=num_perspectives or 8,
            sparsity_threshold=sparsity or 0.0,
            prior_weight=0.5 if prior_weight is None else prior_weight,
            global_weight=global_weight,
            trainable_global_weight=bool(trainable_alpha),
            units=units,
            node_units=node_units,
            cross_layer=bool(cross_layer),
            num_heads=num_heads or 1,
            dual_branch=bool(dual_branch),
            reduction=reduction or 4,
        )

    def training_hyperparameters(self, hp):
        """Declares (or reads) the training hyperparameters; returns them as a dict."""
        get = self._get
        multiplier_default = 1.0 if self.weights is None else 0.1
        base = self.base_config
        # AdamW's rates live two decades below SGD's.
        low, high = (1e-5, 1e-2) if base.optimizer == "adamw" else (1e-3, 0.3)
        values = dict(
            learning_rate=get(hp, "learning_rate", lambda: hp.Float(
                "learning_rate", low, high, sampling="log",
                default=min(max(base.learning_rate, low), high))),
            backbone_lr_multiplier=get(hp, "backbone_lr_multiplier", lambda: hp.Float(
                "backbone_lr_multiplier", 0.01, 1.0, sampling="log", default=multiplier_default)),
            weight_decay=get(hp, "weight_decay", lambda: hp.Float(
                "weight_decay", 1e-5, 1e-3, sampling="log", default=1e-4)),
            batch_size=self._int_choice(hp, "batch_size", self.batch_size),
        )
        if self.epochs is not None or "epochs" in self.fixed:
            values["epochs"] = self._int_choice(hp, "epochs", self.epochs or ())
        if base.frozen_epochs > 0:
            values["frozen_learning_rate"] = get(hp, "frozen_learning_rate", lambda: hp.Float(
                "frozen_learning_rate", 3e-4, 3e-2, sampling="log",
                default=min(max(base.frozen_learning_rate, 3e-4), 3e-2)))
        return values

    def training_config(self, hp, epochs=None):
        """The `TrainingConfig` of a trial (`epochs` overrides the hyperparameter)."""
        values = self.training_hyperparameters(hp)
        if epochs is not None:
            values["epochs"] = int(epochs)
        elif "epochs" not in values:
            raise keras_tuner.errors.FatalValueError(
                "MMDSRHyperModel(epochs=None) trains for the `epochs` the tuner passes to "
                "fit (Hyperband does); this tuner passed none: give `epochs`."
            )
        return TrainingConfig.from_dict({**self.base_config.to_dict(), **values})

    def build(self, hp):
        """A new MMDSR for `hp`, its initial weights fixed by `seed`."""
        keras.utils.set_random_seed(self.seed)
        kwargs = self.model_hyperparameters(hp)
        # Declared here too, so that the oracle knows them from the first trial on.
        self.training_hyperparameters(hp)
        return build_mmdsr(
            class_names=self.class_names,
            backbone=self.backbone,
            image_size=self.image_size,
            weights=self.weights,
            freeze_backbone=self.freeze_backbone,
            label_prior=self.label_prior,
            label_density=self.label_density,
            **self.head_arguments,
            **kwargs,
        )

    # -- training ------------------------------------------------------------

    def fit(self, hp, model, x, validation_data=None, callbacks=None, verbose=1,
            epochs=None, initial_epoch=0, **kwargs):
        """Trains `model` on `x` and returns the `History` (with `val_mAP`).

        Args:
            hp: the trial's `HyperParameters`.
            model: the model from `build(hp)`.
            x: the training `MultiLabelDataset`.
            validation_data: the validation `MultiLabelDataset` (required).
            callbacks: more callbacks (KerasTuner's own come last).
            verbose: Keras verbosity.
            epochs, initial_epoch: set by Hyperband; None: the `epochs`
                hyperparameter.
            **kwargs: passed to `model.fit`.

        Raises:
            keras_tuner.errors.FailedTrialError: the loss became NaN/Inf, the
                predictions NaN, or `val_mAP` was NaN at every epoch.
        """
        train, val = x, validation_data
        check_trial_data(train, val)
        initial_epoch = int(initial_epoch or 0)
        config = self.training_config(hp, epochs)
        total_epochs = config.epochs
        # The schedule spans the epochs this call trains (Hyperband continues a
        # trial from its checkpoint with a fresh optimizer).
        config = TrainingConfig.from_dict(
            {**config.to_dict(), "epochs": max(1, total_epochs - initial_epoch)}
        )
        if not config.train_backbone_batchnorm and self.weights is not None:
            # Pretrained statistics are kept (a random backbone has none to keep).
            freeze_backbone_batchnorm(model)
        try:
            history, val_map = self._fit_phases(
                model, config, train, val, total_epochs, initial_epoch, callbacks, verbose,
                **kwargs)
        except TrainingDivergedError as error:
            raise failed_trial(error, hp) from None
        check_trial(hp, history, val_map)
        return history

    def _fit_phases(self, model, config, train, val, total_epochs, initial_epoch, callbacks,
                    verbose, **kwargs):
        if config.frozen_epochs > 0 and initial_epoch == 0:
            # The transfer recipe's phase 1, on the cache every trial shares.
            fit_frozen_phase(model, self._feature_cache(model, train, config), config)
        steps = steps_per_epoch(len(train), config.batch_size)
        with _strategy_scope(model):
            compile_for_training(model, config, steps)
        train_data = train.to_tf_dataset(self.image_size, config.batch_size, training=True,
                                         seed=self.seed, on_error=self.on_error)
        val_data = val.to_tf_dataset(self.image_size, self.eval_batch_size,
                                     with_ignore_mask=True, on_error=self.on_error)
        val_map = MeanAveragePrecisionCallback(val_data, verbose=1 if verbose else 0)
        history = model.fit(
            train_data,
            epochs=total_epochs,
            initial_epoch=initial_epoch,
            # The guard first: a diverged trial stops before the epoch's val mAP.
            callbacks=[NonFiniteLossGuard("trial"), val_map, *(callbacks or [])],
            verbose=verbose,
            **kwargs,
        )
        return history, val_map

    def _feature_cache(self, model, train, config):
        if self.feature_cache_dir is None:
            import tempfile

            self.feature_cache_dir = tempfile.mkdtemp(prefix="mmdsr_feature_cache_")
        cache = StageFeatureCache.compute(model, train, self.image_size, self.feature_cache_dir,
                                          views=config.cache_views, seed=self.seed)
        return cache.load_into_memory()


def _strategy_scope(model):
    """The model's `tf.distribute` strategy scope on TensorFlow (a no-op elsewhere)."""
    if keras.backend.backend() == "tensorflow" and hasattr(model, "distribute_strategy"):
        return model.distribute_strategy.scope()
    return contextlib.nullcontext()
