"""JAX multi-process data parallelism: one training run over several worker processes.

Every process calls `keras.distribution.initialize` and trains under one
`keras.distribution.DataParallel` over all processes' devices; gradients are
all-reduced by XLA's collectives (gloo on CPU, NCCL on GPU). The TensorFlow
counterpart is `tensorflow_multi_worker.TensorFlowWorkerGroup`.
"""

import contextlib
import dataclasses
import os

import keras

from mmdsr_keras.training.run_directory import worker_folder

# Read by keras.distribution.initialize when an argument is None.
ENV_COORDINATOR = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
ENV_NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"


@dataclasses.dataclass(frozen=True)
class JaxProcessGroup:
    """The worker processes of one JAX data-parallel run, seen from one of them.

    Process 0 is the chief: only it writes the run folder. Every process
    feeds its own rows of each global batch (`distribute`), so the batch the
    user gives stays the global batch and every image is decoded by one
    process only; `DataParallel` stacks the processes' rows in process
    order, which is the single-process batch row for row.

    Args:
        coordinator_address: `host:port` of process 0 (None: from
            `KERAS_DISTRIBUTION_JOB_ADDRESSES`, or detected by JAX on SLURM).
        num_processes: number of processes (None: from the environment).
        process_id: this process's index, 0 to `num_processes - 1`.

    Example:
    >>> group = JaxProcessGroup.from_arguments(None, 1, 0)
    >>> group.is_chief, group.is_multi_process
    (True, False)
    """

    coordinator_address: str = None
    num_processes: int = None
    process_id: int = None

    @classmethod
    def from_arguments(cls, coordinator_address=None, num_processes=None, process_id=None):
        """The group given by the CLI flags, else by the `KERAS_DISTRIBUTION_*` variables."""
        env = os.environ

        def number(value, name):
            if value is None and env.get(name):
                value = env[name]
            return None if value is None else int(value)

        return cls(coordinator_address or env.get(ENV_COORDINATOR) or None,
                   number(num_processes, ENV_NUM_PROCESSES),
                   number(process_id, ENV_PROCESS_ID))

    @property
    def is_multi_process(self):
        return (self.num_processes or 1) > 1 or bool(self.coordinator_address)

    @property
    def is_chief(self):
        return not self.process_id

    def initialize(self):
        """Joins the group and trains every later model over all processes' devices.

        Call it once, before any JAX computation. The `DataParallel`
        distribution stays set for the life of the process: `fit` needs it
        to assemble each process's slice into the global batch.

        Returns:
            The `keras.distribution.DataParallel` over all devices.
        """
        if keras.backend.backend() != "jax":
            raise ValueError("JAX multi-process data parallelism needs KERAS_BACKEND=jax, not "
                             f"{keras.backend.backend()} (on TensorFlow: the multi-worker "
                             "strategy, TensorFlowWorkerGroup).")
        import jax

        # CPU processes exchange gradients through gloo: JAX's default CPU
        # client has no cross-process collectives. (GPUs use NCCL; the
        # setting only concerns the CPU client. Asking JAX for its devices
        # here would start the backend too early.)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize(self.coordinator_address, self.num_processes,
                                      self.process_id)
        # After initialize: on SLURM, JAX found the values itself.
        object.__setattr__(self, "num_processes", jax.process_count())
        object.__setattr__(self, "process_id", jax.process_index())
        distribution = keras.distribution.DataParallel(
            devices=keras.distribution.list_devices(), auto_shard_dataset=False)
        keras.distribution.set_distribution(distribution)
        return distribution

    def scope(self):
        """The context in which to build and compile the model (the distribution is global)."""
        return contextlib.nullcontext()

    def distribute(self, make_dataset):
        """This process's batches for `model.fit`: `make_dataset((num_processes, process_id))`.

        Keras' own `auto_shard_dataset` is off: it needs a dataset whose
        batch size tf.data can infer, and it would decode every image on
        every process before dropping the others' rows.
        """
        return make_dataset((self.num_processes or 1, self.process_id or 0))

    def finish(self):
        """Waits until every process calls it: the workers stay until the chief's report.

        A JAX process that exits waits at a shutdown barrier for the others
        for a few minutes only, and the coordination service then ends them
        all: the workers wait here instead while the chief saves and
        evaluates the model.
        """
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("mmdsr_keras: run finished")

    def worker_folder(self, chief_folder=None):
        """A temporary folder for a non-chief's run files (see `run_directory.worker_folder`)."""
        return worker_folder(self.process_id, chief_folder)
