"""The fused CPU kernels of TBPTTLSTM and TBPTTGRU (layers/fused_kernels.py).

Each piece of the cut time axis runs on the backend's sequence kernel
(TensorFlow: BlockLSTM for LSTM; torch: `_VF.lstm`, `_VF.gru`). Checked
against `keras.layers.LSTM`/`GRU` with the same weights (outputs, states,
gradients w.r.t. kernel, recurrent kernel, bias, inputs and initial state),
the `stop_gradient` reference for truncated gradients, and a spy on the
kernel functions: a case passes only if every piece took the kernel (or, for
the fallbacks, none did). JAX has no fused kernel: the module is skipped
there (its suites prove the unchanged path).
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from conftest import stop_gradient_pass, to_numpy, with_same_weights

import keras_tbptt as kt
from keras_tbptt.layers import fused_kernels

pytestmark = [
    pytest.mark.keras,
    pytest.mark.skipif(keras.backend.backend() == "jax", reason="no fused kernel under JAX"),
]
ops = keras.ops
BACKEND = keras.backend.backend()
BATCH, T, FEATURES, UNITS = 3, 12, 2, 4
LAYERS = {"lstm": (kt.TBPTTLSTM, keras.layers.LSTM), "gru": (kt.TBPTTGRU, keras.layers.GRU)}
# The kernel each (backend, kind) runs on.
KERNELS = {("tensorflow", "lstm"): "tensorflow_lstm", ("torch", "lstm"): "torch_lstm",
           ("torch", "gru"): "torch_gru"}


@pytest.fixture
def kernel_calls(monkeypatch):
    """Calls of each fused kernel function, by name."""
    calls = dict.fromkeys(("tensorflow_lstm", "torch_lstm", "torch_gru"), 0)
    for name in calls:
        kernel = getattr(fused_kernels, name)

        def spy(*args, name=name, kernel=kernel):
            calls[name] += 1
            return kernel(*args)

        monkeypatch.setattr(fused_kernels, name, spy)
    return calls


def fused_kind(kind):
    """The kernel `kind` runs on under this backend; the test is skipped without one."""
    name = KERNELS.get((BACKEND, kind))
    if name is None:
        pytest.skip(f"no fused {kind} kernel under {BACKEND}")
    return name


def twins(kind, shape=(BATCH, T, FEATURES), truncate_gradient=None, state_step=None,
          **kwargs):
    """(Keras layer, keras_tbptt layer) with the same (doubled) weights."""
    truncated_cls, keras_cls = LAYERS[kind]
    keras.utils.set_random_seed(7)
    reference = keras_cls(UNITS, **kwargs)
    layer = truncated_cls(UNITS, truncate_gradient=truncate_gradient, state_step=state_step,
                          **kwargs)
    return with_same_weights(reference, layer, shape)


def weighted_sum(tensors):
    """A loss that weighs every element differently."""
    total = 0.0
    for tensor in tensors:
        weights = ops.cos(ops.arange(int(np.prod(tensor.shape[1:])), dtype="float32"))
        total = total + ops.sum(tensor * ops.reshape(weights, tensor.shape[1:]))
    return total


def loss_and_grads(call, layer, x, states):
    """`weighted_sum(call(x, states))` and its gradients w.r.t. the cell's
    kernel, recurrent kernel and bias, `x` and the initial `states`."""
    variables = layer.cell.trainable_variables
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x, states = tf.constant(x), [tf.constant(s) for s in states]
        with tf.GradientTape() as tape:
            tape.watch([x, *states])
            loss = weighted_sum(call(x, states))
        targets = [*variables, x, *states]
        grads = tape.gradient(loss, targets)
    else:
        import torch

        x = torch.tensor(x, requires_grad=True)
        states = [torch.tensor(s, requires_grad=True) for s in states]
        loss = weighted_sum(call(x, states))
        targets = [*(v.value for v in variables), x, *states]
        grads = torch.autograd.grad(loss, targets, allow_unused=True)
    # No gradient (the initial state of a truncated pass) is a zero one.
    return float(to_numpy(loss)), [
        np.zeros(tuple(t.shape), "float32") if g is None else to_numpy(g)
        for g, t in zip(grads, targets, strict=True)
    ]


def assert_close(got, expected, atol=1e-5):
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5, atol=atol)


def initial_states(kind, rng, batch=BATCH):
    count = 2 if kind == "lstm" else 1
    return [rng.normal(size=(batch, UNITS)).astype("float32") for _ in range(count)]


# name -> (layer kwargs, number of pieces the time axis is cut into)
CASES = {
    "sequences": ({"return_sequences": True}, 1),
    "last_output": ({}, 1),
    "go_backwards": ({"return_sequences": True, "go_backwards": True}, 1),
    "no_bias": ({"return_sequences": True, "use_bias": False}, 1),
    "dropout": ({"return_sequences": True, "dropout": 0.3, "seed": 3}, 1),
    "truncated": ({"return_sequences": True, "truncate_gradient": 5}, 2),
    "truncated_last_output": ({"truncate_gradient": 5}, 2),
    "truncated_backwards": (
        {"return_sequences": True, "go_backwards": True, "truncate_gradient": 5}, 2
    ),
    "truncated_no_bias": ({"truncate_gradient": 1, "use_bias": False}, 2),
    "state_step": ({"return_sequences": True, "truncate_gradient": 5, "state_step": 4}, 3),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", list(LAYERS))
def test_fused_path_equals_the_keras_layer(kind, case, kernel_calls, rng):
    """Outputs, final states and gradients equal the Keras layer's (through
    the stop_gradient reference where truncated), every piece on the kernel."""
    name = fused_kind(kind)
    kwargs, pieces = CASES[case]
    kwargs = dict(kwargs)
    k2, state_step = kwargs.pop("truncate_gradient", None), kwargs.pop("state_step", None)
    reference, layer = twins(kind, truncate_gradient=k2, state_step=state_step,
                             return_state=True, **kwargs)
    x = rng.normal(size=(BATCH, T, FEATURES)).astype("float32")
    h0 = initial_states(kind, rng)

    def fused(x, states):
        output, *final = layer(x, initial_state=states, training=True)
        return [output] if state_step else [output, *final]

    def keras_pass(x, states, k2=k2):
        if k2 is None:
            output, *final = reference(x, initial_state=states, training=True)
        else:
            output, *final = stop_gradient_pass(reference, x, k2, states, training=True)
        return [output] if state_step else [output, *final]

    got = loss_and_grads(fused, layer, x, h0)
    assert kernel_calls[name] == pieces  # every piece ran on the kernel
    want = loss_and_grads(keras_pass, reference, x, h0)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
    assert_close(got[1], want[1])
    if k2 is not None:  # the control: truncation changes the kernel's gradient
        full = loss_and_grads(lambda x, s: keras_pass(x, s, None), reference, x, h0)
        assert not np.allclose(full[1][0], want[1][0], rtol=1e-3)
    if state_step:  # the returned states are those after state_step steps
        _, *states = layer(x, initial_state=h0)
        steps = slice(T - state_step, T) if layer.go_backwards else slice(0, state_step)
        _, *expected_states = reference(x[:, steps], initial_state=h0)
        assert_close(states, expected_states)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_stateful_carry_and_resets_on_the_kernel(kind, kernel_calls, rng):
    """A stateful layer carries its states from chunk to chunk and zeroes the
    rows flagged in `resets`; its truncated gradients equal the reference's."""
    name = fused_kind(kind)
    first, second = rng.normal(size=(2, 4, 6, FEATURES)).astype("float32")
    reference, _ = twins(kind, first.shape, return_sequences=True, return_state=True)
    layer = LAYERS[kind][0](UNITS, truncate_gradient=2, stateful=True, return_sequences=True)
    layer.build(first.shape)
    weights = reference.get_weights()
    layer.set_weights(weights + layer.get_weights()[len(weights):])
    layer(first)
    _, *carried = reference(first)
    resets = np.array([1, 0, 1, 0], "float32")
    h0 = [to_numpy(s) * (1 - resets)[:, None] for s in carried]
    got = loss_and_grads(lambda x, _: [layer(x, resets=resets, training=True)], layer,
                         second, [])
    want = loss_and_grads(
        lambda x, _: stop_gradient_pass(reference, x, 2, h0, training=True)[:1],
        reference, second, [],
    )
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
    assert_close(got[1], want[1])
    _, *after = reference(second, initial_state=h0)
    assert_close(layer.states, after)
    assert kernel_calls[name] == 2 + 2  # two chunks, each in two pieces


# name -> (kind, layer kwargs, call kwargs): Keras' path must serve these.
FALLBACKS = {
    "mask": ("lstm", {"truncate_gradient": 5}, {"mask": True}),
    "activation": ("lstm", {"truncate_gradient": 5, "activation": "relu"}, {}),
    "recurrent_activation": ("gru", {"recurrent_activation": "hard_sigmoid"}, {}),
    "recurrent_dropout": ("lstm", {"truncate_gradient": 5, "recurrent_dropout": 0.3,
                                   "seed": 3}, {}),
    "reset_before": ("gru", {"truncate_gradient": 5, "reset_after": False}, {}),
    "no_cudnn": ("lstm", {"truncate_gradient": 5, "use_cudnn": False}, {}),
    "unroll": ("gru", {"unroll": True}, {}),
    "mask_gru": ("gru", {"state_step": 4}, {"mask": True}),
}


@pytest.mark.parametrize("case", list(FALLBACKS))
def test_fallbacks_take_the_keras_path(case, kernel_calls, rng):
    """Where a kernel cannot compute the same thing, no kernel runs and the
    layer still equals the Keras layer (outputs and gradients)."""
    kind, kwargs, call_kwargs = FALLBACKS[case]
    kwargs = dict(kwargs)
    k2, state_step = kwargs.pop("truncate_gradient", None), kwargs.pop("state_step", None)
    reference, layer = twins(kind, truncate_gradient=k2, state_step=state_step,
                             return_sequences=True, return_state=True, **kwargs)
    x = rng.normal(size=(BATCH, T, FEATURES)).astype("float32")
    h0 = initial_states(kind, rng)
    mask = None
    if call_kwargs.get("mask"):
        mask = np.ones((BATCH, T), bool)
        mask[1, 8:] = mask[2, :3] = False
    got = loss_and_grads(
        lambda x, s: layer(x, initial_state=s, mask=mask, training=True)[:1], layer, x, h0
    )
    assert sum(kernel_calls.values()) == 0
    if mask is None and "dropout" not in case:
        def keras_pass(x, states):
            if k2 is None:
                return reference(x, initial_state=states)[:1]
            return stop_gradient_pass(reference, x, k2, states)[:1]

        want = loss_and_grads(keras_pass, reference, x, h0)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
        assert_close(got[1], want[1])
    assert_close(layer(x, initial_state=h0, mask=mask)[:1],
                 reference(x, initial_state=h0, mask=mask)[:1])


@pytest.mark.skipif(BACKEND != "tensorflow", reason="XLA compilation of TensorFlow graphs")
def test_xla_compiled_steps_take_the_keras_path(kernel_calls, rng):
    """`jit_compile=True`: BlockLSTM has no XLA kernel, so the compiled step
    runs Keras' loop (and trains); without it (Keras' "auto" on CPU) the
    step runs on the kernel. Both give the eager layer's outputs."""
    x = rng.normal(size=(4, T, FEATURES)).astype("float32")
    y = rng.normal(size=(4, T, UNITS)).astype("float32")
    for jit_compile, expect_fused in ((True, False), ("auto", True)):
        keras.utils.set_random_seed(7)
        model = keras.Sequential([
            keras.Input(batch_shape=x.shape),
            kt.TBPTTLSTM(UNITS, truncate_gradient=5, return_sequences=True),
        ])
        model.compile(optimizer="sgd", loss="mse", jit_compile=jit_compile)
        eager = to_numpy(model(x))
        kernel_calls["tensorflow_lstm"] = 0
        np.testing.assert_allclose(model.predict_on_batch(x), eager, rtol=1e-5, atol=1e-6)
        loss = model.train_on_batch(x, y)
        assert np.isfinite(loss)
        assert model.jit_compile is (jit_compile is True)
        assert (kernel_calls["tensorflow_lstm"] > 0) is expect_fused, jit_compile
