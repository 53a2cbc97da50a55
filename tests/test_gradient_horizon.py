"""`gradient_horizon` and `GradientHorizonLog` (issue 29).

The gradients it compares are checked against a hand-written
`stop_gradient` truncation of Keras' own layers (LSTM, GRU, RNN of a
SimpleRNNCell) with the same weights; the acceptance task is the delay
task of the issue (the output at t is the input at t - 12, T = 60, a
32-unit LSTM trained 60 epochs with Adam(1e-2)), trained once per module.
Runs under every backend (`KERAS_BACKEND`).
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from conftest import to_numpy, value_and_grads

import keras_tbptt as kt
from keras_tbptt.training.gradient_horizon import truncated_weight_gradients

pytestmark = pytest.mark.keras
ops = keras.ops
BACKEND = keras.backend.backend()
BATCH, T, FEATURES, UNITS = 3, 10, 2, 4
LAG, DELAY_T = 12, 60
ACCEPTANCE_CANDIDATES = [8, 16, 32, DELAY_T]

KINDS = {
    "lstm": (lambda **kw: kt.TBPTTLSTM(UNITS, **kw), lambda **kw: keras.layers.LSTM(UNITS, **kw)),
    "gru": (lambda **kw: kt.TBPTTGRU(UNITS, **kw), lambda **kw: keras.layers.GRU(UNITS, **kw)),
    "rnn_simple_cell": (
        lambda **kw: kt.TBPTTRNN(keras.layers.SimpleRNNCell(UNITS), **kw),
        lambda **kw: keras.layers.RNN(keras.layers.SimpleRNNCell(UNITS), **kw),
    ),
}


def regressor(layer, timesteps=T, features=FEATURES, batch_size=None):
    shape = {"batch_shape": (batch_size, timesteps, features)}
    model = keras.Sequential([keras.Input(**shape), layer, keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


class StopGradientReference(keras.layers.Layer):
    """Truncation spelled out on Keras' own layer: the first T - k2 steps
    under stop_gradient, the last k2 from their (stopped) states, then the
    same Dense head."""

    def __init__(self, rnn, dense, k2):
        super().__init__()
        self.rnn, self.dense, self.k2 = rnn, dense, k2
        self.built = True

    def call(self, x, training=False):
        if self.k2 is None or self.k2 >= T:
            return self.dense(self.rnn(x)[0])
        early_out, *states = self.rnn(x[:, : T - self.k2])
        late_out, *_ = self.rnn(
            x[:, T - self.k2:], initial_state=[ops.stop_gradient(s) for s in states])
        return self.dense(ops.concatenate([ops.stop_gradient(early_out), late_out], axis=1))


@pytest.fixture
def batch(rng):
    x = rng.normal(size=(BATCH, T, FEATURES)).astype("float32")
    y = rng.normal(size=(BATCH, T, 1)).astype("float32")
    weight = rng.uniform(0.5, 1.5, size=(BATCH, T)).astype("float32")
    return x, y, weight


# k2 = T runs the graph of full BPTT: checked by the cosines of 1 below.
@pytest.mark.parametrize("k2", [1, 4, None])
@pytest.mark.parametrize("kind", list(KINDS))
def test_compared_gradients_equal_a_stop_gradient_reference(kind, k2, batch):
    x, y, weight = batch
    keras.utils.set_random_seed(3)
    model = regressor(KINDS[kind][0](return_sequences=True, truncate_gradient=2))
    rnn = KINDS[kind][1](return_sequences=True, return_state=True)
    rnn.build((None, T, FEATURES))
    dense = keras.layers.Dense(1)
    dense.build((None, T, UNITS))
    rnn.set_weights(model.layers[0].get_weights())
    dense.set_weights(model.layers[1].get_weights())

    def weighted_mse(out):  # Keras' mse with sample weights, sum over batch size
        targets, weights = ops.convert_to_tensor(y), ops.convert_to_tensor(weight)
        return ops.sum(ops.mean(ops.square(out - targets), axis=-1) * weights) / (BATCH * T)

    _, expected, _ = value_and_grads(StopGradientReference(rnn, dense, k2), x, weighted_mse)
    got = truncated_weight_gradients(model, x, y, weight, k2)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)
    assert model.layers[0].truncate_gradient == 2  # restored


def test_horizon_cosines_are_those_of_the_reference_gradients(batch):
    x, y, weight = batch
    keras.utils.set_random_seed(3)
    model = regressor(kt.TBPTTLSTM(UNITS, return_sequences=True))
    horizon = kt.gradient_horizon(model, x, y, sample_weight=weight, candidates=[T, 3],
                                  batch_size=BATCH, output_steps=1)
    full = np.concatenate([g.ravel() for g in truncated_weight_gradients(model, x, y, weight, None)])
    cut = np.concatenate([g.ravel() for g in truncated_weight_gradients(model, x, y, weight, 3)])
    cosine = full @ cut / np.linalg.norm(full) / np.linalg.norm(cut)
    assert horizon.candidates == (3, T)  # sorted
    np.testing.assert_allclose(horizon.cosine, [cosine, 1.0], rtol=1e-4)
    np.testing.assert_allclose(
        horizon.relative_error[0], np.linalg.norm(cut - full) / np.linalg.norm(full), rtol=1e-4)
    assert horizon.relative_error[1] < 1e-5


def test_input_gradient_norm_is_the_per_lag_norm_of_a_delay(rng):
    """A hand-built model whose output at t is its input at t - 1 (a linear
    SimpleRNN cell of two units passing its input along, kernels set by
    hand): the whole input-gradient mass sits at lag 1."""
    cell = keras.layers.SimpleRNNCell(2, activation=None, use_bias=False)
    model = keras.Sequential([keras.Input((6, 1)),
                              kt.TBPTTRNN(cell, return_sequences=True),
                              keras.layers.Dense(1, use_bias=False)])
    model.compile(loss="mse")
    # h1_t = x_t, h2_t = h1_{t-1}: the output h2_t is x_{t-1}.
    model.set_weights([np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [0.0, 0.0]]),
                       np.array([[0.0], [1.0]])])
    x = rng.normal(size=(4, 6, 1)).astype("float32")
    horizon = kt.gradient_horizon(model, x, rng.normal(size=(4, 6, 1)), candidates=[1, 2, 6])
    np.testing.assert_allclose(horizon.input_gradient_norm, [0, 1, 0, 0, 0, 0], atol=1e-6)
    assert horizon.suggested == 2  # the first k2 that reaches lag 1
    np.testing.assert_allclose(horizon.coverage, [0, 1, 1], atol=1e-6)


# --- the acceptance task -----------------------------------------------------

def delay_data(samples=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, DELAY_T, 1)).astype("float32")
    y = np.zeros_like(x)
    y[:, LAG:] = x[:, :-LAG]
    weight = np.ones(x.shape[:2], "float32")
    weight[:, :LAG] = 0  # no target before the first delayed input
    return x, y, weight


def delay_model():
    keras.utils.set_random_seed(0)
    return regressor(kt.TBPTTLSTM(32, return_sequences=True), timesteps=DELAY_T, features=1)


@pytest.fixture(scope="module")
def delay_horizons():
    """The horizon of the delay model before and after 60 epochs."""
    if BACKEND == "torch":
        pytest.skip("the acceptance task runs under TensorFlow and JAX (time budget)")
    x, y, weight = delay_data()
    model = delay_model()
    kwargs = {"sample_weight": weight, "candidates": ACCEPTANCE_CANDIDATES, "batches": 2,
                  "output_steps": 6}
    before = kt.gradient_horizon(model, x, y, **kwargs)
    history = model.fit(x, y, sample_weight=weight, epochs=60, batch_size=8, verbose=0)
    after = kt.gradient_horizon(model, x, y, **kwargs)
    return before, after, history.history["loss"]


def test_the_trained_delay_model_looks_back_at_the_delay(delay_horizons):
    _, after, losses = delay_horizons
    assert losses[-1] < 0.5 * losses[0]  # it learned something of the delay
    assert abs(after.peak_lag - LAG) <= 2
    assert LAG <= after.suggested <= 32


@pytest.mark.parametrize("which", [0, 1], ids=["untrained", "trained"])
def test_cosines_grow_with_k2_and_are_one_at_the_length(delay_horizons, which):
    horizon = delay_horizons[which]
    assert np.all(np.diff(horizon.cosine) > -0.02), horizon.cosine
    assert np.all(np.diff(horizon.recurrent_cosine) > -0.02), horizon.recurrent_cosine
    assert abs(horizon.cosine[-1] - 1) < 1e-4 and horizon.relative_error[-1] < 1e-4


def test_training_moves_the_input_gradient_to_the_delay(delay_horizons):
    before, after, _ = delay_horizons
    near_the_delay = slice(LAG - 2, LAG + 3)
    assert before.peak_lag < LAG - 2  # untrained: the recent steps
    assert after.input_gradient_norm[near_the_delay].sum() > (
        2 * before.input_gradient_norm[near_the_delay].sum())


# --- the model is left as it was ----------------------------------------------

def snapshot(model):
    return [to_numpy(v) for v in [*model.variables, *model.optimizer.variables]]


def test_the_model_is_unchanged_and_a_stateful_model_keeps_its_states(rng):
    keras.utils.set_random_seed(1)
    model = regressor(kt.TBPTTGRU(UNITS, stateful=True, return_sequences=True,
                                  truncate_gradient=5), batch_size=BATCH)
    x = rng.normal(size=(2 * BATCH, T, FEATURES)).astype("float32")
    y = rng.normal(size=(2 * BATCH, T, 1)).astype("float32")
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)  # states, optimizer
    before = snapshot(model)
    assert np.abs(to_numpy(model.layers[0].states[0])).sum() > 0
    horizon = kt.gradient_horizon(model, x, y, candidates=[2, T], output_steps=2)
    assert horizon.batches == 2
    for got, expected in zip(snapshot(model), before, strict=True):
        np.testing.assert_array_equal(got, expected)
    assert model.layers[0].truncate_gradient == 5


def test_the_layer_setting_is_restored_on_error(rng, monkeypatch):
    from keras_tbptt.training import loss_gradients

    model = regressor(kt.TBPTTLSTM(UNITS, return_sequences=True, truncate_gradient=3))
    x = rng.normal(size=(BATCH, T, FEATURES)).astype("float32")

    def fail(self, *args):
        raise RuntimeError("boom")

    monkeypatch.setattr(loss_gradients.LossGradients, "__call__", fail)
    with pytest.raises(RuntimeError, match="boom"):
        kt.gradient_horizon(model, x, x[..., :1])
    assert model.layers[0].truncate_gradient == 3


def test_a_plan_brings_its_batches(rng):
    series = rng.normal(size=(2, 40, 1)).astype("float32")
    plan = kt.naive_split(series, 10, series, batch_size=2)
    model = regressor(kt.TBPTTLSTM(UNITS, stateful=True, return_sequences=True),
                      features=1, batch_size=2)
    horizon = kt.gradient_horizon(model, plan, candidates=[2, 10], batches=3, output_steps=2)
    assert horizon.batches == 3 and horizon.timesteps == 10
    assert horizon.cosine[-1] == pytest.approx(1.0, abs=1e-4)


# --- the callback ---------------------------------------------------------------

def test_the_callback_records_every_n_epochs_and_leaves_training_identical(rng):
    x = rng.normal(size=(8, T, FEATURES)).astype("float32")
    y = rng.normal(size=(8, T, 1)).astype("float32")

    def train(callbacks):
        keras.utils.set_random_seed(5)
        model = regressor(kt.TBPTTLSTM(UNITS, return_sequences=True, dropout=0.2))
        model.fit(x, y, batch_size=4, epochs=3, verbose=0, shuffle=False, callbacks=callbacks)
        return model

    log = kt.GradientHorizonLog(x, y, every=2, candidates=[T], batches=1, output_steps=1)
    logged, plain = train([log]), train([])
    for got, expected in zip(logged.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert [epoch for epoch, _ in log.history] == [0, 2]  # not after epoch 1 or 3
    assert all(isinstance(h, type(log.history[0][1])) for _, h in log.history)
    logged.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[log])
    assert [epoch for epoch, _ in log.history] == [0]  # a new fit, a new record


# --- argument checks ------------------------------------------------------------

def _model():
    return regressor(kt.TBPTTLSTM(UNITS, return_sequences=True))


X = np.zeros((BATCH, T, FEATURES), "float32")
Y = np.zeros((BATCH, T, 1), "float32")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"candidates": [0, 2]}, ValueError, "`candidates` must be an integer >= 1"),
    ({"candidates": [2.5]}, TypeError, "`candidates` must be an integer"),
    ({"candidates": []}, ValueError, "`candidates` must not be empty"),
    ({"candidates": "4"}, TypeError, "`candidates` must be a sequence"),
    ({"threshold": 0}, ValueError, r"`threshold` must be a number in \(0, 1\]"),
    ({"threshold": 1.5}, ValueError, r"`threshold` must be a number in \(0, 1\]"),
    ({"batches": 0}, ValueError, "`batches` must be an integer >= 1"),
    ({"output_steps": 0}, ValueError, "`output_steps` must be an integer >= 1"),
    ({"batch_size": 0}, ValueError, "`batch_size` must be None or an integer >= 1"),
    ({"batch_size": 5}, ValueError, r"at least one batch of 5 samples"),
    ({"progress": "yes"}, TypeError, "`progress` must be True or False"),
    ({"y": Y[:2]}, ValueError, r"one row per sample of `x`.\n- Expected: y.shape\[0\] == 3"),
    ({"y": None}, ValueError, "`y` is needed"),
    ({"x": X[0]}, ValueError, r"- Expected: 3 dimensions\n- Received: shape \(10, 2\)"),
    ({"sample_weight": np.ones((2, T))}, ValueError, "`sample_weight` must have one row"),
])
def test_invalid_arguments_are_refused(kwargs, error, message):
    call = {"x": X, "y": Y, **kwargs}
    with pytest.raises(error, match=message):
        kt.gradient_horizon(_model(), **call)


def test_models_that_cannot_be_measured_are_refused():
    plain = keras.Sequential([keras.Input((T, FEATURES)), keras.layers.LSTM(UNITS)])
    plain.compile(loss="mse")
    with pytest.raises(ValueError, match="no TruncatedRNN layer.*kt.TBPTTLSTM"):
        kt.gradient_horizon(plain, X, Y)
    uncompiled = keras.Sequential([keras.Input((T, FEATURES)), kt.TBPTTLSTM(UNITS)])
    with pytest.raises(ValueError, match="must be compiled with a loss"):
        kt.gradient_horizon(uncompiled, X, Y)
    with pytest.raises(TypeError, match="`model` must be a keras.Model"):
        kt.gradient_horizon(kt.TBPTTLSTM(UNITS), X, Y)


@pytest.mark.parametrize("kwargs, message", [
    ({"every": 0}, "`every` must be an integer >= 1"),
    ({"threshold": 2}, r"`threshold` must be a number in \(0, 1\]"),
    ({"candidates": [0]}, "`candidates` must be an integer >= 1"),
])
def test_invalid_callback_arguments_are_refused(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        kt.GradientHorizonLog(X, Y, **kwargs)


def test_a_recompiled_model_gets_the_gradient_of_its_new_loss(batch):
    """Under JAX the compiled gradients are kept per model and setting:
    a new loss must not reuse the old program."""
    from keras_tbptt.training.loss_gradients import LossGradients

    x, y, weight = batch
    keras.utils.set_random_seed(3)
    model = regressor(kt.TBPTTLSTM(UNITS, return_sequences=True, truncate_gradient=3))
    mse, _ = LossGradients(model)(x, y, weight)
    model.compile(optimizer="adam", loss="mae")
    mae, _ = LossGradients(model)(x, y, weight)
    reference = truncated_weight_gradients(model, x, y, weight, 3)  # op by op, uncached
    for got, expected in zip(mae, reference, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(mae[0], mse[0])
