"""Run by test_multi_worker.py as one worker process: `mmdsr-keras train`, instrumented.

Usage: python multi_worker_script.py OUT.npz TRAIN_ARGUMENTS...

Runs `mmdsr_keras.cli.main(["train", *TRAIN_ARGUMENTS])` (on the backend of
KERAS_BACKEND) with `fit` wrapped so that, after training, the process's own
copy of the weights, the fit time and the step count go to OUT.npz. With
several processes it also times an all-reduce of a vector the size of the
trainable weights over all of them (the communication of one data-parallel
step). With MMDSR_TEST_EXIT_AT=EPOCH,STEP the process exits abruptly
(`os._exit`) after that training step, as a killed worker would.
"""

import os
import sys
import time

import numpy as np

out_file, train_arguments = sys.argv[1], sys.argv[2:]

import keras  # noqa: E402

from mmdsr_keras import cli  # noqa: E402
from mmdsr_keras.commands import train_command  # noqa: E402

real_fit = train_command.fit


def median_seconds(step, repeats=20):
    step()  # compile / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def all_reduce_seconds(model, num_values):
    if keras.backend.backend() == "jax":
        import jax
        import jax.numpy as jnp
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        if jax.process_count() == 1:
            return None
        mesh = Mesh(np.array(jax.devices()), ("processes",))
        local = np.ones((len(jax.local_devices()), num_values), np.float32)
        spread = jax.make_array_from_process_local_data(
            NamedSharding(mesh, PartitionSpec("processes")), local)
        total = jax.jit(lambda a: jnp.sum(a, axis=0),
                        out_shardings=NamedSharding(mesh, PartitionSpec()))
        return median_seconds(lambda: total(spread).block_until_ready())
    import tensorflow as tf

    strategy = model.distribute_strategy
    if strategy.num_replicas_in_sync == 1:
        return None

    @tf.function
    def total():
        values = strategy.run(lambda: tf.ones((num_values,)))
        return strategy.reduce("SUM", values, axis=None)

    return median_seconds(lambda: total().numpy())


class ExitAt(keras.callbacks.Callback):
    def __init__(self, epoch, step):
        super().__init__()
        self.epoch, self.step, self.current = epoch, step, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.step):
            os._exit(3)


def instrumented_fit(model, *args, **kwargs):
    exit_at = os.environ.get("MMDSR_TEST_EXIT_AT")
    if exit_at:
        kwargs["callbacks"] = [ExitAt(*map(int, exit_at.split(",")))] + list(
            kwargs.get("callbacks", ()))
    start = time.perf_counter()
    history = real_fit(model, *args, **kwargs)
    seconds = time.perf_counter() - start
    weights = {f"w{i:03d}": np.asarray(keras.ops.convert_to_numpy(v.value))
               for i, v in enumerate(model.weights)}
    extra = {}
    reduce_s = all_reduce_seconds(model, sum(int(np.prod(v.shape))
                                             for v in model.trainable_weights))
    if reduce_s is not None:
        extra["all_reduce_s"] = reduce_s
    steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations.value))
    np.savez(out_file, fit_s=seconds, steps=steps,
             epochs=len(history.epoch), pid=os.getpid(), **extra, **weights)
    return history


train_command.fit = instrumented_fit
sys.exit(cli.main(["train", *train_arguments]))
