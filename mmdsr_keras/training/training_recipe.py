"""The CLI's named training recipes: what `mmdsr-keras train` runs when only data is given.

Two recipes, chosen by `--recipe` (default: `transfer` for a pretrained
backbone, `ml-gcn` for one trained from scratch):

- `transfer` (small and medium datasets on a pretrained backbone): the
  backbone's BatchNorms stay in inference mode; a frozen-backbone phase trains
  the head alone with AdamW on cached backbone features (a few augmented views
  per image, `StageFeatureCache`); an optional fine-tuning phase (`epochs`,
  default 0: on the real-image benchmark it cost mAP) trains everything with
  AdamW, the backbone at a tenth of the head's rate (`ParameterGroupAdamW`).
  MMDSR's head gets a probe-fitted linear path and an L2 penalty on its
  kernels (`TRANSFER_MMDSR_HEAD`), GAP's and GMP's classifier the same L2
  fit. Last, each class's logit gets a Platt scale and bias fitted on the
  training images (`calibrate`, `score_calibration.py`): the L2-shrunk scores
  otherwise pass 0.5 for few labels. Its numbers were chosen by 5-fold cross-validation
  on real COCO and VOC 2007 images (`bench/quality.py`, `docs/BENCHMARKS.md`).
- `ml-gcn` (paper-scale runs, ML-GCN's protocol): no frozen phase, SGD with
  momentum (head lr 0.1, backbone x0.1, coupled weight decay 1e-4), cosine
  decay, BatchNorms in training mode.

Every value can be overridden by its CLI flag or `TrainingConfig` field.
"""

RECIPES = ("transfer", "ml-gcn")
# The frozen phase trains on a budget of image views rather than a fixed epoch
# count: ~40 epochs of a few hundred images, ~10 of a thousand.
FROZEN_PHASE_VIEWS = 12_000
FROZEN_PHASE_EPOCH_RANGE = (8, 40)

# The frozen phase's AdamW rate per head type: MMDSR's head, with its
# attention and graph layers, wants a different rate than a single Dense layer.
TRANSFER_FROZEN_LEARNING_RATE = {"mmdsr": 3e-3, "gap": 1e-2, "gmp": 1e-2, "mlgcn": 1e-2}

# The transfer recipe fits the linear classifier of the GAP and GMP heads as a
# linear probe is fitted: on standardised pooled features with a strong L2
# penalty (5-fold CV on coco-mini and VOC 2007: +3 mAP over an unpenalised
# Dense).
TRANSFER_LINEAR_L2 = {"mmdsr": 5e-3, "gap": 5e-3, "gmp": 5e-3, "mlgcn": 0.0}

# The transfer recipe's MMDSR head: the design's graph head plus a linear path
# on the last stage's pooled features, fitted as the GAP head's classifier,
# and an L2 penalty on the kernels of the attention, dual-branch and graph
# layers. The path alone pushes the fit onto the unpenalised graph, the
# penalty alone starves the graph (coco-mini fold 0: 41.5 against 47.4);
# together they beat GAP in 5/5 coco-mini folds (docs/BENCHMARKS.md §0h).
# The path pools by [mean, max]: max is the better view on VOC (the GMP
# head beats GAP there), mean on coco-mini; both together beat the mean
# alone on VOC by +0.75 OOF mAP, CI excluding 0 (§0n).
TRANSFER_MMDSR_HEAD = dict(global_linear=True, global_pooling="average_max",
                           linear_l2=TRANSFER_LINEAR_L2["mmdsr"], head_l2=5e-3)
DESIGN_MMDSR_HEAD = dict(global_linear=False, global_pooling="average", linear_l2=0.0,
                         head_l2=0.0)

TRANSFER = dict(
    frozen_epochs="auto", frozen_optimizer="adamw", frozen_weight_decay=1e-4, cache_views=4,
    epochs=0, optimizer="adamw", learning_rate=1e-3, backbone_lr_multiplier=0.1,
    weight_decay=1e-4, warmup_epochs=0.0, schedule="cosine", batch_size=16,
    train_backbone_batchnorm=False, loss="bce", calibrate=True,
)
ML_GCN = dict(
    frozen_epochs=0, frozen_optimizer="adamw", frozen_learning_rate=1e-2,
    frozen_weight_decay=1e-4, cache_views=4, epochs=20, optimizer="sgd", learning_rate=0.1,
    backbone_lr_multiplier=0.1,
    weight_decay=1e-4, warmup_epochs=1.0, schedule="cosine", batch_size=16,
    train_backbone_batchnorm=True, loss="bce", calibrate=False,
)


def frozen_phase_epochs(num_images, views=FROZEN_PHASE_VIEWS, epoch_range=FROZEN_PHASE_EPOCH_RANGE):
    """`frozen_epochs="auto"`: about `views` training views, within `epoch_range`.

    Example:
    >>> frozen_phase_epochs(337), frozen_phase_epochs(1181), frozen_phase_epochs(100_000)
    (36, 10, 8)
    """
    low, high = epoch_range
    return int(min(high, max(low, round(views / max(1, int(num_images))))))


def resolve_frozen_epochs(value, num_images):
    """An int `frozen_epochs` from an int or `"auto"` (see `frozen_phase_epochs`)."""
    if value == "auto":
        return frozen_phase_epochs(num_images)
    return int(value)


def recipe_defaults(recipe, model_type="mmdsr"):
    """The `TrainingConfig` field values of a named recipe for one head type.

    Args:
        recipe: `"transfer"` or `"ml-gcn"`.
        model_type: `"mmdsr"`, `"gap"`, `"gmp"` or `"mlgcn"`. Defaults to
            `"mmdsr"`.

    Returns:
        dict of `TrainingConfig` field values; `frozen_epochs` may be
        `"auto"` (resolve it with `resolve_frozen_epochs`).

    Example:
    >>> recipe_defaults("ml-gcn")["learning_rate"]
    0.1
    >>> recipe_defaults("transfer", "gap")["frozen_learning_rate"]
    0.01
    """
    if recipe == "transfer":
        return dict(TRANSFER, frozen_learning_rate=TRANSFER_FROZEN_LEARNING_RATE[model_type])
    if recipe == "ml-gcn":
        return dict(ML_GCN)
    raise ValueError(f"recipe={recipe!r}; expected one of {RECIPES}.")


def recipe_head_arguments(recipe, model_type="mmdsr", frozen_phase=True, global_linear=None):
    """The head arguments a recipe gives one head type.

    The linear classifier's standardisation takes its statistics from the
    frozen phase, so only `transfer` with a frozen phase sets `linear_l2`
    (`TRANSFER_LINEAR_L2`), and MMDSR's head there is `TRANSFER_MMDSR_HEAD`.
    MMDSR's `linear_l2`, `head_l2` and `global_pooling` belong to its global
    linear path: with `global_linear=False` they are 0, 0 and `"average"`.

    Args:
        recipe: `"transfer"` or `"ml-gcn"`.
        model_type: `"mmdsr"`, `"gap"`, `"gmp"` or `"mlgcn"`. Defaults to
            `"mmdsr"`.
        frozen_phase: whether the run has a frozen-backbone phase. Defaults to
            True.
        global_linear: MMDSR's `global_linear` if chosen by the user; None:
            the recipe's.

    Returns:
        dict with `linear_l2`, and for MMDSR `global_linear`, `global_pooling`
        and `head_l2`.

    Example:
    >>> recipe_head_arguments("transfer", "gap"), recipe_head_arguments("ml-gcn", "gap")
    ({'linear_l2': 0.005}, {'linear_l2': 0.0})
    >>> recipe_head_arguments("transfer", "mmdsr", global_linear=False)
    {'global_linear': False, 'global_pooling': 'average', 'linear_l2': 0.0, 'head_l2': 0.0}
    """
    if recipe not in RECIPES:
        raise ValueError(f"recipe={recipe!r}; expected one of {RECIPES}.")
    transfer = recipe == "transfer" and frozen_phase
    if model_type != "mmdsr":
        return {"linear_l2": TRANSFER_LINEAR_L2[model_type] if transfer else 0.0}
    head = dict(TRANSFER_MMDSR_HEAD if transfer else DESIGN_MMDSR_HEAD)
    if global_linear is not None:
        head["global_linear"] = bool(global_linear)
    if not head["global_linear"]:
        head.update({k: v for k, v in DESIGN_MMDSR_HEAD.items() if k != "global_linear"})
    return head


def recipe_linear_l2(recipe, model_type="mmdsr"):
    """The head's `linear_l2` under a recipe with its frozen phase (`recipe_head_arguments`).

    Example:
    >>> recipe_linear_l2("transfer", "gap"), recipe_linear_l2("ml-gcn", "gap")
    (0.005, 0.0)
    """
    return recipe_head_arguments(recipe, model_type)["linear_l2"]
