"""Acceptance: a stateful TBPTTLSTM trained on a domain_split plan of the
sunspots beats the persistence forecast on the last 20% of the years."""

import numpy as np
import pytest

import keras_tbptt as kt

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

    # One step ahead: read year t, predict year t + 1. Two streams: under
    # TensorFlow a stateful layer fed by a PyDataset needs batches of 2+.
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
