"""Acceptance: a stateful TBPTTLSTM trained on a domain_split plan of the
sunspots beats the persistence forecast on the last 20% of the years; one
series (a plan of batch size 1) trains from its dataset as from arrays."""

import numpy as np
import pytest

import keras_tbptt as kt
from conftest import stateful_regressor

pytestmark = pytest.mark.keras
sm = pytest.importorskip("statsmodels.api")

TEST_FRACTION = 0.2


def forecast_sunspots(seed, epochs=30, units=16):
    """Train on the first 80% of the years, forecast every next year.

    Returns `(model_mse, persistence_mse, plan)` on the last 20% of the
    years (normalised with the training years' statistics).
    """
    import keras

    years = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
    n_test = round(TEST_FRACTION * len(years))
    train_years = years[:-n_test]
    mean, std = train_years.mean(), train_years.std()
    scaled = ((years - mean) / std).astype("float32")
    train = scaled[: len(train_years)]

    # One step ahead: read year t, predict year t + 1. Two streams: two rows
    # per batch, half as many sequential batches.
    plan = kt.domain_split(train[:-1], train[1:], streams=2)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 1)),
        kt.TBPTTLSTM(units, stateful=True, return_sequences=True),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01, clipnorm=1.0), loss="mse")
    model.fit(plan.dataset(), epochs=epochs, shuffle=False,
              callbacks=plan.callbacks(), verbose=0)

    # Forecast the whole history in order, so the state is warm when the
    # test years begin, with the same window length.
    history = kt.naive_split(scaled[:-1], plan.timesteps, streams=2, remainder="pad")
    outputs = model.predict(history.dataset(), callbacks=history.callbacks(), verbose=0)
    forecast = history.unsplit(outputs)[:, 0]  # forecast[t] predicts scaled[t + 1]
    actual = scaled[1:][-n_test:]
    model_mse = float(np.mean((forecast[-n_test:] - actual) ** 2))
    persistence_mse = float(np.mean((scaled[:-1][-n_test:] - actual) ** 2))
    return model_mse, persistence_mse, plan


def test_domain_split_lstm_beats_persistence_on_sunspots():
    model_mse, persistence_mse, plan = forecast_sunspots(seed=0)
    assert plan.scheme == "domain_split" and plan.suggestion.period in range(9, 13)
    assert plan.timesteps == plan.suggestion.timesteps
    assert np.isfinite(model_mse)
    assert model_mse < persistence_mse, (model_mse, persistence_mse)


def _sunspot_plans():
    """One-step-ahead plans of the first 247 scaled sunspot years as one
    series (batch size 1): 246 inputs have no divisor near the 11-year
    cycle, so the last chunk is padded; the last 20% is held out by time."""
    years = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()[:247]
    scaled = ((years - years.mean()) / years.std()).astype("float32")
    plan = kt.domain_split(scaled[:-1], scaled[1:])
    train, val = plan.validation_split(TEST_FRACTION)
    return plan, train, val


def _one_row_model(plan, layer_cls, weights=None):
    import keras

    return stateful_regressor(plan, layer_cls, 8, keras.optimizers.Adam(0.01), weights)


def _trainable(model):
    import keras

    return [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]


@pytest.mark.parametrize("layer", ["TBPTTLSTM", "keras.layers.LSTM"])
def test_one_series_trains_from_the_plans_dataset_at_batch_size_1(layer):
    """A single series gives `domain_split` a plan of batch size 1. A
    stateful LSTM trains (with validation), evaluates and predicts from the
    plan's datasets exactly as from its arrays: keras_tbptt's layer under
    every backend, Keras' own under TensorFlow (JAX and torch refuse it for
    reasons of their own). TensorFlow's loop refuses a batch of one whose
    batch axis is unknown ('enters the loop with shape (1, ...)'); the plan's
    dataset states it."""
    import keras

    if layer == "keras.layers.LSTM" and keras.backend.backend() != "tensorflow":
        pytest.skip("Keras' stateful LSTM is refused under JAX (untracked states) "
                    "and torch (in-place updates) whatever the batch size")
    layer_cls = kt.TBPTTLSTM if layer == "TBPTTLSTM" else keras.layers.LSTM
    plan, train, val = _sunspot_plans()
    assert (plan.batch_size, train.batch_size, val.batch_size) == (1, 1, 1)
    assert plan.timesteps == 11 and plan.suggestion.period == 11
    assert (train.sample_weight == 0).any()  # the last training chunk is padded
    if keras.backend.backend() == "tensorflow":
        for dataset in (train.dataset(), val.dataset()):
            assert dataset.get_tf_dataset().element_spec[0].shape[0] == 1
    keras.utils.set_random_seed(0)
    from_dataset = _one_row_model(train, layer_cls)
    start = from_dataset.get_weights()
    history = from_dataset.fit(
        train.dataset(), validation_data=val.dataset(), epochs=2, shuffle=False,
        callbacks=train.callbacks(validation=val), verbose=0)
    assert np.isfinite(history.history["val_loss"]).all(), history.history
    from_arrays = _one_row_model(train, layer_cls, weights=start)
    from_arrays.fit(train.x, train.y, sample_weight=train.sample_weight, batch_size=1,
                    epochs=2, shuffle=False, callbacks=train.callbacks(), verbose=0)
    # The kernels (TBPTTLSTM's weights also hold its states, which the
    # validation's resets leave at zero).
    trained = [_trainable(from_dataset), _trainable(from_arrays)]
    for a, b in zip(*trained, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(trained[0][0], start[0])  # it trained
    predicted = from_dataset.predict(val.dataset(), callbacks=val.callbacks(), verbose=0)
    expected = from_arrays.predict(val.x, batch_size=1, callbacks=val.callbacks(), verbose=0)
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)
    evaluated = from_dataset.evaluate(val.dataset(), callbacks=val.callbacks(), verbose=0)
    assert np.isfinite(evaluated)
