"""`forecast` against a stateless full pass over history + own forecasts.

Runs under every backend (`KERAS_BACKEND`).
"""

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from conftest import to_numpy

import keras_tbptt as kt

pytestmark = pytest.mark.keras
BATCH, T, UNITS, LENGTH, HORIZON = 4, 5, 6, 13, 6


def stateful_model(n_targets, n_exogenous, return_sequences=True, **layer_kwargs):
    keras.utils.set_random_seed(11)
    model = keras.Sequential([
        keras.Input(batch_shape=(BATCH, T, n_targets + n_exogenous)),
        kt.TBPTTLSTM(UNITS, stateful=True, return_sequences=return_sequences, **layer_kwargs),
        keras.layers.Dense(n_targets),
    ])
    lstm = model.layers[0]
    n_kernels = 3  # kernel, recurrent kernel, bias; then the states
    lstm.set_weights([w * 3 for w in lstm.get_weights()[:n_kernels]]
                     + lstm.get_weights()[n_kernels:])
    return model


def full_pass_forecast(model, history, horizon, exogenous):
    """Stateless keras.layers.LSTM with the same weights, re-run over the
    history plus its own forecasts for every step."""
    lstm, dense = model.layers
    plain = keras.Sequential([
        keras.Input((None, history.shape[1])),
        keras.layers.LSTM(UNITS, return_sequences=True),
        keras.layers.Dense(dense.units),
    ])
    plain.layers[0].set_weights(lstm.get_weights()[:3])  # kernels, not states
    plain.layers[1].set_weights(dense.get_weights())
    rows, forecasts = list(history), []
    for i in range(horizon):
        forecasts.append(to_numpy(plain(np.stack(rows)[None]))[0, -1])
        if i + 1 < horizon:
            rows.append(np.concatenate([forecasts[-1], exogenous[i]]))
    return np.stack(forecasts)


CASES = {
    "univariate": (1, 0, True, {}),
    "last_output": (1, 0, False, {}),
    "truncated_state_step": (1, 0, True, {"truncate_gradient": 2, "state_step": 3}),
    "exogenous": (1, 2, True, {"truncate_gradient": 2}),
    "two_targets_exogenous": (2, 1, False, {"state_step": 2}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_forecast_equals_a_stateless_full_pass(case, rng):
    n_targets, n_exogenous, return_sequences, layer_kwargs = CASES[case]
    model = stateful_model(n_targets, n_exogenous, return_sequences, **layer_kwargs)
    history = rng.normal(size=(LENGTH, n_targets + n_exogenous)).astype("float32")
    exogenous = rng.normal(size=(HORIZON - 1, n_exogenous)).astype("float32")
    # The trained model's own states are neither used nor changed.
    model.predict_on_batch(rng.normal(size=(BATCH, T, n_targets + n_exogenous)))
    states_before = [to_numpy(s) for s in model.layers[0].states]
    got = kt.forecast(model, history, HORIZON,
                      exogenous=exogenous if n_exogenous else None)
    expected = full_pass_forecast(model, history, HORIZON, exogenous)
    assert got.shape == (HORIZON, n_targets)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(np.diff(got, axis=0)).max() > 1e-3  # forecasts really vary
    for before, after in zip(states_before, model.layers[0].states, strict=True):
        np.testing.assert_array_equal(before, to_numpy(after))


def test_horizon_one_and_short_history(rng):
    model = stateful_model(1, 2)
    history = rng.normal(size=(2, 3)).astype("float32")
    got = kt.forecast(model, history, 1)  # no row fed back: no exogenous needed
    np.testing.assert_allclose(got, full_pass_forecast(model, history, 1, None), atol=1e-5)


def test_pandas_in_pandas_out(rng):
    model = stateful_model(1, 1)
    values = rng.normal(size=(LENGTH, 2)).astype("float32")
    exogenous = rng.normal(size=(HORIZON - 1, 1)).astype("float32")
    index = pd.date_range("2020-01-01", periods=LENGTH, freq="MS")
    frame = pd.DataFrame(values, index=index, columns=["sales", "price"])
    got = kt.forecast(model, frame, HORIZON, exogenous=pd.DataFrame(exogenous))
    assert list(got.columns) == ["sales"]
    assert list(got.index) == list(pd.date_range("2021-02-01", periods=HORIZON, freq="MS"))
    np.testing.assert_allclose(got.to_numpy(), kt.forecast(model, values, HORIZON,
                                                           exogenous=exogenous))
    univariate = stateful_model(1, 0)
    series = pd.Series(values[:, 0], name="sales", index=pd.RangeIndex(10, 10 + 2 * LENGTH, 2))
    got = kt.forecast(univariate, series, 3)
    assert isinstance(got, pd.Series) and got.name == "sales"
    assert list(got.index) == [36, 38, 40]
    # Without a frequency the forecasts are numbered.
    series.index = pd.Index(list("abcdefghijklm"))
    assert list(kt.forecast(univariate, series, 3).index) == [1, 2, 3]


@pytest.mark.parametrize("timesteps", [T, None])
def test_stateless_model_slides_its_window(timesteps, rng):
    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        keras.Input((timesteps, 1)),
        keras.layers.LSTM(UNITS),
        keras.layers.Dense(1),
    ])
    history = rng.normal(size=(LENGTH, 1)).astype("float32")
    rows, expected = list(history), []
    for _ in range(HORIZON):
        window = np.stack(rows[-timesteps:] if timesteps else rows)[None]
        expected.append(to_numpy(model(window))[0])
        rows.append(expected[-1])
    np.testing.assert_allclose(kt.forecast(model, history, HORIZON), np.stack(expected),
                               atol=1e-5)


def error_cases():
    good = np.zeros((LENGTH, 3), "float32")
    nan = good.copy()
    nan[4, 1] = np.nan
    return {
        "model": ({"model": "model"}, TypeError, "`model` must be a built keras"),
        "horizon": ({"horizon": 0}, ValueError, "`horizon` must be an integer >= 1"),
        "horizon_type": ({"horizon": 2.0}, TypeError, "`horizon` must be an integer"),
        "history_shape": ({"history": np.zeros((LENGTH, 2))}, ValueError,
                          r"- Expected: shape \(length >= 1, 3\)"),
        "history_empty": ({"history": np.zeros((0, 3))}, ValueError, "Expected: shape"),
        "history_text": ({"history": [["a", "b", "c"]]}, TypeError, "`history` must be numeric"),
        "history_nan": ({"history": nan}, ValueError, r"non-finite values at rows \[4\]"),
        "exogenous_missing": ({"exogenous": None}, ValueError,
                              r"pass `exogenous`.*\n- Expected: exogenous of shape \(5, 2\)"),
        "exogenous_rows": ({"exogenous": np.zeros((HORIZON, 2))}, ValueError,
                           r"- Expected: shape \(5, 2\)\n- Received: shape \(6, 2\)"),
        "exogenous_nan": ({"exogenous": np.full((HORIZON - 1, 2), np.nan)}, ValueError,
                          "`exogenous` must be finite"),
    }


@pytest.mark.parametrize("case", list(error_cases()))
def test_clear_errors(case):
    kwargs, error, message = error_cases()[case]
    arguments = {"model": stateful_model(1, 2), "history": np.zeros((LENGTH, 3), "float32"),
                 "horizon": HORIZON, "exogenous": np.zeros((HORIZON - 1, 2), "float32")}
    arguments.update(kwargs)
    model, history, horizon = arguments.pop("model"), arguments.pop("history"), arguments.pop("horizon")
    with pytest.raises(error, match=message):
        kt.forecast(model, history, horizon, **arguments)


def test_errors_for_models_it_cannot_forecast_with(rng):
    univariate = stateful_model(1, 0)
    with pytest.raises(ValueError, match="the model has no exogenous features"):
        kt.forecast(univariate, np.zeros((LENGTH, 1)), 3, exogenous=np.zeros((2, 1)))
    wide = keras.Sequential([keras.Input((T, 1)), keras.layers.LSTM(2), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="cannot output more features than it takes"):
        kt.forecast(wide, np.zeros((LENGTH, 1)), 3)
    with pytest.raises(ValueError, match="needs at least 5 rows"):
        kt.forecast(keras.Sequential([keras.Input((T, 1)), keras.layers.LSTM(2),
                                      keras.layers.Dense(1)]), np.zeros((3, 1)), 3)
    flat = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match=r"inputs of shape \(batch, timesteps, features\)"):
        kt.forecast(flat, np.zeros((LENGTH, 4)), 3)


def test_rebatch_to_one_step_carries_the_state(rng):
    """`rebatch(model, 1, timesteps=1)`, step by step, equals one call."""
    model = stateful_model(1, 0)
    x = rng.normal(size=(1, T, 1)).astype("float32")
    chunk = kt.rebatch(model, 1)
    stepper = kt.rebatch(model, 1, timesteps=1)
    assert stepper.input_shape == (1, 1, 1)
    expected = to_numpy(chunk(x))[0]
    got = np.concatenate([to_numpy(stepper(x[:, i:i + 1]))[0] for i in range(T)])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with pytest.raises(ValueError, match="state_step=3 steps.*Received: timesteps=1"):
        kt.rebatch(stateful_model(1, 0, state_step=3), 1, timesteps=1)
    with pytest.raises(TypeError, match="`timesteps` must be None or an integer"):
        kt.rebatch(model, 1, timesteps="1")
