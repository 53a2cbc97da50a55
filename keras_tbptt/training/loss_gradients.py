"""`LossGradients`: the gradient of a compiled model's loss, on every backend.

The backend's own differentiation (`tf.GradientTape`, `jax.grad` over
`stateless_call`, torch autograd) of `model.compute_loss` with respect to
the trainable weights and the inputs, in inference mode (no dropout: two
gradients of the same batch differ only where the graph differs). Used by
`gradient_horizon`, which compares gradients of one model under several
`truncate_gradient` settings.
"""

from __future__ import annotations

import weakref
from typing import Any

import keras
import numpy as np

# Under JAX: per model, its compiled gradient functions by the settings the
# traced graph reads (each `TruncatedRNN` layer's truncation, the compiled
# loss). Compiling costs seconds per setting; `GradientHorizonLog` measures
# the same model every few epochs, and the weights are arguments, so the
# programs are reused across calls. Weak keys: a model is not kept alive.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class LossGradients:
    """`gradients(x, y, sample_weight)` of `model`'s compiled loss.

    Returns `(weight_gradients, input_gradient)` as numpy arrays: one array
    per trainable variable (zeros for a weight the loss does not reach) and
    the gradient with respect to `x`. Under JAX the program is compiled
    once per model and setting of the attributes the graph reads (every
    `TruncatedRNN` layer's `truncate_gradient` and `state_step`, the
    compiled loss) and reused by later instances (unless `compile=False`):
    build a new instance after changing such an attribute.

    Under TensorFlow and torch the call writes the model's stateful states
    and the compiled loss' trackers like any forward pass: the caller
    restores them (`gradient_horizon` does).
    """

    def __init__(self, model: keras.Model, compile: bool = True) -> None:
        self.model = model
        # Under JAX, compiling costs seconds and pays off over many calls;
        # a gradient taken once or twice runs faster op by op.
        self.compile = compile
        self.backend = keras.backend.backend()
        self._jitted = None

    def __call__(self, x: np.ndarray, y: Any, sample_weight: Any) -> tuple[list, np.ndarray]:
        return getattr(self, f"_{self.backend}")(x, y, sample_weight)

    def _tensorflow(self, x, y, sample_weight):
        import tensorflow as tf

        model = self.model
        inputs = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            y_pred = model(inputs, training=False)
            loss = model.compute_loss(
                x=inputs, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
            )
        grads = tape.gradient(
            loss, [*model.trainable_variables, inputs],
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        grads = [np.asarray(g) for g in grads]
        return grads[:-1], grads[-1]

    def _jax(self, x, y, sample_weight):
        model = self.model
        if self._jitted is None:
            self._jitted = _jax_gradient(model, x, y, sample_weight, self.compile)
        grads, input_grad = self._jitted(
            [v.value for v in model.trainable_variables], x,
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.metrics_variables], y, sample_weight,
        )
        return [np.asarray(g) for g in grads], np.asarray(input_grad)

    def _torch(self, x, y, sample_weight):
        import torch

        model = self.model
        inputs = keras.ops.convert_to_tensor(x).requires_grad_(True)
        if y is not None:
            y = keras.ops.convert_to_tensor(y)
        if sample_weight is not None:
            sample_weight = keras.ops.convert_to_tensor(sample_weight)
        y_pred = model(inputs, training=False)
        loss = model.compute_loss(
            x=inputs, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
        )
        params = [v.value for v in model.trainable_variables]
        grads = torch.autograd.grad(loss, [*params, inputs], allow_unused=True)
        grads = [
            np.zeros(tuple(t.shape), "float32") if g is None else g.detach().cpu().numpy()
            for g, t in zip(grads, [*params, inputs], strict=True)
        ]
        return grads[:-1], grads[-1]


def _graph_settings(model):
    """What a traced gradient of `model` depends on besides its inputs."""
    from keras_tbptt.layers.truncation import TruncatedRNN

    layers = model._flatten_layers(include_self=False, recursive=True)
    truncation = tuple((id(layer), layer.truncate_gradient, layer.state_step)
                       for layer in layers if isinstance(layer, TruncatedRNN))
    # The loss object itself, not its id: a recompiled model's new loss may
    # reuse a freed id.
    return truncation, getattr(model, "_compile_loss", None)


def _jax_gradient(model, x, y, sample_weight, compile):
    import jax

    key = _graph_settings(model)
    cache = _COMPILED.setdefault(model, {}) if compile else {}
    if key in cache:
        return cache[key]
    # Keras builds the compiled loss (and its trackers) on first use: done
    # here, outside the traced function.
    model.compute_loss(
        x=x, y=y, y_pred=model(x, training=False), sample_weight=sample_weight,
        training=False,
    )
    owner = weakref.ref(model)  # the cache must not keep its key alive

    def loss(trainable, inputs, non_trainable, metrics, targets, weights):
        model = owner()
        y_pred, non_trainable = model.stateless_call(
            trainable, non_trainable, inputs, training=False
        )
        value, _ = model.stateless_compute_loss(
            trainable, non_trainable, metrics, x=inputs, y=targets,
            y_pred=y_pred, sample_weight=weights, training=False,
        )
        return value

    gradient = jax.grad(loss, argnums=(0, 1))
    if not compile:
        return gradient
    cache[key] = jax.jit(gradient)
    return cache[key]
