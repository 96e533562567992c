"""Loss and gradients of a model on every Keras backend, for gradient-flow checks."""

import keras
import numpy as np


def loss_and_gradients(model, x, y):
    """BCE-with-logits loss of `model` on (x, y) and its gradient per trainable weight."""
    backend = keras.backend.backend()
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        return float(loss), [None if g is None else np.asarray(g) for g in grads]
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        def compute(trainable_values):
            logits, _ = model.stateless_call(trainable_values, non_trainable, x, training=True)
            return loss_fn(y, logits)

        loss, grads = jax.value_and_grad(compute)(trainable)
        return float(loss), [np.asarray(g) for g in grads]
    if backend == "torch":
        import torch

        model.zero_grad()
        loss = loss_fn(torch.as_tensor(y), model(x, training=True))
        loss.backward()
        grads = [v.value.grad for v in model.trainable_variables]
        return float(loss), [None if g is None else g.detach().cpu().numpy() for g in grads]
    raise NotImplementedError(backend)
