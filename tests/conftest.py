"""Shared helpers: backend-agnostic gradients and full-pass references."""

import numpy as np
import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "keras: needs Keras; runs under every backend in CI"
    )


def executable_steps(steps):
    """`steps` as a model's `steps_per_execution`, or 1 under torch: Keras
    runs one batch per step there and refuses more with its own error."""
    import keras

    return 1 if keras.backend.backend() == "torch" else steps


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def to_numpy(x):
    import keras

    return keras.ops.convert_to_numpy(x)


def stateful_regressor(plan, layer_cls, units, optimizer, weights=None):
    """`layer_cls(units, stateful=True)` -> Dense(1) at the plan's batch
    shape, compiled with MSE (`weights` set first, to start two copies from
    the same point)."""
    import keras

    model = keras.Sequential([
        keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 1)),
        layer_cls(units, stateful=True, return_sequences=True),
        keras.layers.Dense(1),
    ])
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=optimizer, loss="mse")
    return model


def full_pass(layer_config, weights, series, **call_kwargs):
    """Outputs of a non-stateful keras.layers.LSTM over each whole series."""
    import keras

    layer = keras.layers.LSTM(**{**layer_config, "stateful": False})
    layer.build((None, None, series[0].shape[-1]))
    layer.set_weights(weights)
    return [to_numpy(layer(s[None].astype("float32"), **call_kwargs))[0] for s in series]


def value_and_grads(layer, x, loss_fn):
    """Loss, gradients w.r.t. the layer's trainable weights, and w.r.t. `x`.

    Works under TensorFlow, JAX and torch.
    """
    import keras

    backend = keras.backend.backend()
    x = np.asarray(x, dtype="float32")
    if backend == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = loss_fn(layer(xt, training=True))
        grads = tape.gradient(loss, [*layer.trainable_variables, xt])
        return float(loss), [np.asarray(g) for g in grads[:-1]], np.asarray(grads[-1])
    if backend == "jax":
        import jax

        trainable = [v.value for v in layer.trainable_variables]
        frozen = [v.value for v in layer.non_trainable_variables]

        def compute(weights, inputs):
            out, _ = layer.stateless_call(weights, frozen, inputs, training=True)
            return loss_fn(out)

        loss, (gw, gx) = jax.value_and_grad(compute, argnums=(0, 1))(trainable, x)
        return float(loss), [np.asarray(g) for g in gw], np.asarray(gx)
    import torch

    xt = torch.tensor(x, requires_grad=True)
    loss = loss_fn(layer(xt, training=True))
    params = [v.value for v in layer.trainable_variables]
    # An unused weight (one direction of a Bidirectional) has a zero
    # gradient, as under TensorFlow and JAX.
    grads = torch.autograd.grad(loss, [*params, xt], allow_unused=True)
    grads = [
        np.zeros(tuple(t.shape), "float32") if g is None else g.detach().cpu().numpy()
        for g, t in zip(grads, [*params, xt], strict=True)
    ]
    return float(loss.detach()), grads[:-1], grads[-1]


def with_same_weights(reference, layer, shape):
    """Build a Keras recurrent layer and its keras_tbptt twin with the same
    weights: the reference's, doubled (so that a default the twin leaves
    unset shows), and the twin's extra weights as they are."""
    reference.build(shape)
    layer.build(shape)
    weights = [w * 2 for w in reference.get_weights()]
    reference.set_weights(weights)
    layer.set_weights(weights + layer.get_weights()[len(weights):])
    return reference, layer


def stop_gradient_pass(rnn, x, k2, initial_state=None, training=False):
    """Theano's truncation spelled out: `rnn` (a Keras recurrent layer
    built with `return_state=True`) over the first processed steps under
    stop_gradient, then over the last `k2` from their states.

    Returns `[output, *states]` as `rnn` returns them, the states those
    after the last step.
    """
    from keras import ops, tree

    steps = x.shape[1]
    if rnn.go_backwards:  # processing starts from the end of the input
        early, late = x[:, k2:], x[:, :k2]
    else:
        early, late = x[:, : steps - k2], x[:, steps - k2 :]
    early_out, *states = rnn(early, initial_state=initial_state, training=training)
    late_out, *states = rnn(
        late, initial_state=tree.map_structure(ops.stop_gradient, states),
        training=training,
    )
    if rnn.return_sequences:
        late_out = ops.concatenate([ops.stop_gradient(early_out), late_out], axis=1)
    return [late_out, *states]


def unit_weights(plan, weights=None):
    """`plan.sample_weight` (or `weights` of the plan) as 0/1.

    Asserts first that every nonzero weight equals `plan.weight_scale` (the
    scale that makes Keras' default reduction report the weighted mean).
    """
    weights = plan.sample_weight if weights is None else np.asarray(weights)
    scale = np.float32(plan.weight_scale)
    values = set(np.unique(weights).tolist())
    assert values <= {0.0, float(scale)}, (values, scale)
    return (weights == scale).astype(np.float32)
