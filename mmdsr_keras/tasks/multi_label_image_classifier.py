"""`MultiLabelImageClassifier`: what every task of the package shares (backbone, compile, presets)."""

import keras

from mmdsr_keras.backbones.feature_extractor import (
    as_preprocessing_layer,
    build_stage_model,
)
from mmdsr_keras.models.head_model import build_head_model
from mmdsr_keras.training.frozen_backbone_phase import make_frozen_phase_optimizer
from mmdsr_keras.training.multi_label_trainer import TrainingConfig, make_loss, make_optimizer
from mmdsr_keras.training.training_recipe import recipe_defaults

# Version of the task configs written by `get_config`; `from_config` refuses
# newer ones rather than guess their meaning.
CONFIG_VERSION = 1
PHASES = ("fine-tune", "frozen")


class MultiLabelImageClassifier(keras.Model):
    """Raw RGB images -> preprocessing -> backbone stages -> a head -> per-class logits.

    The base of `MMDSRImageClassifier` and `BaselineImageClassifier`, in
    keras-hub's functional-subclass style: a subclass builds its layers, calls
    `self._stage_features(...)` for the backbone part of the graph and passes
    inputs and logits to `keras.Model.__init__`. It is a functional model, so
    `summary()`, `get_layer` and `.keras` saving work as for any other; the
    backbone's stage-feature view is the layer named `"backbone"`.

    Attributes:
        backbone: the backbone network given (a `keras.Model`, e.g. a
            keras-hub `FeaturePyramidBackbone`).
        class_names: the C class names, in logit order.
        head: a `keras.Model` from the stage features to the logits, sharing
            every weight with this model (new on each access).
    """

    model_type = None

    def __setattr__(self, name, value):
        # A task sets its layers before `keras.Model.__init__` (the functional
        # graph then tracks them); torch's Module refuses sub-modules before its
        # own `__init__` has made `_modules`, so those go to the instance dict.
        if keras.config.backend() == "torch" and "_modules" not in self.__dict__:
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)

    def _stage_features(self, backbone, stages, image_size, preprocessing):
        """`(inputs, stage tensors)` of the graph; sets the shared attributes."""
        # === Layers ===
        self.backbone = backbone
        self.image_preprocessing = as_preprocessing_layer(preprocessing)
        stage_model = build_stage_model(backbone, stages)
        # === Functional Model ===
        if image_size is None:
            image_size = tuple(backbone.input_shape[1:3])
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        if height is None or width is None:
            raise ValueError(
                f"backbone {backbone.name!r} takes images of any size: give "
                "image_size=(height, width) for the classifier's input."
            )
        inputs = keras.Input((int(height), int(width), 3), name="image")
        features = stage_model(self.image_preprocessing(inputs))
        self._shared_config = dict(
            stages=list(stages), image_size=[int(height), int(width)],
            preprocessing=preprocessing,
        )
        return inputs, list(features)

    @property
    def class_names(self):
        return list(self._class_names)

    @property
    def head(self):
        return build_head_model(self)

    def compile(self, optimizer="auto", loss="auto", metrics=None, phase="fine-tune",
                epochs=None, steps_per_epoch=None, **kwargs):
        """Compiles with the package's `transfer` recipe for one training phase.

        `"auto"` gives the recipe's pieces (`mmdsr_keras.training.recipe_defaults`):
        BCE on logits, and
        - `phase="fine-tune"`: `ParameterGroupAdamW` at the head's rate with the
          backbone at a tenth of it (`backbone_lr_multiplier`);
        - `phase="frozen"`: AdamW at the recipe's frozen-phase rate for this
          head type (set `model.backbone.trainable = False` first).
        With `epochs` and `steps_per_epoch` the rate follows the recipe's
        cosine decay over them; without, it is constant. The two-phase run
        (frozen head on cached features, then fine-tuning) is
        `mmdsr_keras.training.fit` with a `TrainingConfig`, or `mmdsr-keras train`.

        Args:
            optimizer: `"auto"` or a Keras optimizer. Defaults to `"auto"`.
            loss: `"auto"` or a Keras loss. Defaults to `"auto"`.
            metrics: as in `keras.Model.compile`. Defaults to None.
            phase: `"fine-tune"` or `"frozen"`. Defaults to `"fine-tune"`.
            epochs: length of the decay, with `steps_per_epoch`.
            steps_per_epoch: batches per epoch.
            **kwargs: passed to `keras.Model.compile`.
        """
        if phase not in PHASES:
            raise ValueError(f"phase={phase!r}; expected one of {PHASES}.")
        defaults = recipe_defaults("transfer", self.model_type)
        schedule = "cosine" if epochs and steps_per_epoch else "constant"
        config = TrainingConfig.from_dict(
            {**defaults, "frozen_epochs": epochs or 1, "epochs": epochs or 1,
             "schedule": schedule})
        if isinstance(loss, str) and loss == "auto":
            loss = make_loss(config.loss)
        if isinstance(optimizer, str) and optimizer == "auto":
            steps = steps_per_epoch or 1
            optimizer = (make_optimizer(self, config, steps) if phase == "fine-tune"
                         else make_frozen_phase_optimizer(config, steps, decay=schedule))
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # Keras skips a custom `compile` when loading; this one takes the
        # saved optimizer and loss as they are, so a loaded model resumes.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    @classmethod
    def from_preset(cls, preset, load_weights=True):
        """The classifier saved by `save_to_preset` (or a run folder holding `preset/`).

        Example:
        >>> import tempfile, mmdsr_keras
        >>> model = mmdsr_keras.build_mmdsr(num_classes=2, backbone="mobilenet_0.25",
        ...                                 image_size=64, weights=None, units=8, num_heads=2)
        >>> folder = tempfile.mkdtemp() + "/preset"
        >>> model.save_to_preset(folder)
        >>> type(mmdsr_keras.MMDSRImageClassifier.from_preset(folder)).__name__
        'MMDSRImageClassifier'
        """
        from mmdsr_keras.tasks.classifier_preset import load_classifier_preset

        model = load_classifier_preset(preset, load_weights=load_weights)
        if not isinstance(model, cls):
            raise ValueError(
                f"{preset}: the preset holds a {type(model).__name__}, not a {cls.__name__}; "
                f"load it with {type(model).__name__}.from_preset."
            )
        return model

    def save_to_preset(self, preset_dir, overwrite=False):
        """Saves config, weights and metadata in keras-hub's preset layout.

        Files: `config.json` + `model.weights.h5` (the backbone),
        `task.json` + `task.weights.h5` (the whole classifier) and
        `metadata.json`. The folder must not hold a preset already, unless
        `overwrite`.
        """
        from mmdsr_keras.tasks.classifier_preset import save_classifier_preset

        save_classifier_preset(self, preset_dir, overwrite=overwrite)

    def _task_config(self, head_config):
        shared = dict(self._shared_config)
        if isinstance(shared["preprocessing"], keras.layers.Layer):
            shared["preprocessing"] = keras.saving.serialize_keras_object(
                shared["preprocessing"])
        return {
            "name": self.name,
            "trainable": self.trainable,
            "config_version": CONFIG_VERSION,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "class_names": self.class_names,
            **shared,
            **head_config,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        version = config.pop("config_version", None)
        if version is None or version > CONFIG_VERSION:
            raise ValueError(
                f"{cls.__name__} config version {version!r}: this mmdsr-keras reads "
                f"versions 1 to {CONFIG_VERSION}; save it again with this version, "
                "or upgrade mmdsr-keras."
            )
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if isinstance(config.get("preprocessing"), dict):
            config["preprocessing"] = keras.saving.deserialize_keras_object(
                config["preprocessing"])
        trainable = config.pop("trainable", True)
        model = cls(**config)
        if not trainable:
            model.trainable = False
        return model
