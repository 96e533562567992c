"""Run by test_device_distribution.py in a fresh process: fit on 2 virtual CPU devices.

Usage: KERAS_BACKEND=tensorflow|jax python distributed_fit_script.py mirrored|data-parallel
Prints one JSON line with the replica count and the losses.
"""

import json
import os
import sys

kind = sys.argv[1]
if os.environ.get("KERAS_BACKEND") == "jax":
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
else:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402

import mmdsr_keras  # noqa: E402
from mmdsr_keras.data import load_dataset  # noqa: E402
from mmdsr_keras.training.device_distribution import distribution_scope  # noqa: E402
from mmdsr_keras.training.multi_label_trainer import (  # noqa: E402
    TrainingConfig,
    compile_for_training,
)

data = load_dataset("shapes", split="train", num_images=32, image_size=32)
config = TrainingConfig(epochs=5, batch_size=8, learning_rate=0.05, backbone_lr_multiplier=1.0,
                        warmup_epochs=0, schedule="constant")
keras.utils.set_random_seed(0)
with distribution_scope(kind) as scope:
    model = mmdsr_keras.build_mmdsr(class_names=data.class_names, backbone="mobilenet_0.25",
                                    image_size=32, weights=None, units=8, num_heads=2)
    compile_for_training(model, config, steps_per_epoch=4)
    if kind == "mirrored":
        replicas = scope.num_replicas_in_sync
    else:
        replicas = int(np.prod(list(scope.device_mesh.shape.values())
                               if isinstance(scope.device_mesh.shape, dict)
                               else scope.device_mesh.shape))
    # a fixed, un-augmented batch stream: the loss must fall
    history = model.fit(data.to_tf_dataset(32, config.batch_size),
                        epochs=config.epochs, verbose=0)
    placed = None
    if kind == "data-parallel":
        placed = len(model.weights[0].value.sharding.device_set)
print(json.dumps({"replicas": replicas, "losses": history.history["loss"], "placed": placed}))
