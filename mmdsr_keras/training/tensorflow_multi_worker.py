"""TensorFlow multi-worker training: `model.fit` under `MultiWorkerMirroredStrategy`.

Every worker process runs the same program; `TF_CONFIG` tells each one the
cluster and its own index. Keras 3.15's `fit` does not run under this
strategy as shipped (keras-team/keras#20585): two reductions in its
TensorFlow trainer fail on a multi-worker strategy, and
`patch_keras_multi_worker_reductions` replaces them (see there). With that,
the workers' weights equal a single-process run's (tests/training).
"""

import contextlib
import json
import os

import keras

from mmdsr_keras.training.run_directory import worker_folder


def patch_keras_multi_worker_reductions():
    """Makes Keras' TensorFlow trainer reduce correctly under a multi-worker strategy.

    Two places in `keras.src.backend.tensorflow.trainer` call
    `strategy.reduce` on values it cannot take across workers:

    - `_maybe_symbolic_build` reduces the first (per-replica) input batch
      to build the model's metrics; on a multi-worker strategy that raises
      `ValueError: Attempt to convert a value (PerReplica...)`. Only the
      batch's structure and shapes matter there, so this uses the local
      replica's batch.
    - `reduce_per_replica` averages the step's scalar logs with
      `strategy.reduce("MEAN", v, axis=0)`, which fails on a scalar
      (`Invalid reduction dimension 0 for input with 0 dimensions`); this
      averages across replicas (`axis=None`) instead.

    Gradients are not touched: the strategy all-reduces them as before.
    Idempotent; the other strategies and backends are unaffected.
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer
    import tensorflow as tf

    if getattr(trainer, "_mmdsr_multi_worker_patch", False):
        return
    reduce_per_replica = trainer.reduce_per_replica

    def multi_worker_reduce_per_replica(values, strategy, reduction):
        if (reduction in ("auto", "mean")
                and trainer._collective_all_reduce_multi_worker(strategy)):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(
                    lambda v: (self.distribute_strategy.experimental_local_results(v)[0]
                               if isinstance(v, tf.distribute.DistributedValues) else v),
                    next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = multi_worker_reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer._mmdsr_multi_worker_patch = True


class TensorFlowWorkerGroup:
    """The worker processes of one `MultiWorkerMirroredStrategy` run, seen from one of them.

    Worker 0 is the chief: only it writes the run folder. Each worker feeds
    its own rows of every global batch (`distribute`), so the batch the user
    gives stays the global batch, every image is decoded by one worker only
    and the learning-rate schedule counts global steps. One device per
    worker process: on a machine with several GPUs, start one worker per
    GPU (`CUDA_VISIBLE_DEVICES`).

    Args:
        tf_config: the cluster as `TF_CONFIG` gives it (a dict). Defaults to
            None: read from the `TF_CONFIG` environment variable.

    Example:
    >>> group = TensorFlowWorkerGroup({"cluster": {"worker": ["a:1", "b:2"]},
    ...                                "task": {"type": "worker", "index": 1}})
    >>> group.num_processes, group.process_id, group.is_chief
    (2, 1, False)
    """

    def __init__(self, tf_config=None):
        if tf_config is None:
            text = os.environ.get("TF_CONFIG")
            if not text:
                raise ValueError("multi-worker training needs the TF_CONFIG environment "
                                 "variable (the cluster and this worker's index); "
                                 "docs/distributed.md shows one per worker.")
            try:
                tf_config = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
        try:
            workers = tf_config["cluster"]["worker"]
            task = tf_config["task"]
            index = int(task["index"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("TF_CONFIG must hold cluster.worker (a list of host:port) and "
                             "task.index (this worker's position in it), got "
                             f"{json.dumps(tf_config)}.") from None
        if task.get("type", "worker") != "worker" or not 0 <= index < len(workers):
            raise ValueError(f"TF_CONFIG task {json.dumps(task)}: expected type 'worker' and "
                             f"an index in 0..{len(workers) - 1}.")
        self.num_processes = len(workers)
        self.process_id = index
        self.strategy = None

    @property
    def is_multi_process(self):
        return self.num_processes > 1

    @property
    def is_chief(self):
        return self.process_id == 0

    def initialize(self):
        """Joins the cluster. Call it before any other TensorFlow operation runs.

        Returns:
            The `tf.distribute.MultiWorkerMirroredStrategy`.
        """
        if keras.backend.backend() != "tensorflow":
            raise ValueError("multi-worker training with TF_CONFIG needs "
                             f"KERAS_BACKEND=tensorflow, not {keras.backend.backend()}.")
        import tensorflow as tf

        patch_keras_multi_worker_reductions()
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy()
        if self.strategy.num_replicas_in_sync != self.num_processes:
            raise ValueError(
                f"{self.strategy.num_replicas_in_sync} replicas over {self.num_processes} "
                "workers: run one worker process per device (on a machine with several "
                "GPUs, one per GPU through CUDA_VISIBLE_DEVICES).")
        return self.strategy

    def scope(self):
        """The context in which to build and compile the model."""
        return self.strategy.scope() if self.strategy else contextlib.nullcontext()

    def distribute(self, make_dataset):
        """The distributed dataset of `make_dataset(shard)` for `model.fit`.

        Args:
            make_dataset: a function of `(num_shards, index)` returning this
                worker's batches (`MultiLabelDataset.to_tf_dataset(shard=...)`).
        """
        import tensorflow as tf

        def worker_dataset(context):
            dataset = make_dataset((context.num_input_pipelines, context.input_pipeline_id))
            options = tf.data.Options()
            # Already cut to this worker's rows: no second sharding.
            options.experimental_distribute.auto_shard_policy = (
                tf.data.experimental.AutoShardPolicy.OFF)
            return dataset.with_options(options)

        return self.strategy.distribute_datasets_from_function(worker_dataset)

    def finish(self):
        """Nothing to wait for: a TensorFlow worker may leave once training is done."""

    def worker_folder(self, chief_folder=None):
        """A temporary folder for a non-chief's run files (see `run_directory.worker_folder`)."""
        return worker_folder(self.process_id, chief_folder)

