"""TBPTTGRU, TBPTTSimpleRNN and TBPTTRNN against their Keras layers.

Every test is parametrized over the layer kinds below (GRU both ways of
`reset_after`, SimpleRNN, and TBPTTRNN of a built-in cell, of stacked cells
with nested states and of a user's own cell whose output is not its first
state). The references are the Keras layer with the same weights (forward
pass, states and, without truncation, gradients), a `stop_gradient`
spelled-out truncation, and one uninterrupted pass per series for the
stateful paths. Runs under every backend (`KERAS_BACKEND`).
"""

import copy
import importlib
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import keras_tbptt as kt  # noqa: E402
from keras_tbptt.layers import fused_kernels  # noqa: E402
from conftest import executable_steps, stop_gradient_pass, to_numpy, value_and_grads  # noqa: E402

pytestmark = pytest.mark.keras
ops = keras.ops
tree = keras.tree
BACKEND = keras.backend.backend()
BATCH, T, FEATURES, UNITS = 3, 12, 2, 4


@keras.saving.register_keras_serializable(package="test_recurrent_layers")
class DecayCell(keras.layers.Layer):
    """A user's own cell: two states, and an output that is not its first
    state (so Keras' backends differ on what a masked step outputs)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                name="recurrent_kernel")

    def call(self, inputs, states):
        h, total = states
        h = ops.tanh(ops.matmul(inputs, self.kernel) + ops.matmul(h, self.recurrent_kernel))
        total = 0.5 * total + h
        return h + total, [h, total]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _cells(kind):
    return {
        "rnn_lstm_cell": lambda: keras.layers.LSTMCell(UNITS),
        "rnn_stacked": lambda: [keras.layers.SimpleRNNCell(UNITS), keras.layers.GRUCell(3)],
        "rnn_own_cell": lambda: DecayCell(UNITS),
    }[kind]()


# kind -> (keras_tbptt layer, Keras layer), each called with the layer's kwargs.
KINDS = {
    "gru": (lambda **kw: kt.TBPTTGRU(UNITS, **kw), lambda **kw: keras.layers.GRU(UNITS, **kw)),
    "gru_reset_before": (
        lambda **kw: kt.TBPTTGRU(UNITS, reset_after=False, **kw),
        lambda **kw: keras.layers.GRU(UNITS, reset_after=False, **kw),
    ),
    "simple_rnn": (
        lambda **kw: kt.TBPTTSimpleRNN(UNITS, **kw),
        lambda **kw: keras.layers.SimpleRNN(UNITS, **kw),
    ),
    **{
        kind: (
            lambda kind=kind, **kw: kt.TBPTTRNN(_cells(kind), **kw),
            lambda kind=kind, **kw: keras.layers.RNN(_cells(kind), **kw),
        )
        for kind in ("rnn_lstm_cell", "rnn_stacked", "rnn_own_cell")
    },
}
KIND_NAMES = list(KINDS)
OUTPUT_UNITS = {"rnn_stacked": 3}


def make(kind, truncated=True, **kwargs):
    return KINDS[kind][0 if truncated else 1](**kwargs)


def kernels(layer):
    """`layer.get_weights()` without its tracked states."""
    states = tree.flatten(getattr(layer, "states", None) or [])
    return [to_numpy(w) for w in layer.weights if all(w is not s for s in states)]


def copy_weights(source, target, scale=2.0):
    """`target` gets `source`'s kernels times `scale` (a longer memory, set
    in `source` too); `target`'s own tracked states are kept."""
    weights = [w * scale for w in kernels(source)]
    target.set_weights(weights + target.get_weights()[len(weights):])
    if scale != 1.0:
        source.set_weights(weights + source.get_weights()[len(weights):])


def twins(kind, shape=(BATCH, T, FEATURES), truncate_gradient=None, state_step=None,
          **kwargs):
    """(Keras layer, keras_tbptt layer) with the same weights."""
    keras.utils.set_random_seed(7)
    reference = make(kind, truncated=False, **kwargs)
    layer = make(kind, truncate_gradient=truncate_gradient, state_step=state_step, **kwargs)
    reference.build(shape)
    layer.build(shape)
    copy_weights(reference, layer)
    return reference, layer


def weighted_sum(outputs):
    outputs = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    weights = ops.reshape(
        ops.cos(ops.arange(np.prod(outputs.shape[1:]), dtype="float32")),
        outputs.shape[1:],
    )
    return ops.sum(outputs * weights)


def flat(outputs):
    return [to_numpy(t) for t in tree.flatten(outputs)]


def assert_close(got, expected, atol=1e-5):
    got, expected = flat(got), flat(expected)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-5)


def assert_same_loss_and_gradients(got, expected):
    (loss, weight_grads, input_grad), (ref_loss, ref_weight_grads, ref_input_grad) = got, expected
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    for a, b in zip([*weight_grads, input_grad], [*ref_weight_grads, ref_input_grad], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def reached_steps(input_grad):
    per_step = np.abs(input_grad).reshape(*input_grad.shape[:2], -1).sum(axis=(0, 2))
    return np.flatnonzero(per_step > 0).tolist()


def random_initial_state(reference, rng):
    structure = reference.get_initial_state(BATCH)
    return tree.map_structure(
        lambda s: rng.normal(size=tuple(s.shape)).astype("float32"), structure
    )


@pytest.fixture
def x(rng):
    return rng.normal(size=(BATCH, T, FEATURES)).astype("float32")


# --- without truncation: the Keras layer --------------------------------------

OPTIONS = {
    "last_output": {},
    "sequences": {"return_sequences": True},
    "go_backwards": {"return_sequences": True, "go_backwards": True},
    "return_state": {"return_sequences": True, "return_state": True},
}


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_no_truncation_equals_the_keras_layer(kind, option, x):
    reference, layer = twins(kind, **OPTIONS[option])
    assert_close(layer(x), reference(x))
    assert_same_loss_and_gradients(
        value_and_grads(layer, x, weighted_sum), value_and_grads(reference, x, weighted_sum)
    )


def traced_program(layer, x):
    """What the backend compiles for a training step's gradient: the jaxpr
    (JAX, names dropped) or the op types of the graph and its functions
    (TensorFlow)."""
    import collections
    import re

    model = keras.Sequential([keras.Input(batch_shape=x.shape), layer])
    if BACKEND == "jax":
        import jax

        frozen = [v.value for v in model.non_trainable_variables]

        def loss(weights, inputs):
            out, _ = model.stateless_call(weights, frozen, inputs, training=True)
            return ops.mean(out ** 2)

        weights = [v.value for v in model.trainable_variables]
        return re.sub(r"name=\S+", "", str(jax.make_jaxpr(jax.grad(loss))(weights, x)))
    import tensorflow as tf

    @tf.function
    def step(inputs):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(inputs, training=True) ** 2)
        return tape.gradient(loss, model.trainable_variables)

    graph = step.get_concrete_function(tf.constant(x)).graph.as_graph_def()
    types = collections.Counter(node.op for node in graph.node)
    for function in graph.library.function:
        types.update(node.op for node in function.node_def)
    return types


@pytest.mark.skipif(BACKEND == "torch", reason="torch runs eagerly: no program to compare")
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_no_truncation_traces_the_keras_layers_program(kind, x):
    """Without truncate_gradient and state_step the layer compiles to the
    Keras layer's own training program, so it runs at the same speed (the
    benchmark's timings differ only by noise)."""
    reference, layer = twins(kind, return_sequences=True)
    assert traced_program(layer, x) == traced_program(reference, x)
    _, truncated = twins(kind, truncate_gradient=3, return_sequences=True)
    assert traced_program(truncated, x) != traced_program(reference, x)  # control


# --- truncate_gradient: Theano's semantics ------------------------------------


class StopGradientReference(keras.layers.Layer):
    """Truncation spelled out: the Keras layer over the first processed
    steps under stop_gradient, then over the last k2 from its states."""

    def __init__(self, rnn, k2):
        super().__init__()
        self.rnn, self.k2 = rnn, k2
        self.built = True  # the wrapped layer is built already

    def call(self, x, training=False):
        return stop_gradient_pass(self.rnn, x, self.k2, training=training)[0]


TRUNCATIONS = [(1, False, True), (5, False, True), (5, True, True), (5, False, False),
               (5, True, False)]


@pytest.mark.parametrize("k2, go_backwards, return_sequences", TRUNCATIONS)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_truncated_gradients_equal_the_stop_gradient_reference(
    kind, k2, go_backwards, return_sequences, x
):
    kwargs = {"return_sequences": return_sequences, "go_backwards": go_backwards}
    reference, layer = twins(kind, truncate_gradient=k2, **kwargs)
    with_states = make(kind, truncated=False, return_state=True, **kwargs)
    with_states.build(x.shape)
    with_states.set_weights(reference.get_weights())
    got = value_and_grads(layer, x, weighted_sum)
    assert_same_loss_and_gradients(
        got, value_and_grads(StopGradientReference(with_states, k2), x, weighted_sum)
    )
    # Only the last k2 processed steps receive gradient.
    expected = list(range(k2)) if go_backwards else list(range(T - k2, T))
    assert reached_steps(got[2]) == expected
    assert_close(layer(x), reference(x))  # the forward pass is unchanged


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_truncation_at_the_length_is_full_bptt(kind, x):
    reference, layer = twins(kind, truncate_gradient=T, return_sequences=True)
    assert_same_loss_and_gradients(
        value_and_grads(layer, x, weighted_sum), value_and_grads(reference, x, weighted_sum)
    )


# --- masks, initial states, state_step: independent of the cuts ---------------

MASK = np.array([
    [1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 0, 0, 0, 0, 0, 0],  # right padding
    [0, 0, 0, 1, 1, 1, 1, 1],  # left padding
    [1, 1, 0, 0, 0, 1, 1, 0],  # gaps
    [1, 0, 1, 0, 1, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 0, 0],  # fully masked
    [0, 0, 0, 0, 0, 0, 0, 1],
], bool)
# (truncate_gradient, state_step): cuts after 3 processed steps, and after
# 2 and 4 (truncate_gradient=k cuts after 8 - k).
CUTS = [(5, None), (4, 2)]


# (go_backwards, return_sequences, zero_output_for_mask)
MASK_OPTIONS = [(False, True, False), (True, True, False), (False, False, False),
                (True, False, False), (False, True, True)]
# Pairwise rather than the whole cross product: every kind meets every mask
# option and both cuts, and every option both cuts (30 cases, not 60).
MASK_CASES = [
    pytest.param(kind, CUTS[(i + j) % 2], *option, id=f"{kind}-{CUTS[(i + j) % 2]}-{j}")
    for i, kind in enumerate(KIND_NAMES) for j, option in enumerate(MASK_OPTIONS)
]


@pytest.mark.parametrize(
    "kind, cuts, go_backwards, return_sequences, zero_output_for_mask", MASK_CASES
)
def test_masked_forward_pass_does_not_depend_on_the_cuts(
    kind, cuts, go_backwards, return_sequences, zero_output_for_mask, rng
):
    batch, steps = MASK.shape
    x = rng.normal(size=(batch, steps, FEATURES)).astype("float32")
    truncate_gradient, state_step = cuts
    kwargs = {"return_sequences": return_sequences, "go_backwards": go_backwards,
              "return_state": True, "zero_output_for_mask": zero_output_for_mask}
    reference, layer = twins(kind, x.shape, truncate_gradient, state_step, **kwargs)
    structure = reference.get_initial_state(batch)
    h0 = tree.map_structure(
        lambda s: rng.normal(size=tuple(s.shape)).astype("float32"), structure
    )
    call = {"mask": MASK, "initial_state": h0}
    output, *states = layer(x, **call)
    expected_output, *expected_states = reference(x, **call)
    assert_close(output, expected_output)
    if state_step is not None:
        # The returned state is the one after `state_step` processed steps.
        first = slice(steps - state_step, steps) if go_backwards else slice(0, state_step)
        _, *expected_states = reference(x[:, first], **{**call, "mask": MASK[:, first]})
    assert_close(states, expected_states)


@pytest.mark.parametrize("state_step", [1, 5, T])
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_state_step_returns_the_state_after_that_step(kind, state_step, x):
    reference, layer = twins(kind, state_step=state_step, return_sequences=True,
                             return_state=True)
    output, *states = layer(x)
    expected_output, *_ = reference(x)
    _, *expected_states = reference(x[:, :state_step])
    assert_close(output, expected_output)
    assert_close(states, expected_states)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_a_stateful_layer_carries_the_state_after_state_step(kind, rng):
    """Overlapping windows (decoupled k2 > k1): the second chunk continues
    from the state after `state_step` steps of the first."""
    x = rng.normal(size=(2, 12, FEATURES)).astype("float32")
    with_states, _ = twins(kind, (2, 8, FEATURES), return_sequences=True, return_state=True)
    layer = make(kind, truncate_gradient=3, state_step=4, stateful=True, return_sequences=True)
    layer.build((2, 8, FEATURES))
    copy_weights(with_states, layer, scale=1.0)
    first, second = layer(x[:, :8]), layer(x[:, 4:12])
    expected_first, *_ = with_states(x[:, :8])
    _, *states = with_states(x[:, :4])
    expected_second, *_ = with_states(x[:, 4:12], initial_state=states)
    assert_close([first, second], [expected_first, expected_second])
    # The tracked states hold the carried state, after the kernels.
    _, *carried = with_states(x[:, 4:8], initial_state=states)
    assert_close(layer.states, carried)
    n_states = len(tree.flatten(layer.states))
    assert [w.path for w in layer.weights[-n_states:]] == [
        v.path for v in tree.flatten(layer.states)
    ]
    assert len(layer.trainable_weights) == len(with_states.trainable_weights)


# --- per-row resets and stateful training over plans --------------------------


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_resets_zero_only_the_flagged_rows(kind, rng):
    first, second = rng.normal(size=(2, 4, 6, 3)).astype("float32")
    reference, _ = twins(kind, first.shape, return_sequences=True)
    layer = make(kind, stateful=True, return_sequences=True)
    layer.build(first.shape)
    copy_weights(reference, layer, scale=1.0)
    layer(first)
    got = layer(second, resets=np.array([1, 0, 1, 0], "float32"))
    from_zero = to_numpy(reference(second))
    continued = to_numpy(reference(np.concatenate([first, second], axis=1)))[:, 6:]
    np.testing.assert_allclose(to_numpy(got)[[0, 2]], from_zero[[0, 2]], atol=1e-5)
    np.testing.assert_allclose(to_numpy(got)[[1, 3]], continued[[1, 3]], atol=1e-5)


@pytest.fixture(scope="module")
def ragged():
    """8 ragged series (11 to 90 steps) and targets."""
    rng = np.random.default_rng(7)
    lengths = np.r_[11, 90, rng.integers(11, 91, size=6)]
    series = [rng.normal(size=(n, 2)).astype("float32") for n in lengths]
    targets = [rng.normal(size=(n, 1)).astype("float32") for n in lengths]
    return series, targets


def one_pass_per_series(kind, layer, series):
    """Outputs of the Keras layer with `layer`'s kernels over each whole series."""
    keras.utils.set_random_seed(7)
    reference = make(kind, truncated=False, return_sequences=True)
    reference.build((None, None, series[0].shape[-1]))
    copy_weights(layer, reference, scale=1.0)
    return [to_numpy(reference(s[None]))[0] for s in series]


def stateful_layer(kind, plan, features=2):
    keras.utils.set_random_seed(7)
    layer = make(kind, stateful=True, return_sequences=True, **plan.layer_kwargs)
    inner = keras.Sequential(
        [keras.Input(batch_shape=(plan.batch_size, plan.timesteps, features)), layer]
    )
    layer.set_weights([w * 2 for w in layer.get_weights()])  # states are zeros
    return inner, layer


@pytest.mark.parametrize("steps_per_execution", sorted({1, executable_steps(8)}))
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_packed_ragged_panel_with_reset_flags_equals_one_pass(kind, steps_per_execution,
                                                              ragged):
    series, targets = ragged
    plan = kt.decoupled_split(series, 10, 15, targets, batch_size=3, remainder="pad",
                              pack=True)
    inner, layer = stateful_layer(kind, plan)
    model = kt.with_reset_flags(inner)
    model.compile(loss="mse", steps_per_execution=steps_per_execution)
    outputs = model.predict(plan.dataset(reset_flags=True), verbose=0)
    for got, expected in zip(plan.unsplit(outputs), one_pass_per_series(kind, layer, series),
                             strict=True):
        np.testing.assert_allclose(got, expected, atol=2e-5)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_plan_callbacks_carry_tracked_states(kind, ragged):
    """The callback path on a plan with filler rows, padding, and the
    decoupled layer kwargs; fit with a zero learning rate reports the loss
    of one pass (a lost or leaked state shows as a different loss)."""
    series, targets = ragged
    plan = kt.decoupled_split(series, 10, 4, targets, batch_size=3, remainder="pad")
    inner, layer = stateful_layer(kind, plan)
    assert plan.layer_kwargs == {"truncate_gradient": 4}
    passes = one_pass_per_series(kind, layer, series)
    outputs = inner.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    for got, expected in zip(plan.unsplit(outputs), passes, strict=True):
        np.testing.assert_allclose(got, expected, atol=2e-5)
    if BACKEND == "jax":
        tracked = {id(v) for v in inner.non_trainable_variables}
        assert all(id(v) in tracked for v in tree.flatten(layer.states))


def test_a_layer_without_the_plans_kwargs_is_refused(ragged):
    series, targets = ragged
    plan = kt.decoupled_split(series, 10, 15, targets, batch_size=3, remainder="pad")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 2)),
        kt.TBPTTGRU(UNITS, stateful=True, return_sequences=True),
    ])
    with pytest.raises(ValueError, match="does not match the decoupled_split plan"):
        model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)


def test_keras_own_stateful_gru_cannot_read_reset_flags():
    model = keras.Sequential([
        keras.Input(batch_shape=(2, 5, 1)),
        keras.layers.GRU(3, stateful=True, name="keras_gru"),
    ])
    with pytest.raises(ValueError, match=r"\['keras_gru'\] cannot read reset flags.*TBPTTGRU"):
        kt.with_reset_flags(model)


# --- Bidirectional, go_backwards ----------------------------------------------


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_bidirectional_truncates_each_direction(kind, rng):
    x = rng.normal(size=(2, 12, FEATURES)).astype("float32")
    keras.utils.set_random_seed(3)
    reference = keras.layers.Bidirectional(
        make(kind, truncated=False, return_sequences=True), merge_mode=None)
    layer = keras.layers.Bidirectional(
        make(kind, truncate_gradient=3, return_sequences=True), merge_mode=None)
    reference.build(x.shape)
    layer.build(x.shape)
    copy_weights(reference, layer)

    def sum_of(index):
        def loss(outputs):
            out, other = outputs[index], outputs[1 - index]
            weights = ops.cos(ops.arange(out.shape[1], dtype="float32"))[:, None]
            # 0 * other: torch refuses gradients of weights the loss does not use
            return ops.sum(out * weights) + 0.0 * ops.sum(other)
        return loss

    assert not layer._can_attempt_fused_gru(None)
    assert not layer._can_attempt_fused_lstm(None)
    assert_close(layer(x), reference(x))
    assert reached_steps(value_and_grads(layer, x, sum_of(0))[2]) == [9, 10, 11]
    assert reached_steps(value_and_grads(layer, x, sum_of(1))[2]) == [0, 1, 2]


def test_bidirectional_of_an_untruncated_gru_may_still_fuse():
    wrapper = keras.layers.Bidirectional(kt.TBPTTGRU(UNITS))
    wrapper.build((2, 5, FEATURES))
    assert wrapper._can_attempt_fused_gru(None)
    assert getattr(keras.layers.Bidirectional._can_attempt_fused_gru, "_asks_layers", False)


# --- the fused kernels ----------------------------------------------------------


@pytest.fixture(params=["device", "gpu_stand_in"])
def gru_kernel_calls(request, monkeypatch):
    """Counts the calls of Keras' fused GRU kernel (`backend.gru`) that
    return (rather than refuse), and of torch's `_VF.gru`, which serves the
    pieces on CPU under torch instead (`layers/fused_kernels.py`).
    "gpu_stand_in": under JAX, Keras' GPU path on CPU (`_is_gpu_available`
    patched to True, as for the LSTM): JAX has no fused GRU, so the same
    `lax.scan` kernel runs there."""
    backend_module = importlib.import_module("keras.src.backend")
    if request.param == "gpu_stand_in":
        if BACKEND != "jax":
            pytest.skip("the GPU stand-in is for the JAX backend")
        keras_jax_rnn = importlib.import_module("keras.src.backend.jax.rnn")
        monkeypatch.setattr(keras_jax_rnn, "_is_gpu_available", lambda: True)
    calls = {"gru": 0}
    fused = backend_module.gru

    def counting(*args, **kwargs):
        out = fused(*args, **kwargs)
        calls["gru"] += 1
        return out

    monkeypatch.setattr(backend_module, "gru", counting)
    torch_gru = fused_kernels.torch_gru

    def counting_torch(*args):
        calls["gru"] += 1
        return torch_gru(*args)

    monkeypatch.setattr(fused_kernels, "torch_gru", counting_torch)
    return calls


@pytest.mark.parametrize("go_backwards", [False, True])
def test_gru_pieces_run_on_the_fused_kernel(gru_kernel_calls, go_backwards, rng):
    """Under JAX and torch (CPU) Keras runs a GRU with reset_after=True on
    its fused kernel; each piece of a truncated TBPTTGRU does too (torch's
    `_VF.gru` under torch), with the truncation intact. TensorFlow's kernel is cuDNN only: on CPU each piece
    takes the generic loop."""
    x = rng.normal(size=(2, 12, FEATURES)).astype("float32")
    reference, layer = twins("gru", x.shape, truncate_gradient=3, state_step=5,
                             return_sequences=True, return_state=True,
                             go_backwards=go_backwards)
    _, _, dx = value_and_grads(layer, x, weighted_sum)
    outputs = layer(x)
    if BACKEND in ("jax", "torch"):
        assert gru_kernel_calls["gru"] >= 6  # 3 pieces, twice
    else:
        assert gru_kernel_calls["gru"] == 0
    assert reached_steps(dx) == ([0, 1, 2] if go_backwards else [9, 10, 11])
    expected, *_ = reference(x)
    _, *states = reference(x[:, 7:] if go_backwards else x[:, :5])
    assert_close(outputs, [expected, *states])


# --- saving, rebatch, forecast, streaming, grid_search --------------------------


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_save_and_load_round_trip(kind, tmp_path, x):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input(batch_shape=x.shape),
        make(kind, truncate_gradient=5, state_step=4, stateful=True, return_sequences=True),
        keras.layers.Dense(1),
    ])
    expected = to_numpy(model(x))
    layer = model.layers[0]
    carried = flat(layer.states)
    layer.reset_state()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    again = loaded.layers[0]
    assert type(again) is type(layer)
    assert (again.truncate_gradient, again.state_step, again.stateful) == (5, 4, True)
    np.testing.assert_allclose(to_numpy(loaded(x)), expected, atol=1e-6)
    assert_close(again.states, carried)
    config = layer.get_config()
    assert type(layer).from_config(copy.deepcopy(config)).get_config() == config


SAVE_AND_LOAD = r"""
import sys
if sys.argv[2] == "keras_first":
    import keras, keras_tbptt
else:
    import keras_tbptt, keras
layers = keras.models.load_model(sys.argv[1]).layers
print(*[f"{type(layer).__name__}:{layer.truncate_gradient}" for layer in layers])
"""


def test_a_fresh_process_loads_every_layer_in_any_import_order(tmp_path):
    model = keras.Sequential([
        keras.Input(batch_shape=(2, 6, 1)),
        kt.TBPTTGRU(3, truncate_gradient=2, return_sequences=True, reset_after=False),
        kt.TBPTTSimpleRNN(3, truncate_gradient=3, return_sequences=True, stateful=True),
        kt.TBPTTRNN([keras.layers.GRUCell(2), keras.layers.LSTMCell(2)], truncate_gradient=4),
    ])
    path = tmp_path / "model.keras"
    model.save(path)
    for order in ("keras_first", "keras_tbptt_first"):
        out = subprocess.run([sys.executable, "-c", SAVE_AND_LOAD, str(path), order],
                             capture_output=True, text=True)
        assert out.stdout.split() == ["TBPTTGRU:2", "TBPTTSimpleRNN:3", "TBPTTRNN:4"], (
            order, out.stderr[-2000:])


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_rebatch_and_forecast(kind, rng):
    """`rebatch` keeps the kernels and resets the states; `forecast` equals
    a stateless pass over the history and every fed-back step."""
    history = rng.normal(size=(23, 1)).astype("float32")
    keras.utils.set_random_seed(2)
    model = keras.Sequential([
        keras.Input(batch_shape=(4, 5, 1)),
        make(kind, stateful=True, truncate_gradient=2, return_sequences=True),
        keras.layers.Dense(1),
    ])
    model(np.ones((4, 5, 1), "float32"))  # non-zero carried states
    single = kt.rebatch(model, 1, timesteps=None)
    assert single.input_shape == (1, None, 1)
    assert all(np.abs(s).max() == 0 for s in flat(single.layers[0].states))
    got = kt.forecast(model, history, 3)
    stateless = keras.Sequential([
        keras.Input((None, 1)),
        make(kind, truncated=False, return_sequences=True),
        keras.layers.Dense(1),
    ])
    stateless.set_weights(kernels(model.layers[0]) + model.layers[1].get_weights())
    rows = list(history)
    for step in range(3):
        expected = to_numpy(stateless(np.stack(rows)[None]))[0, -1]
        np.testing.assert_allclose(got[step], expected, atol=1e-5)
        rows.append(got[step])


STREAMABLE = ["gru", "gru_reset_before", "simple_rnn", "rnn_lstm_cell", "rnn_own_cell"]


@pytest.mark.parametrize("kind", STREAMABLE)
def test_streaming_rebuilds_the_keras_layer(kind, rng):
    series = rng.normal(size=(2, 15, FEATURES)).astype("float32")
    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        keras.Input(batch_shape=(2, 5, FEATURES)),
        make(kind, stateful=True, truncate_gradient=2, return_sequences=True, name="rnn"),
    ])
    streamer = kt.streaming(model)
    rebuilt = [layer for layer in streamer.layers if isinstance(layer, keras.layers.RNN)]
    keras_class = type(make(kind, truncated=False))
    assert [type(layer) for layer in rebuilt] == [keras_class]
    states = [np.zeros((2, t.shape[-1]), "float32") for t in streamer.inputs[1:]]
    outputs = []
    for chunk in (series[:, :4], series[:, 4:11], series[:, 11:]):
        y, *states = streamer.predict_on_batch([chunk, *states])
        outputs.append(y)
    with_states = make(kind, truncated=False, return_sequences=True)
    with_states.build(series.shape)
    with_states.set_weights(kernels(model.layers[0]))
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), to_numpy(with_states(series)),
                               atol=1e-5)


def test_grid_search_with_a_decoupled_gru(rng):
    x = rng.normal(size=(4, 60, 1)).astype("float32")

    def build_model(timesteps, batch_size, **layer_kwargs):
        model = keras.Sequential([
            keras.Input(batch_shape=(batch_size, timesteps, 1)),
            kt.TBPTTGRU(3, stateful=True, return_sequences=True, **layer_kwargs),
            keras.layers.Dense(1),
        ])
        model.compile(optimizer="adam", loss="mse")
        return model

    result = kt.grid_search(build_model, x, x, timesteps=[(4, 8)], scheme="decoupled",
                            repeats=1, epochs=1, progress=False)
    assert len(result.results) == 1 and np.isfinite(result.results["score"]).all()


# --- a Keras layer the package does not ship: ConvLSTM2D -----------------------


class TBPTTConvLSTM2D(kt.layers.TruncatedRNN, keras.layers.ConvLSTM2D):
    """The docs' claim: the shared base truncates ConvLSTM2D too."""


def test_a_convlstm2d_subclass_is_truncated(rng):
    x = rng.normal(size=(2, 8, 4, 4, 1)).astype("float32")
    mask = np.array([[0, 0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0, 0]], bool)
    conv = {"filters": 2, "kernel_size": 3, "padding": "same", "return_sequences": True}
    keras.utils.set_random_seed(5)
    reference = keras.layers.ConvLSTM2D(**conv, return_state=True)
    layer = TBPTTConvLSTM2D(**conv, truncate_gradient=3)
    reference.build(x.shape)
    layer.build(x.shape)
    copy_weights(reference, layer)
    # Keras' JAX loop cannot mask a ConvLSTM (its mask does not broadcast
    # against image states), its own layer included.
    call = {} if BACKEND == "jax" else {"mask": mask}
    assert_close(layer(x, **call), reference(x, **call)[0])
    assert reached_steps(value_and_grads(layer, x, weighted_sum)[2]) == [5, 6, 7]
    stateful = TBPTTConvLSTM2D(**conv, stateful=True, state_step=4)
    stateful.build((2, 6, 4, 4, 1))
    copy_weights(reference, stateful, scale=1.0)
    stateful(x[:, :6])
    second = stateful(x[:, 4:8], resets=np.array([1, 0], "float32"))
    _, *states = reference(x[:, :4])
    from_zero = reference(x[:, 4:8])[0]
    continued = reference(x[:, 4:8], initial_state=states)[0]
    assert_close(second[:1], from_zero[:1])
    assert_close(second[1:], continued[1:])
