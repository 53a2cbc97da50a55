"""Stateful training over a plan equals one pass over each whole series.

Runs under every backend (`KERAS_BACKEND`): Keras' own stateful RNNs lose
their states under JAX, so these tests use TBPTTLSTM there and check that
the plan's callbacks refuse keras.layers.LSTM.
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import keras_tbptt as kt  # noqa: E402
from conftest import full_pass, stateful_regressor, to_numpy  # noqa: E402

pytestmark = pytest.mark.keras
BACKEND = keras.backend.backend()
JAX = BACKEND == "jax"
UNITS = 5
CONFIG = {"units": UNITS, "return_sequences": True}


def stateful_model(plan, layer_cls=kt.TBPTTLSTM, weights=None, features=2, **kwargs):
    layer = layer_cls(stateful=True, **CONFIG, **plan.layer_kwargs, **kwargs)
    model = keras.Sequential(
        [keras.Input(batch_shape=(plan.batch_size, plan.timesteps, features)), layer]
    )
    if weights is not None:
        layer.set_weights(weights + layer.get_weights()[len(weights):])
    return model


@pytest.fixture
def reference(rng):
    """Random ragged-free series and the full-pass outputs of an LSTM."""
    keras.utils.set_random_seed(0)
    series = rng.normal(size=(5, 46, 2)).astype("float32")
    layer = keras.layers.LSTM(**CONFIG)
    layer.build((None, None, 2))
    weights = [w * 3 for w in layer.get_weights()]  # stronger memory
    return series, weights, np.stack(full_pass(CONFIG, weights, series))


LAYOUTS = {
    # 5 series, batch 2: a filler row; 46 steps, chunks of 10: padding.
    "filler_and_padding": lambda s: kt.naive_split(s, 10, s, batch_size=2, remainder="pad"),
    "streams": lambda s: kt.naive_split(s, 23, s, batch_size=10, streams=2),
    "one_step": lambda s: kt.one_step(s, s, batch_size=3),
    "decoupled_k2_gt_k1": lambda s: kt.decoupled_split(s, 4, 10, s, batch_size=5),
    "decoupled_k2_lt_k1": lambda s: kt.decoupled_split(s, 23, 5, s, batch_size=5),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_predict_over_plan_equals_full_pass(layout, reference):
    series, weights, expected = reference
    plan = LAYOUTS[layout](series)
    model = stateful_model(plan, weights=weights)
    outputs = model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    if layout == "streams":
        # Streams start mid-series from a reset state: only the first stream
        # of each series matches a full pass.
        back = plan.unsplit(outputs)
        np.testing.assert_allclose(back[:, :23], expected[:, :23], atol=1e-5)
        assert np.abs(back[:, 23:] - expected[:, 23:]).max() > 1e-3
        return
    np.testing.assert_allclose(plan.unsplit(outputs), expected, atol=1e-5)


@pytest.mark.skipif(JAX, reason="keras.layers.LSTM loses its states under JAX (tested below)")
def test_keras_lstm_over_plan_equals_full_pass(reference):
    series, weights, expected = reference
    plan = LAYOUTS["filler_and_padding"](series)
    model = stateful_model(plan, keras.layers.LSTM, weights=weights)
    outputs = model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    np.testing.assert_allclose(plan.unsplit(outputs), expected, atol=1e-5)


@pytest.mark.skipif(not JAX, reason="JAX-only failure mode")
def test_keras_lstm_under_jax_is_refused(reference):
    series, weights, _ = reference
    plan = LAYOUTS["filler_and_padding"](series)
    model = stateful_model(plan, keras.layers.LSTM, weights=weights)
    with pytest.raises(ValueError, match="not tracked.*TBPTTLSTM"):
        model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)


def test_evaluate_and_fit_losses_equal_full_pass_loss(reference):
    series, weights, expected = reference
    plan = kt.naive_split(series, 10, expected, batch_size=2, remainder="pad")
    model = stateful_model(plan, weights=weights)
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.0))
    # Targets equal the full pass, so a correct state carry gives loss 0;
    # any lost or leaked state shows as a positive loss.
    loss = model.evaluate(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    history = model.fit(
        plan.dataset(), callbacks=plan.callbacks(), shuffle=False, epochs=2, verbose=0
    )
    assert loss < 1e-10
    assert max(history.history["loss"]) < 1e-10
    # Without resets the states leak across groups and the loss is not 0;
    # the plan's dataset warns.
    leaky = stateful_model(plan, weights=weights)
    leaky.compile(loss="mse")
    with pytest.warns(UserWarning, match="without plan.callbacks"):
        assert leaky.evaluate(plan.dataset(), verbose=0) > 1e-4


def test_validation_does_not_leak_into_training(reference):
    series, weights, expected = reference
    plan = kt.naive_split(series[:4, :40], 10, expected[:4, :40], batch_size=4)
    train, val = plan.validation_split(0.5)
    model = stateful_model(train, weights=weights)
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.0))
    history = model.fit(
        train.dataset(),
        validation_data=val.dataset(),
        callbacks=train.callbacks(validation=val),
        shuffle=False,
        epochs=2,
        verbose=0,
    )
    assert max(history.history["loss"]) < 1e-10  # training never sees val states
    # Validation starts from reset states (by design), not from training's:
    # its loss is the error of a fresh start at step 20.
    fresh = stateful_model(val, weights=weights)
    fresh.compile(loss="mse")
    expected_val = fresh.evaluate(val.dataset(), callbacks=val.callbacks(), verbose=0)
    np.testing.assert_allclose(history.history["val_loss"], expected_val, rtol=1e-4)


def test_shuffled_batches_raise(reference):
    series, weights, expected = reference
    plan = kt.naive_split(series, 23, expected, batch_size=5)
    model = stateful_model(plan, weights=weights)
    model.compile(loss="mse")
    with pytest.raises(Exception, match="shuffle=False"):
        # Keras shuffles batch order by default; this ordering is 0, 1 only
        # by chance, so retry a few epochs.
        model.fit(plan.dataset(), callbacks=plan.callbacks(), epochs=20, verbose=0)


def test_batch_size_mismatch_points_to_rebatch(reference):
    series, weights, expected = reference
    plan = kt.naive_split(series, 23, batch_size=5)
    other = kt.naive_split(series[:2], 23)
    model = stateful_model(plan, weights=weights)
    with pytest.raises(ValueError, match=r"(?s)Expected: batch_size=2.*batch size 5.*rebatch"):
        model.predict(other.dataset(), callbacks=other.callbacks(), verbose=0)
    single = kt.rebatch(model, 2)
    out = single.predict(other.dataset(), callbacks=other.callbacks(), verbose=0)
    np.testing.assert_allclose(other.unsplit(out), expected[:2], atol=1e-5)
    # The source model is untouched.
    out = model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    np.testing.assert_allclose(plan.unsplit(out), expected, atol=1e-5)


def test_nested_and_bidirectional_layers_are_reset(reference):
    series, weights, expected = reference
    plan = kt.naive_split(series, 23, batch_size=5)
    inner = keras.Sequential(
        [keras.Input(batch_shape=(5, 23, 2)),
         kt.TBPTTLSTM(stateful=True, **CONFIG)]
    )
    inner.layers[0].set_weights(weights + inner.layers[0].get_weights()[3:])
    outer = keras.Sequential([keras.Input(batch_shape=(5, 23, 2)), inner])
    out = outer.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    np.testing.assert_allclose(plan.unsplit(out), expected, atol=1e-5)
    # Two passes: the second must start from reset states again.
    again = outer.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    np.testing.assert_allclose(again, out, atol=1e-6)
    bidirectional = keras.Sequential([
        keras.Input(batch_shape=(5, 23, 2)),
        keras.layers.Bidirectional(kt.TBPTTLSTM(stateful=True, **CONFIG)),
    ])
    forward = bidirectional.layers[0].forward_layer
    forward.set_weights(weights + forward.get_weights()[3:])
    out = bidirectional.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    np.testing.assert_allclose(plan.unsplit(out)[..., :UNITS], expected, atol=1e-5)


def test_callbacks_refuse_a_stateless_model(reference):
    series, _, _ = reference
    plan = kt.naive_split(series, 23, batch_size=5)
    model = keras.Sequential([keras.Input((23, 2)), kt.TBPTTLSTM(**CONFIG)])
    with pytest.raises(ValueError, match="no stateful recurrent layer"):
        model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)


def test_steps_per_execution_that_skips_resets_is_refused(reference):
    series, weights, expected = reference
    plan = kt.naive_split(series[:2], 23, expected[:2], batch_size=1)  # resets at 0, 2
    model = stateful_model(plan, weights=weights)
    model.compile(loss="mse", steps_per_execution=3)
    with pytest.raises(ValueError, match="steps_per_execution=3"):
        model.fit(plan.dataset(), callbacks=plan.callbacks(), shuffle=False, verbose=0)


def test_reset_every_n_batches(reference):
    series, weights, expected = reference
    plan = kt.naive_split(series, 23, batch_size=5)
    model = stateful_model(plan, weights=weights)
    callback = kt.ResetStates(every=2, batch_size=5)
    out = model.predict(plan.dataset(), callbacks=[callback], verbose=0)
    np.testing.assert_allclose(plan.unsplit(out), expected, atol=1e-5)
    states = [to_numpy(v) for v in model.layers[0].states]
    assert all(np.abs(s).max() > 0 for s in states)


def test_per_sequence_targets_with_padding_and_masking_equal_full_pass(reference):
    series, weights, expected = reference
    labels = np.arange(len(series), dtype="float32")
    with pytest.warns(UserWarning, match="Masking"):
        plan = kt.naive_split(series, 10, labels, batch_size=2, remainder="pad")
    layer = kt.TBPTTLSTM(stateful=True, units=UNITS)
    model = keras.Sequential([
        keras.Input(batch_shape=(2, 10, 2)), keras.layers.Masking(0.0), layer,
    ])
    layer.set_weights(weights + layer.get_weights()[3:])
    outputs = model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    # One output per series: the state after its last real step.
    np.testing.assert_allclose(plan.unsplit(outputs), expected[:, -1], atol=1e-5)


def _one_series_model(plan, layer_cls, weights=None):
    return stateful_regressor(plan, layer_cls, 4, keras.optimizers.SGD(0.1), weights)


KERAS_OWN_UNDER_TENSORFLOW_ONLY = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="JAX and torch refuse Keras' stateful RNNs for other reasons")


@pytest.mark.parametrize("layer_cls", [
    kt.TBPTTLSTM,
    pytest.param(keras.layers.LSTM, marks=KERAS_OWN_UNDER_TENSORFLOW_ONLY),
    pytest.param(keras.layers.GRU, marks=KERAS_OWN_UNDER_TENSORFLOW_ONLY),
], ids=["TBPTTLSTM", "LSTM", "GRU"])
def test_a_batch_of_one_trains_from_the_dataset_as_from_arrays(rng, layer_cls):
    # One series gives batch size 1. TensorFlow's loop refuses a batch of 1
    # whose batch axis is unknown ('enters the loop with shape (1, ...)'):
    # the plan's dataset states it, so Keras' own stateful layers train from
    # it too, as keras_tbptt's do.
    series = rng.normal(size=67).astype("float32")  # 66 steps: 6 chunks of 11
    plan = kt.naive_split(series[:-1], 11, series[1:])
    assert plan.batch_size == 1
    keras.utils.set_random_seed(0)
    from_dataset = _one_series_model(plan, layer_cls)
    start = from_dataset.get_weights()
    from_dataset.fit(plan.dataset(), shuffle=False, epochs=2, verbose=0,
                     callbacks=plan.callbacks())
    from_arrays = _one_series_model(plan, layer_cls, weights=start)
    from_arrays.fit(plan.x, plan.y, sample_weight=plan.sample_weight, batch_size=1,
                    shuffle=False, epochs=2, verbose=0, callbacks=plan.callbacks())
    # (TBPTTLSTM's weights also hold its states: compared before evaluating.)
    for a, b in zip(from_dataset.get_weights(), from_arrays.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(from_dataset.get_weights()[0], start[0])  # it trained
    loss = from_dataset.evaluate(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    assert np.isclose(loss, from_arrays.evaluate(
        plan.x, plan.y, sample_weight=plan.sample_weight, batch_size=1,
        callbacks=plan.callbacks(), verbose=0), rtol=1e-5)


@pytest.mark.skipif(BACKEND != "torch", reason="keras-team/keras#20875 is torch's")
@pytest.mark.parametrize("source", ["dataset", "arrays"])
def test_keras_rnn_training_under_torch_gets_a_clear_error(rng, source):
    """Keras' stateful LSTM fails its backward pass under torch; its
    predictions over the chunks still equal one pass over each series."""
    series = rng.normal(size=(3, 67)).astype("float32")
    plan = kt.naive_split(series[:, :-1, None], 11, series[:, 1:, None])
    model = _one_series_model(plan, keras.layers.LSTM)
    if source == "dataset":
        data, kwargs = (plan.dataset(),), {}
    else:
        data, kwargs = (plan.x, plan.y), {"batch_size": plan.batch_size}
    with pytest.raises(ValueError, match="cannot train under the torch.*TBPTTLSTM"):
        model.fit(*data, shuffle=False, verbose=0, callbacks=plan.callbacks(), **kwargs)
    chunks = model.predict(plan.dataset(), verbose=0, callbacks=plan.callbacks())
    reference = keras.Sequential([keras.Input((None, 1)), keras.layers.LSTM(
        4, return_sequences=True), keras.layers.Dense(1)])
    reference.set_weights(model.get_weights())
    np.testing.assert_allclose(
        plan.unsplit(chunks), to_numpy(reference(series[:, :-1, None])), rtol=1e-4, atol=1e-5)
