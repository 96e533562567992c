"""The frozen-backbone phase of the transfer recipe: the head alone, on cached stage features."""

import keras
import numpy as np

from mmdsr_keras.models.head_model import build_head_model, stage_tensors
from mmdsr_keras.models.mmdsr import GLOBAL_LINEAR_LAYER, build_deep_supervision_model
from mmdsr_keras.training.deep_supervision_loss import DeepSupervisionLoss
from mmdsr_keras.training.feature_standardization import fit_feature_standardization
from mmdsr_keras.training.multi_label_trainer import make_loss
from mmdsr_keras.training.non_finite_loss_guard import NonFiniteLossGuard
from mmdsr_keras.training.parameter_group_sgd import ParameterGroupSGD
from mmdsr_keras.training.stage_feature_cache import PLAIN_VIEW, CachedFeatureBatches
from mmdsr_keras.training.warmup_decay_schedule import WarmupDecaySchedule

FROZEN_OPTIMIZERS = ("adamw", "sgd")


def freeze_backbone_batchnorm(model, backbone_layer="backbone"):
    """Puts every BatchNormalization of the backbone in inference mode for good.

    Keras runs a layer with `trainable = False` in inference mode, so its
    moving statistics stay the pretrained ones and its scale and shift stop
    training: the rule of Keras' transfer-learning guide, which keeps small
    fine-tuning batches from overwriting ImageNet statistics.

    Returns:
        The number of BatchNormalization layers frozen.

    Example:
    >>> import mmdsr_keras
    >>> model = mmdsr_keras.build_baseline("gap", num_classes=2, backbone="mobilenet_0.25",
    ...                                    image_size=32, weights=None)
    >>> freeze_backbone_batchnorm(model)
    27
    """
    frozen = 0
    for layer in model.get_layer(backbone_layer)._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
            frozen += 1
    return frozen


def make_frozen_phase_optimizer(config, steps_per_epoch, decay="cosine"):
    """The head's optimizer of the frozen phase (one group: only the head trains).

    `decay` is the `WarmupDecaySchedule` decay over `config.frozen_epochs`
    epochs of `steps_per_epoch` (`"constant"` for an open-ended phase).

    AdamW by default: its step does not scale with the gradient, which lets
    every head type learn at one rate from step 0 (MMDSR's head starts with a
    gradient norm ~12x smaller than a GMP head's, and SGD at the rate that suits
    one stalls or diverges the other).
    """
    schedule = WarmupDecaySchedule(
        config.frozen_learning_rate, total_steps=max(1, config.frozen_epochs * steps_per_epoch),
        decay=decay,
    )
    if config.frozen_optimizer == "adamw":
        return keras.optimizers.AdamW(
            schedule, weight_decay=config.frozen_weight_decay,
            global_clipnorm=config.clip_global_norm, use_ema=config.ema,
        )
    return ParameterGroupSGD(schedule, momentum=config.momentum,
                             l2_weight_decay=config.frozen_weight_decay,
                             clip_global_norm=config.clip_global_norm, use_ema=config.ema)


def fit_frozen_phase(model, cache, config, rows=None, callbacks=(), verbose=0, first_epoch=0):
    """Trains `model`'s head for `config.frozen_epochs` epochs on a `StageFeatureCache`.

    The head model shares its weights with `model`, so `model` holds the
    trained head afterwards; its backbone is untouched. Each epoch draws every
    training image once, under a random cached view.

    Args:
        model: a model built by this package.
        cache: the `StageFeatureCache` of the training images.
        config: the `TrainingConfig` (`frozen_*` fields, batch size, loss,
            seed, clip norm).
        rows: the cache rows to train on. Defaults to all.
        callbacks: Keras callbacks of the head's `fit`.
        verbose: Keras verbosity. Defaults to 0.
        first_epoch: the epoch to start at (to resume). Defaults to 0.

    Heads with a standardised linear path (`linear_l2 > 0`) first get their
    feature statistics from the training rows (`fit_feature_standardization`).
    With `config.linear_first` and MMDSR's global linear path, that path is
    fitted alone first (`config.frozen_epochs` epochs, as a linear probe),
    then kept fixed while the rest of the head trains on top of it.
    With `config.deep_supervision` (MMDSR) the head trains on the loss of the
    fused logits plus that of s_m and s_r (`DeepSupervisionLoss`).

    Returns:
        The head model (compiled), or None when `config.frozen_epochs` is 0.
    """
    if config.frozen_epochs <= 0:
        return None
    if config.frozen_optimizer not in FROZEN_OPTIMIZERS:
        raise ValueError(f"frozen_optimizer={config.frozen_optimizer!r}; expected one of "
                         f"{FROZEN_OPTIMIZERS}.")
    loss = make_loss(config.loss)
    if config.deep_supervision:
        head = build_deep_supervision_model(model, inputs=stage_tensors(model))
        loss = DeepSupervisionLoss(loss, config.deep_supervision)
    else:
        head = build_head_model(model)
    # The same statistics on a resume: they are a function of the cache rows.
    fit_feature_standardization(model, cache, rows=rows)
    linear = _linear_path(model) if config.linear_first else None
    if linear is not None and first_epoch == 0:
        # A resumed run restores the fitted path with the rest of the head.
        _fit_linear_path(model, linear, cache, config, rows, verbose)
    if linear is not None:
        linear.trainable = False
    batches = CachedFeatureBatches(cache, rows=rows, batch_size=config.batch_size,
                                   seed=config.seed, first_epoch=first_epoch)
    head.compile(optimizer=make_frozen_phase_optimizer(config, len(batches)),
                 loss=loss, jit_compile=config.jit_compile)
    try:
        head.fit(batches, epochs=config.frozen_epochs, initial_epoch=first_epoch,
                 callbacks=[NonFiniteLossGuard(
                     "frozen phase", "lower the head's rate (frozen_learning_rate)")]
                 + list(callbacks), verbose=verbose)
        if config.ema:
            # Over the variables this optimizer trained (the fixed path is not one).
            head.optimizer.finalize_variable_values(head.trainable_variables)
    finally:
        # Also after a diverged or interrupted phase: the path trains again later.
        if linear is not None:
            linear.trainable = True
    return head


def _linear_path(model):
    try:
        return model.get_layer(GLOBAL_LINEAR_LAYER)
    except ValueError:
        return None


def _fit_linear_path(model, linear, cache, config, rows, verbose):
    """`linear_first`: the global linear path alone, as a probe, on the cached views."""
    path = keras.Model(stage_tensors(model), linear.output, name=f"{model.name}_linear_path")
    batches = CachedFeatureBatches(cache, rows=rows, batch_size=config.batch_size,
                                   seed=config.seed + 1)
    path.compile(optimizer=make_frozen_phase_optimizer(config, len(batches)),
                 loss=make_loss(config.loss), jit_compile=config.jit_compile)
    path.fit(batches, epochs=config.frozen_epochs, verbose=verbose, callbacks=[
        NonFiniteLossGuard("frozen phase, linear path", "lower frozen_learning_rate")])


def predict_cached(model, cache, rows=None, views=(PLAIN_VIEW,), batch_size=64):
    """Logits of `model`'s head on cached features, averaged over `views`.

    `views=(0, 1)` is flip test-time augmentation (plain and mirrored image).

    Returns:
        float32 array `(len(rows), C)`.
    """
    head = build_head_model(model)
    rows = np.arange(len(cache)) if rows is None else np.asarray(rows)
    total = 0.0
    for view in views:
        parts = []
        for start in range(0, len(rows), batch_size):
            x = cache.features(rows[start:start + batch_size], view)
            parts.append(keras.ops.convert_to_numpy(head.predict_on_batch(x)))
        total = total + np.concatenate(parts).astype(np.float32)
    return total / len(views)
