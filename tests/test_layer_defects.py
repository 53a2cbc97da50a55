"""TBPTTLSTM's forward pass and gradients on every path Keras picks.

Issue 11, layer defects 1 and 2:

1. With masks, the forward pass must not depend on where `truncate_gradient`
   and `state_step` cut the time axis (TensorFlow once output 0 for masked
   steps at the start of a piece). Compared to `keras.layers.LSTM` with the
   same weights over many mask patterns and cuts.
2. `keras.layers.Bidirectional` hands LSTMs to a fused bidirectional kernel
   on GPU (JAX and torch), which would drop the truncation. On CPU the JAX
   GPU path is stood in for: `_is_gpu_available` patched to True and
   `jax.experimental.rnn.lstm` routed to jax's pure-JAX reference kernel
   `lstm_ref`. The stand-in counts its calls so a test fails if the fused
   path is not taken.

Runs under every backend; the stand-in tests need JAX (CI's JAX pass).
"""

import importlib

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from conftest import to_numpy, value_and_grads

import keras_tbptt as kt

pytestmark = pytest.mark.keras
ops = keras.ops
UNITS, FEATURES = 3, 2

# One row per pattern (1 = step seen); cuts fall before, inside and after
# every masked run.
MASK_ROWS = {
    "none": [1, 1, 1, 1, 1, 1, 1, 1],
    "right_long": [1, 1, 1, 1, 1, 0, 0, 0],
    "right_short": [1, 1, 0, 0, 0, 0, 0, 0],
    "left": [0, 0, 0, 1, 1, 1, 1, 1],
    "gap": [1, 1, 0, 0, 0, 1, 1, 0],
    "alternating": [1, 0, 1, 0, 1, 0, 1, 0],
    "left_and_gaps": [0, 1, 0, 0, 1, 1, 0, 1],
    "fully_masked": [0, 0, 0, 0, 0, 0, 0, 0],
    "only_last": [0, 0, 0, 0, 0, 0, 0, 1],
}
MASK = np.array(list(MASK_ROWS.values()), bool)
BATCH, T = MASK.shape
# (truncate_gradient, state_step): cuts after 7, 3, 4 and 2, 2 and 1
# processed steps (truncate_gradient=k cuts after T - k).
CUTS = [(1, None), (5, None), (4, 2), (6, 1)]
VARIANTS = ["plain", "initial_state", "zero_output_for_mask"]


def same_weights(reference, layer, shape):
    reference.build(shape)
    layer.build(shape)
    weights = [w * 2 for w in reference.get_weights()]
    reference.set_weights(weights)
    layer.set_weights(weights + layer.get_weights()[len(weights):])


@pytest.fixture
def x(rng):
    return rng.normal(size=(BATCH, T, FEATURES)).astype("float32")


def assert_close(got, expected):
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("cuts", CUTS, ids=str)
def test_masked_forward_pass_does_not_depend_on_the_cuts(
    cuts, go_backwards, return_sequences, variant, x, rng
):
    truncate_gradient, state_step = cuts
    kwargs = {"return_sequences": return_sequences, "go_backwards": go_backwards,
              "return_state": True}
    if variant == "zero_output_for_mask":
        kwargs["zero_output_for_mask"] = True
    call = {"mask": MASK}
    if variant == "initial_state":
        h0 = rng.normal(size=(BATCH, UNITS)).astype("float32")
        call["initial_state"] = [h0, -h0]
    keras.utils.set_random_seed(5)
    reference = keras.layers.LSTM(UNITS, **kwargs)
    layer = kt.TBPTTLSTM(UNITS, truncate_gradient=truncate_gradient,
                         state_step=state_step, **kwargs)
    same_weights(reference, layer, x.shape)
    output, *states = layer(x, **call)
    expected_output, *expected_states = reference(x, **call)
    assert_close([output], [expected_output])
    if state_step is not None:
        # The returned state is the one after `state_step` processed steps.
        first = slice(T - state_step, T) if go_backwards else slice(0, state_step)
        _, *expected_states = reference(x[:, first], **{**call, "mask": MASK[:, first]})
    assert_close(states, expected_states)


def test_issue_reproduction_repeats_the_previous_output():
    """The issue's example: step 3 is masked in both rows."""
    x = np.arange(24, dtype="float32").reshape(2, 4, 3)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    keras.utils.set_random_seed(0)
    reference = keras.layers.LSTM(2, return_sequences=True)
    layer = kt.TBPTTLSTM(2, truncate_gradient=1, return_sequences=True)
    same_weights(reference, layer, x.shape)
    got, expected = to_numpy(layer(x, mask=mask)), to_numpy(reference(x, mask=mask))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(got[:, 3], got[[0, 1], [2, 1]], atol=1e-6)
    assert np.abs(got[:, 3]).min() > 0


# --- the fused (GPU) kernels ------------------------------------------------


@pytest.fixture
def fused_calls(monkeypatch):
    """Stand in for JAX's GPU path on CPU; returns its call counts."""
    if keras.backend.backend() != "jax":
        return None
    import jax.experimental.rnn as jax_rnn
    keras_jax_rnn = importlib.import_module("keras.src.backend.jax.rnn")

    calls = {"unidirectional": 0, "bidirectional": 0}

    def lstm_stand_in(x, h_0, c_0, weights, seq_lengths, *, input_size, hidden_size,
                      num_layers, dropout, bidirectional, precision=None):
        calls["bidirectional" if bidirectional else "unidirectional"] += 1
        w_ih, w_hh, b_ih, b_hh = jax_rnn.unpack_lstm_weights(
            weights, input_size, hidden_size, num_layers, bidirectional
        )
        return jax_rnn.lstm_ref(x, h_0, c_0, w_ih, w_hh, b_ih, b_hh, seq_lengths,
                                input_size, hidden_size, num_layers, dropout,
                                bidirectional)

    monkeypatch.setattr(keras_jax_rnn, "_is_gpu_available", lambda: True)
    monkeypatch.setattr(jax_rnn, "lstm", lstm_stand_in)
    return calls


def needs_stand_in(fused_calls):
    if fused_calls is None:
        pytest.skip("the fused-kernel stand-in needs the JAX backend (CI's JAX pass)")


KERNELS = ["loop", "fused"]


def make_layers(bidirectional=False, k2=3, steps=12, **kwargs):
    """(reference keras layer, TBPTTLSTM layer) with the same weights."""
    keras.utils.set_random_seed(3)
    reference = keras.layers.LSTM(UNITS, **kwargs)
    layer = kt.TBPTTLSTM(UNITS, truncate_gradient=k2, **kwargs)
    if bidirectional:
        reference = keras.layers.Bidirectional(reference, merge_mode=None)
        layer = keras.layers.Bidirectional(layer, merge_mode=None)
    same_weights(reference, layer, (2, steps, FEATURES))
    return reference, layer


def sum_of(index):
    def loss(outputs):
        outputs = outputs[index] if isinstance(outputs, (list, tuple)) else outputs
        return ops.sum(outputs * ops.cos(ops.arange(outputs.shape[1], dtype="float32"))[:, None])
    return loss


def reached_steps(input_grad):
    return np.flatnonzero(np.abs(input_grad).sum(axis=(0, 2)) > 0).tolist()


@pytest.fixture(params=KERNELS)
def kernel(request):
    if request.param == "fused":
        calls = request.getfixturevalue("fused_calls")
        needs_stand_in(calls)
        return calls
    return None


def test_truncated_gradient_reaches_the_last_k2_steps(kernel, rng):
    x = rng.normal(size=(2, 12, FEATURES)).astype("float32")
    reference, layer = make_layers(return_sequences=True)
    _, _, dx = value_and_grads(layer, x, sum_of(0))
    outputs = layer(x)
    if kernel is not None:
        assert kernel["unidirectional"] >= 4  # both pieces, both calls on the fused kernel
    assert reached_steps(dx) == [9, 10, 11]
    assert_close([outputs], [reference(x)])


def test_bidirectional_truncates_each_direction(kernel, rng):
    x = rng.normal(size=(2, 12, FEATURES)).astype("float32")
    reference, layer = make_layers(bidirectional=True, return_sequences=True)
    _, _, forward_dx = value_and_grads(layer, x, sum_of(0))
    _, _, backward_dx = value_and_grads(layer, x, sum_of(1))
    outputs = layer(x)
    if kernel is not None:
        assert kernel["bidirectional"] == 0, "the truncated layer took the fused bidirectional kernel"
        assert kernel["unidirectional"] >= 4
    assert reached_steps(forward_dx) == [9, 10, 11]
    assert reached_steps(backward_dx) == [0, 1, 2]
    assert_close(outputs, reference(x))  # on the fused bidirectional kernel if "fused"


def test_the_stand_in_takes_the_fused_bidirectional_kernel(fused_calls, rng):
    """Control: an untruncated Bidirectional LSTM does reach the stand-in,
    so the tests above would see a fused bidirectional call."""
    needs_stand_in(fused_calls)
    x = rng.normal(size=(2, 12, FEATURES)).astype("float32")
    reference, layer = make_layers(bidirectional=True, k2=None, return_sequences=True)
    assert_close(layer(x), reference(x))
    assert fused_calls["bidirectional"] >= 2
    _, _, dx = value_and_grads(layer, x, sum_of(0))
    assert reached_steps(dx) == list(range(12))


PATH_CASES = {
    "sequences": ({"return_sequences": True}, False, False),
    "last_output": ({}, False, False),
    "go_backwards": ({"return_sequences": True, "go_backwards": True}, False, False),
    "state_step": ({"return_sequences": True, "return_state": True, "state_step": 5}, False, False),
    "mask": ({"return_sequences": True}, False, True),
    "bidirectional": ({"return_sequences": True}, True, False),
    "bidirectional_state": ({"return_state": True, "state_step": 4}, True, False),
    "bidirectional_mask": ({"return_sequences": True}, True, True),
}


@pytest.mark.parametrize("case", list(PATH_CASES))
def test_fused_kernel_equals_the_loop(case, fused_calls, monkeypatch, rng):
    """Outputs, states and gradients on the fused path equal the generic loop."""
    needs_stand_in(fused_calls)
    kwargs, bidirectional, masked = PATH_CASES[case]
    kwargs = dict(kwargs)
    state_step = kwargs.pop("state_step", None)
    x = rng.normal(size=(2, 12, FEATURES)).astype("float32")
    mask = np.array([[1] * 12, [1] * 4 + [0] * 3 + [1] * 5], bool) if masked else None

    def build():
        keras.utils.set_random_seed(3)
        layer = kt.TBPTTLSTM(UNITS, truncate_gradient=3, state_step=state_step, **kwargs)
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, merge_mode=None)
        layer.build((2, 12, FEATURES))
        return layer

    def loss(outputs):
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return sum(ops.sum(o * (i + 1)) for i, o in enumerate(outputs))

    layer = build()
    fused = [layer(x, mask=mask), value_and_grads(layer, x, loss)]
    fused_counts = dict(fused_calls)
    keras_jax_rnn = importlib.import_module("keras.src.backend.jax.rnn")

    monkeypatch.setattr(keras_jax_rnn, "_is_gpu_available", lambda: False)
    layer = build()
    loop = [layer(x, mask=mask), value_and_grads(layer, x, loss)]
    assert fused_calls == fused_counts  # the loop did not use the stand-in
    assert fused_counts["bidirectional"] == 0
    if not masked:  # keras' fused kernel refuses masks: they take the loop
        assert fused_counts["unidirectional"] > 0
    outputs, (value, weight_grads, input_grad) = fused
    loop_outputs, (loop_value, loop_weight_grads, loop_input_grad) = loop
    flat = lambda o: list(o) if isinstance(o, (list, tuple)) else [o]
    assert_close(flat(outputs), flat(loop_outputs))
    np.testing.assert_allclose(value, loop_value, rtol=1e-5)
    for a, b in zip([*weight_grads, input_grad], [*loop_weight_grads, loop_input_grad],
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_stateful_carry_on_the_fused_kernel(kernel, rng):
    """A stateful layer with state_step carries the state after that step,
    on both kernels: the second chunk continues from it."""
    x = rng.normal(size=(2, 12, FEATURES)).astype("float32")
    keras.utils.set_random_seed(3)
    reference = keras.layers.LSTM(UNITS, return_sequences=True, return_state=True)
    layer = kt.TBPTTLSTM(UNITS, truncate_gradient=3, state_step=4, stateful=True,
                         return_sequences=True)
    same_weights(reference, layer, x.shape)
    first = layer(x[:, :8])
    second = layer(x[:, 4:12])
    expected_first, h, c = reference(x[:, :8])
    _, h, c = reference(x[:, :4])
    expected_second, _, _ = reference(x[:, 4:12], initial_state=[h, c])
    assert_close([first, second], [expected_first, expected_second])
    if kernel is not None:
        assert kernel["unidirectional"] > 0


def test_bidirectional_of_a_plain_layer_may_still_fuse():
    layer = kt.TBPTTLSTM(UNITS)
    assert layer.allows_fused_bidirectional
    assert not kt.TBPTTLSTM(UNITS, truncate_gradient=2).allows_fused_bidirectional
    assert not kt.TBPTTLSTM(UNITS, state_step=2).allows_fused_bidirectional
    wrapper = keras.layers.Bidirectional(kt.TBPTTLSTM(UNITS, truncate_gradient=2))
    wrapper.build((2, 5, FEATURES))
    assert not wrapper._can_attempt_fused_lstm(None)
    wrapper = keras.layers.Bidirectional(kt.TBPTTLSTM(UNITS))
    wrapper.build((2, 5, FEATURES))
    assert wrapper._can_attempt_fused_lstm(None)
