"""Cut points that move between epochs: `naive_split(offsets="random")`.

Data side (no Keras): every offset's layout holds each series' steps once,
in order, with padding of weight 0 and resets where the fixed plan has
them. Keras side (every backend): a row flagged `1 + p` is held at its reset
state over the batch's first `p` steps, so its real steps compute exactly
what Keras' own layer computes on the unpadded sequence (outputs, states,
gradients); `fit` trains each epoch on that epoch's layout; the refusals.
"""

import numpy as np
import pytest

import keras_tbptt as kt
from keras_tbptt.core.moving_cuts import moved_epoch, moved_flags

T = 8


def encoded(lengths, features=1):
    """Series whose values name (series, step): 1000 * (series + 1) + step,
    never 0 (0 is padding)."""
    return [
        np.stack([1000.0 * (i + 1) + np.arange(n)] * features, axis=-1).astype("float32")
        for i, n in enumerate(lengths)
    ]


# (lengths, naive_split arguments): equal series; ragged and padded with
# filler rows; streams; a dropped remainder.
CASES = {
    "equal": ([32, 32, 32], {"batch_size": 3}),
    "ragged_filler": ([37, 16, 29], {"batch_size": 2, "remainder": "pad"}),
    "streams": ([48, 32], {"streams": 2, "batch_size": 4}),
    "drop": ([35, 26], {"remainder": "drop"}),
}


def row_streams(plan, offset):
    """Each row's steps end to end over its group's batches at `offset`:
    `[(x, weight)]` per row of every group, in plan order."""
    streams, group = [], []
    for index in range(len(plan)):
        if plan.resets[index] and group:
            streams.append([np.concatenate(part, axis=1) for part in zip(*group)])
            group = []
        x, _, weight = plan.batch(index, offset=offset)
        group.append((x[..., 0], weight))
    streams.append([np.concatenate(part, axis=1) for part in zip(*group)])
    return [(x[i], w[i]) for x, w in streams for i in range(len(x))]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("offset", [0, 1, 5, T - 1])
def test_every_offset_serves_each_series_once_in_order(case, offset):
    lengths, kwargs = CASES[case]
    series = encoded(lengths)
    with pytest.warns(UserWarning) if case == "drop" else _no_warning():
        plan = kt.naive_split(series, T, series, offsets="random", seed=0, **kwargs)
        fixed = kt.naive_split(series, T, series, **kwargs)
    # One more batch per group, the same resets.
    groups = int(fixed.resets.sum())
    assert len(plan) == len(fixed) + groups
    assert plan.resets.sum() == groups
    seen = []
    fixed_rows = [x[w > 0] for x, w in row_streams(fixed, 0)]
    for row, (x, weight) in enumerate(row_streams(plan, offset)):
        real = x[weight > 0]
        assert (x[weight == 0] == 0).all()  # padding: zeros, weight 0
        assert (x[weight > 0] != 0).all()
        if len(real):
            # The row starts `offset` steps in, and runs without a gap.
            first = int(np.flatnonzero(weight > 0)[0])
            assert first == offset
            assert (np.diff(real) == 1).all()
        np.testing.assert_array_equal(real, fixed_rows[row])
        seen.append(real)
    seen = np.concatenate(seen)
    # Each kept step of each series once: nothing dropped, nothing twice.
    kept = np.concatenate([x[w > 0] for x, w in row_streams(fixed, 0)])
    np.testing.assert_array_equal(np.sort(seen), np.sort(kept))
    assert len(np.unique(seen)) == len(seen)
    if case != "drop":
        assert len(seen) == sum(lengths)


def _no_warning():
    import contextlib
    import warnings

    @contextlib.contextmanager
    def guard():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield

    return guard()


def test_offset_zero_is_the_fixed_plan_with_a_padding_chunk():
    series = encoded([24, 24])
    plan = kt.naive_split(series, T, series, offsets="random")
    fixed = kt.naive_split(series, T, series)
    n = fixed.n_samples
    np.testing.assert_array_equal(plan.x[:n], fixed.x)
    assert (plan.x[n:] == 0).all() and (plan.sample_weight[n:] == 0).all()
    # The same mean loss: weight_scale counts the padding chunk.
    assert plan.sample_weight.sum() == pytest.approx(plan.n_samples * T)
    assert plan.positions[n:].tolist() == [[-1, -1]] * 2
    np.testing.assert_array_equal(plan.positions[:n], fixed.positions)
    # The way back is the fixed plan's.
    np.testing.assert_array_equal(np.stack(plan.unsplit(plan.x)), np.stack(series))
    np.testing.assert_array_equal(plan.reset_flags[:2], [1, 1])


@pytest.mark.parametrize("offset", [0, 3, T - 1])
def test_the_epoch_at_once_equals_batch_by_batch(offset):
    series = encoded([37, 16, 29])
    plan = kt.naive_split(series, T, series, batch_size=2, remainder="pad", offsets="random")
    batches = [plan.batch(i, offset=offset) for i in range(len(plan))]
    for part, array in enumerate([plan.x, plan.y, plan.sample_weight]):
        moved = moved_epoch(array, plan.resets, plan.batch_size, offset)
        np.testing.assert_array_equal(moved, np.concatenate([b[part] for b in batches]))
    flags = moved_flags(plan.reset_flags, offset)
    assert flags[plan.reset_flags == 1].tolist() == [1.0 + offset] * 4
    assert (flags[plan.reset_flags == 0] == 0).all()


def test_validation_split_keeps_the_training_part_moving():
    series = encoded([80, 80])
    train, validation = kt.naive_split(
        series, T, series, offsets="random", seed=4
    ).validation_split(0.2)
    assert (train.offsets, train.seed) == ("random", 4)
    assert (validation.offsets, validation.seed) == ("fixed", None)
    assert len(train) == 64 // T + 1 and len(validation) == 16 // T


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"offsets": "moving"}, ValueError, "offsets"),
        ({"offsets": None}, (TypeError, ValueError), "offsets"),
        ({"offsets": "random", "seed": 1.5}, TypeError, "seed"),
        ({"offsets": "random", "seed": -1}, ValueError, "seed"),
        ({"offsets": "random", "seed": True}, TypeError, "seed"),
        ({"seed": 3}, ValueError, "offsets='fixed'"),
        ({"offsets": "random", "pack": True, "batch_size": 2}, ValueError, "pack=True"),
        ({"offsets": "random", "targets": np.zeros(3)}, ValueError, "per-sequence"),
    ],
)
def test_refusals_name_the_argument(kwargs, error, words):
    kwargs = {"targets": None, **kwargs}
    with pytest.raises(error, match=words):
        kt.naive_split(encoded([16, 16, 16]), T, **kwargs)


@pytest.mark.parametrize("offset", [-1, T, 2.0])
def test_batch_offsets_outside_the_chunk_are_refused(offset):
    plan = kt.naive_split(encoded([16]), T, offsets="random")
    with pytest.raises((TypeError, ValueError), match="offset"):
        plan.batch(0, offset=offset)
    fixed = kt.naive_split(encoded([16]), T)
    with pytest.raises(ValueError, match="offsets='fixed'"):
        fixed.batch(0, offset=1)


# ---------------------------------------------------------------------------
# Keras side: the hold
keras_marked = pytest.mark.keras
LAYERS = {"TBPTTLSTM": "LSTM", "TBPTTGRU": "GRU"}


def _keras():
    return pytest.importorskip("keras")


def reference_layer(name, weights, features, **kwargs):
    """Keras' own (untruncated) layer with `weights`, stateless."""
    keras = _keras()
    layer = getattr(keras.layers, LAYERS[name])(3, return_sequences=True, **kwargs)
    layer.build((None, None, features))
    layer.set_weights(weights)
    return layer


@keras_marked
@pytest.mark.parametrize("name", LAYERS)
def test_a_held_row_computes_the_unpadded_sequence_from_zero_state(name):
    """Two batches of 3 rows: row 0 held 3 steps then carried, row 1 reset
    without a hold then carried, row 2 held 7 steps (one real step), then
    reset again and held 2: each row's real steps give Keras' layer on the
    unpadded sequence, its held steps output zeros, and the final states
    are the reference's."""
    keras = _keras()
    from conftest import to_numpy

    rng = np.random.default_rng(3)
    x = [rng.normal(size=(3, T, 2)).astype("float32") for _ in range(2)]
    flags = [np.array([4.0, 1.0, 8.0], "float32"), np.array([0.0, 0.0, 3.0], "float32")]
    for batch, f in zip(x, flags):  # front padding is zeros, as a plan's
        for row, flag in enumerate(f):
            batch[row, : max(int(flag) - 1, 0)] = 0
    layer = getattr(kt, name)(3, stateful=True, return_sequences=True)
    inner = keras.Sequential([keras.Input(batch_shape=(3, T, 2)), layer])
    # Random biases too: from a zero state, zero inputs keep an LSTM or GRU
    # with zero biases at zero, which would hide a state that moves.
    kernels = layer.get_weights()[: -len(keras.tree.flatten(layer.states))]
    weights = [rng.normal(size=w.shape).astype("float32") for w in kernels]
    layer.set_weights(weights + [np.ones(tuple(s.shape), "float32") for s in keras.tree.flatten(layer.states)])
    model = kt.with_reset_flags(inner)
    outputs = [to_numpy(model.predict_on_batch([b, f])) for b, f in zip(x, flags)]
    states = [to_numpy(s) for s in keras.tree.flatten(layer.states)]
    reference = reference_layer(name, weights, 2, return_state=True)
    sequences = {  # row -> (unpadded steps, where they sit in the outputs)
        0: (np.concatenate([x[0][0, 3:], x[1][0]]), [(0, 3), (1, 0)]),
        1: (np.concatenate([x[0][1], x[1][1]]), [(0, 0), (1, 0)]),
        2: (x[1][2, 2:], [(1, 2)]),
    }
    single = to_numpy(reference(x[0][2:3, 7:])[0])[0]
    np.testing.assert_allclose(outputs[0][2, 7:], single, atol=1e-5)
    assert (outputs[0][2, :7] == 0).all() and (outputs[1][2, :2] == 0).all()
    assert (outputs[0][0, :3] == 0).all()
    for row, (steps, places) in sequences.items():
        out, *final = (to_numpy(t)[0] for t in reference(steps[None]))
        got = np.concatenate([outputs[b][row, start:] for b, start in places])
        np.testing.assert_allclose(got, out, atol=1e-5)
        for state, expected in zip(states, final):
            np.testing.assert_allclose(state[row], expected, atol=1e-5)


@keras_marked
@pytest.mark.parametrize("name", LAYERS)
def test_the_gradient_of_held_rows_is_the_unpadded_sequences(name):
    keras = _keras()
    from conftest import value_and_grads

    rng = np.random.default_rng(5)
    holds = [3, 0, 6]
    x = rng.normal(size=(3, T, 2)).astype("float32")
    for row, hold in enumerate(holds):
        x[row, :hold] = 0
    weight = (np.arange(T)[None, :] >= np.array(holds)[:, None]).astype("float32")
    target = rng.normal(size=(3, T, 3)).astype("float32")

    class Held(keras.layers.Layer):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def call(self, inputs, training=False):
            flags = keras.ops.convert_to_tensor(np.array(holds, "float32") + 1)
            return self.inner(inputs, resets=flags, training=training)

    layer = getattr(kt, name)(3, return_sequences=True)
    held = Held(layer)
    held(x)
    weights = [rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()]
    layer.set_weights(weights)
    ops = keras.ops

    def loss(outputs):
        error = ops.square(outputs - ops.convert_to_tensor(target))
        return ops.sum(error * ops.convert_to_tensor(weight[..., None]))

    value, grads, dx = value_and_grads(held, x, loss)
    reference = reference_layer(name, weights, 2)
    expected_value, expected = 0.0, [np.zeros_like(g) for g in grads]
    for row, hold in enumerate(holds):
        def row_loss(outputs, row=row, hold=hold):
            return ops.sum(ops.square(outputs - ops.convert_to_tensor(target[row:row + 1, hold:])))

        v, g, _ = value_and_grads(reference, x[row:row + 1, hold:], row_loss)
        expected_value += v
        expected = [e + gi for e, gi in zip(expected, g)]
    assert value == pytest.approx(expected_value, rel=1e-5)
    for got, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # The held steps' inputs reach nothing.
    assert all((dx[row, :hold] == 0).all() for row, hold in enumerate(holds))


# ---------------------------------------------------------------------------
# Keras side: fit


def ragged_plan(seed=11):
    rng = np.random.default_rng(1)
    series = [rng.normal(size=(n, 2)).astype("float32") for n in (37, 16, 29)]
    targets = [rng.normal(size=(n, 3)).astype("float32") for n in (37, 16, 29)]
    plan = kt.naive_split(
        series, T, targets, batch_size=2, remainder="pad", offsets="random", seed=seed
    )
    return plan, series, targets


def flag_model(plan, weights, learning_rate):
    keras = _keras()
    layer = kt.TBPTTLSTM(3, stateful=True, return_sequences=True)
    inner = keras.Sequential([keras.Input(batch_shape=(plan.batch_size, T, 2)), layer])
    layer.set_weights(weights + layer.get_weights()[len(weights):])
    model = kt.with_reset_flags(inner)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    return model, layer


def lstm_weights():
    rng = np.random.default_rng(2)
    shapes = [(2, 12), (3, 12), (12,)]
    return [rng.normal(scale=0.7, size=s).astype("float32") for s in shapes]


@keras_marked
def test_every_epoch_reports_the_full_pass_loss_and_evaluate_reads_offset_0():
    """With the weights frozen, each epoch (at its own offset) reports the
    mean loss over the real steps of one uninterrupted pass of Keras' LSTM
    over each series: the hold hides the front padding, and the weights the
    end padding; `predict` and `unsplit` give that pass's outputs."""
    keras = _keras()
    from conftest import to_numpy

    plan, series, targets = ragged_plan()
    weights = lstm_weights()
    reference = reference_layer("TBPTTLSTM", weights, 2)
    outputs = [to_numpy(reference(s[None]))[0] for s in series]
    expected = np.mean(np.concatenate(
        [np.mean((o - t) ** 2, axis=-1) for o, t in zip(outputs, targets)]
    ))
    model, _ = flag_model(plan, weights, 0.0)
    data = plan.dataset()
    history = model.fit(data, epochs=3, shuffle=False, verbose=0)
    assert len(set(data.offsets[:3])) > 1  # the cuts did move
    np.testing.assert_allclose(history.history["loss"], [expected] * 3, rtol=1e-5)
    assert model.evaluate(data, verbose=0) == pytest.approx(expected, rel=1e-5)
    predicted = plan.unsplit(model.predict(data, verbose=0))
    for got, want in zip(predicted, outputs, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert len(data.offsets) == 4  # evaluate and predict drew none


@keras_marked
def test_fit_trains_each_epoch_on_that_epochs_layout():
    """Three epochs of SGD: the weights equal those of a hand-written loop
    over `plan.batch(i, offset=offsets[e])` with flags `1 + offsets[e]`, the
    offsets being numpy's draws from the plan's seed."""
    plan, _, _ = ragged_plan(seed=5)
    weights = lstm_weights()
    model, layer = flag_model(plan, weights, 0.1)
    data = plan.dataset()
    model.fit(data, epochs=3, shuffle=False, verbose=0)
    drawn = np.random.default_rng(5).integers(T, size=4).tolist()
    assert data.offsets == drawn and plan.dataset().offsets == drawn[:1]
    by_hand, hand_layer = flag_model(plan, weights, 0.1)
    flags = plan.reset_flags.reshape(len(plan), plan.batch_size)
    for offset in drawn[:3]:
        for index in range(len(plan)):
            x, y, weight = plan.batch(index, offset=offset)
            by_hand.train_on_batch([x, flags[index] * (1 + offset)], y, sample_weight=weight)
    for got, want in zip(layer.get_weights(), hand_layer.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    # ... and not those of the fixed cuts (offset 0 every epoch).
    fixed, fixed_layer = flag_model(plan, weights, 0.1)
    for _ in range(3):
        for index in range(len(plan)):
            x, y, weight = plan.batch(index)
            fixed.train_on_batch([x, flags[index]], y, sample_weight=weight)
    assert not np.allclose(layer.get_weights()[0], fixed_layer.get_weights()[0], atol=1e-4)


@keras_marked
@pytest.mark.parametrize("how", ["callbacks", "no_flags", "not_wrapped", "masked", "own_validation"])
def test_moving_cuts_refuse_what_cannot_hold(how):
    keras = _keras()
    plan, _, _ = ragged_plan()
    if how == "callbacks":
        with pytest.raises(ValueError, match="offsets.*callbacks"):
            plan.callbacks()
        return
    if how == "no_flags":
        with pytest.raises(ValueError, match="reset_flags=False"):
            plan.dataset(reset_flags=False)
        return
    data = plan.dataset()
    if how == "not_wrapped":
        model = keras.Sequential([
            keras.Input(batch_shape=(2, T, 2)),
            kt.TBPTTLSTM(3, stateful=True, return_sequences=True),
        ])
        match = "with_reset_flags"
    else:
        inner = keras.Sequential([
            keras.Input(batch_shape=(2, T, 2)),
            *([keras.layers.Masking()] if how == "masked" else []),
            kt.TBPTTLSTM(3, stateful=True, return_sequences=True),
        ])
        model = kt.with_reset_flags(inner)
        match = "offsets"
    model.compile(loss="mse")
    validation = data if how == "own_validation" else None
    with pytest.raises(ValueError, match=match):
        model.fit(data, validation_data=validation, shuffle=False, verbose=0)


@pytest.mark.keras
def test_layers_whose_states_cannot_be_held_are_refused_under_jax():
    # Keras' JAX loop cannot mask a ConvLSTM's image states: the hold would
    # be lost, so fit refuses (TensorFlow and torch hold them).
    import keras

    class TBPTTConvLSTM1D(kt.layers.TruncatedRNN, keras.layers.ConvLSTM1D):
        pass

    x = np.zeros((2, 40, 4), "float32")
    plan = kt.naive_split(x, 10, x[..., :1], offsets="random", seed=0)
    layer = TBPTTConvLSTM1D(1, 3, padding="same", stateful=True, return_sequences=True)
    model = kt.with_reset_flags(keras.Sequential([
        keras.Input(batch_shape=(plan.batch_size, 10, 4)),
        keras.layers.Reshape((10, 4, 1)), layer,
        keras.layers.Reshape((10, 4)), keras.layers.Dense(1),
    ]))
    model.compile(loss="mse")
    assert layer.can_hold(layer.states) is (keras.backend.backend() != "jax")
    if keras.backend.backend() == "jax":
        with pytest.raises(ValueError, match=r"cannot train layers \['.*'\] under JAX"):
            model.fit(plan.dataset(reset_flags=True), shuffle=False, verbose=0)
