"""Multi-device data parallelism: TF MirroredStrategy or Keras DataParallel (JAX).

Several processes or machines: `tensorflow_multi_worker.TensorFlowWorkerGroup`
("multi-worker") and `jax_process_group.JaxProcessGroup` ("data-parallel" over
processes), whose `scope()` takes the place of `distribution_scope`.
"""

import contextlib

import keras

DISTRIBUTIONS = ("none", "mirrored", "data-parallel", "multi-worker")


@contextlib.contextmanager
def distribution_scope(kind="none"):
    """Context in which to build and compile the model for `kind` of parallelism.

    - `"mirrored"`: `tf.distribute.MirroredStrategy` over every visible device
      (TensorFlow backend); each global batch is split across replicas.
    - `"data-parallel"`: `keras.distribution.DataParallel` over every device
      (JAX backend).

    Example:
    >>> with distribution_scope("none"):
    ...     pass
    """
    backend = keras.backend.backend()
    if kind == "none":
        yield None
    elif kind == "mirrored":
        if backend != "tensorflow":
            raise ValueError('the "mirrored" distribution needs KERAS_BACKEND=tensorflow, '
                             f"not {backend}.")
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
        with strategy.scope():
            yield strategy
    elif kind == "data-parallel":
        if backend != "jax":
            raise ValueError('the "data-parallel" distribution needs KERAS_BACKEND=jax, '
                             f"not {backend}.")
        distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(distribution)
        try:
            yield distribution
        finally:
            keras.distribution.set_distribution(previous)
    elif kind == "multi-worker":
        raise ValueError("a multi-worker strategy must exist before any TensorFlow operation "
                         "runs: build the model in TensorFlowWorkerGroup.scope().")
    else:
        raise ValueError(f"distribution={kind!r}; expected one of {DISTRIBUTIONS}.")
