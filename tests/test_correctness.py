"""TBPTTLSTM against references: keras.layers.LSTM and stop_gradient.

Runs under every backend (`KERAS_BACKEND`).
"""

import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import keras_tbptt as kt  # noqa: E402
from conftest import (  # noqa: E402
    stop_gradient_pass,
    to_numpy,
    value_and_grads,
    with_same_weights,
)

pytestmark = pytest.mark.keras
ops = keras.ops
BATCH, T, FEATURES, UNITS = 3, 12, 2, 4


def twins(**kwargs):
    """A keras.layers.LSTM and a TBPTTLSTM with the same weights."""
    keras.utils.set_random_seed(7)
    return with_same_weights(keras.layers.LSTM(UNITS, **kwargs),
                             kt.TBPTTLSTM(UNITS, **kwargs), (BATCH, T, FEATURES))


def weighted_sum(outputs):
    outputs = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    weights = ops.reshape(
        ops.cos(ops.arange(np.prod(outputs.shape[1:]), dtype="float32")),
        outputs.shape[1:],
    )
    return ops.sum(outputs * weights)


@pytest.fixture
def x(rng):
    return rng.normal(size=(BATCH, T, FEATURES)).astype("float32")


OPTIONS = {
    "last_output": {},
    "sequences": {"return_sequences": True},
    "go_backwards": {"return_sequences": True, "go_backwards": True},
    "return_state": {"return_sequences": True, "return_state": True},
    "unroll": {"unroll": True},
    "no_cudnn": {"use_cudnn": False, "return_sequences": True},
    "recurrent_dropout": {"recurrent_dropout": 0.3, "seed": 3, "return_sequences": True},
    "dropout": {"dropout": 0.3, "seed": 3, "return_sequences": True},
}


def assert_same_loss_and_gradients(got, expected):
    (loss, weight_grads, input_grad), (ref_loss, ref_weight_grads, ref_input_grad) = got, expected
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    for a, b in zip([*weight_grads, input_grad], [*ref_weight_grads, ref_input_grad], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("option", list(OPTIONS))
def test_no_truncation_equals_keras_lstm(option, x):
    reference, layer = twins(**OPTIONS[option])
    assert_same_loss_and_gradients(
        value_and_grads(layer, x, weighted_sum), value_and_grads(reference, x, weighted_sum)
    )
    np.testing.assert_allclose(to_numpy(weighted_sum(layer(x))),
                               to_numpy(weighted_sum(reference(x))), rtol=1e-5)


@pytest.mark.parametrize("k2", [T, 2 * T])
def test_truncation_at_or_beyond_the_length_is_full_bptt(k2, x):
    reference, _ = twins(return_sequences=True)
    layer = kt.TBPTTLSTM(UNITS, truncate_gradient=k2, return_sequences=True)
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    assert_same_loss_and_gradients(
        value_and_grads(layer, x, weighted_sum), value_and_grads(reference, x, weighted_sum)
    )


def test_mask_and_initial_state_match_keras_lstm(x):
    reference, layer = twins(return_sequences=True)
    mask = np.ones((BATCH, T), bool)
    mask[0, 8:] = False
    h0 = np.full((BATCH, UNITS), 0.3, "float32")
    for truncate in (None, 6):
        layer.truncate_gradient = truncate
        got = layer(x, mask=mask, initial_state=[h0, -h0])
        expected = reference(x, mask=mask, initial_state=[h0, -h0])
        np.testing.assert_allclose(to_numpy(got), to_numpy(expected), atol=1e-6)


class StopGradientReference(keras.layers.Layer):
    """Theano truncation spelled out: LSTM on the first part under
    stop_gradient, then on the last k2 processed steps."""

    def __init__(self, lstm, k2):
        super().__init__()
        self.lstm, self.k2 = lstm, k2
        self.built = True  # the wrapped LSTM is built already

    def call(self, x, training=False):
        return stop_gradient_pass(self.lstm, x, self.k2, training=training)[0]


@pytest.mark.parametrize("k2", [1, 5, 11])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_truncated_gradients_equal_stop_gradient_reference(k2, go_backwards, return_sequences, x):
    kwargs = {"return_sequences": return_sequences, "go_backwards": go_backwards}
    reference, layer = twins(return_state=True, **kwargs)
    layer = kt.TBPTTLSTM(UNITS, truncate_gradient=k2, **kwargs)
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    got = value_and_grads(layer, x, weighted_sum)
    assert_same_loss_and_gradients(
        got, value_and_grads(StopGradientReference(reference, k2), x, weighted_sum)
    )
    dx = got[2]
    # Only the last k2 processed steps receive gradient.
    reached = np.abs(dx).sum(axis=(0, 2)) > 0
    expected_reach = np.arange(T) >= T - k2
    if go_backwards:
        expected_reach = expected_reach[::-1]
    assert reached.tolist() == expected_reach.tolist()


def test_truncation_does_not_change_the_forward_pass(x):
    reference, _ = twins(return_sequences=True, return_state=True)
    layer = kt.TBPTTLSTM(UNITS, truncate_gradient=3, return_sequences=True, return_state=True)
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    for got, expected in zip(layer(x), reference(x), strict=True):
        np.testing.assert_allclose(to_numpy(got), to_numpy(expected), atol=1e-6)


@pytest.mark.parametrize("state_step", [1, 5, T])
def test_state_step_returns_the_state_after_that_step(state_step, x):
    reference, _ = twins(return_sequences=True, return_state=True)
    layer = kt.TBPTTLSTM(UNITS, state_step=state_step, return_sequences=True, return_state=True)
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    outputs, h, c = layer(x)
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(reference(x)[0]), atol=1e-6)
    _, h_ref, c_ref = reference(x[:, :state_step])
    np.testing.assert_allclose(to_numpy(h), to_numpy(h_ref), atol=1e-6)
    np.testing.assert_allclose(to_numpy(c), to_numpy(c_ref), atol=1e-6)


def delayed_recall_error(k2, delay=4, steps=16, epochs=60):
    """Train on 'output the input of `delay` steps ago'; return test MSE at
    the last step (chance level: 1.0)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)

    def data(n):
        x = rng.choice([-1.0, 1.0], size=(n, steps, 1)).astype("float32")
        y = np.zeros_like(x)
        y[:, delay:] = x[:, :-delay]
        return x, y

    model = keras.Sequential([
        keras.Input((steps, 1)),
        kt.TBPTTLSTM(16, truncate_gradient=k2, return_sequences=True),
        keras.layers.Dense(1),
    ])
    model.compile(loss="mse", optimizer=keras.optimizers.Adam(0.02))
    x, y = data(256)
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    x, y = data(256)
    prediction = model.predict(x, verbose=0)
    return float(np.mean((prediction[:, -1] - y[:, -1]) ** 2))


def test_delayed_recall_is_learned_only_when_k2_exceeds_the_delay():
    learned = delayed_recall_error(k2=8)
    cannot = delayed_recall_error(k2=2)
    assert learned < 0.1, learned
    assert cannot > 0.7, cannot


def test_save_and_load_round_trip(tmp_path, x):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input(batch_shape=x.shape),
        kt.TBPTTLSTM(UNITS, truncate_gradient=5, state_step=4, stateful=True,
                     return_sequences=True),
        keras.layers.Dense(1),
    ])
    expected = to_numpy(model(x))
    model.layers[0].reset_state()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    layer = loaded.layers[0]
    assert isinstance(layer, kt.TBPTTLSTM)
    assert (layer.truncate_gradient, layer.state_step, layer.stateful) == (5, 4, True)
    np.testing.assert_allclose(to_numpy(loaded(x)), expected, atol=1e-6)
    config = model.layers[0].get_config()
    clone = kt.TBPTTLSTM.from_config(config)
    assert clone.get_config() == config
    # A fresh process that imports keras, then keras_tbptt, can load it.
    code = (
        "import sys, keras, keras_tbptt;"
        "layer = keras.models.load_model(sys.argv[1]).layers[0];"
        "print(type(layer).__name__, layer.truncate_gradient)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert out.stdout.split() == ["TBPTTLSTM", "5"], out.stderr[-2000:]


def test_rebatch_keeps_weights_and_resets_states(rng):
    series = rng.normal(size=(4, 20, 2)).astype("float32")
    plan = kt.naive_split(series, 5, batch_size=4)
    keras.utils.set_random_seed(2)
    model = keras.Sequential([
        keras.Input(batch_shape=(4, 5, 2)),
        kt.TBPTTLSTM(UNITS, stateful=True, return_sequences=True),
        keras.layers.Dense(1),
    ])
    expected = plan.unsplit(model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0))
    single = kt.rebatch(model, 1)
    assert single.input_shape == (1, 5, 2)
    assert all(np.abs(to_numpy(s)).max() == 0 for s in single.layers[0].states)
    one = kt.naive_split(series[2], 5)
    got = one.unsplit(single.predict(one.dataset(), callbacks=one.callbacks(), verbose=0))
    np.testing.assert_allclose(got, expected[2], atol=1e-5)
