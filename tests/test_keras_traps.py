"""The Keras traps of issue 11 (items 10-12): each one used to give a wrong
result silently or an error that did not say what to do; each now raises (or
warns) before any batch runs, with a message that names the fix.

Runs under every backend (`KERAS_BACKEND`); under JAX, Keras computes the
loss on the first batch before any callback runs, so the plan's dataset
runs the checks when Keras wraps it.
"""

import re
import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import keras_tbptt as kt

pytestmark = pytest.mark.keras
UNITS = 3
NO_CALLBACKS = "without plan.callbacks()"


@pytest.fixture
def series(rng):
    return rng.normal(size=(4, 40, 1)).astype("float32")


def make_model(batch_size, timesteps, layer=None, dense=None, **layer_kwargs):
    """A compiled stateful model; `layer` replaces the TBPTTLSTM."""
    if layer is None:
        layer = kt.TBPTTLSTM(UNITS, stateful=True, return_sequences=True, **layer_kwargs)
    layers = [keras.Input(batch_shape=(batch_size, timesteps, 1)), layer]
    if dense:
        layers.append(keras.layers.Dense(dense))
    model = keras.Sequential(layers)
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(0.0))
    return model


class CountBatches(keras.callbacks.Callback):
    """Counts the batches that ran, to prove an error came before any."""

    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.batches += 1

    on_test_batch_begin = on_predict_batch_begin = on_train_batch_begin


def no_callbacks_warnings(record):
    return [w for w in record if NO_CALLBACKS in str(w.message)]


# -- item 10: a decoupled_split plan with a layer that lacks layer_kwargs ------

DECOUPLED = {
    # k2 > k1: windows of 10 advancing by 4; the layer must carry the state
    # after 4 steps (state_step=4).
    "k2_gt_k1_tbpttlstm": (4, 10, "state_step", lambda: kt.TBPTTLSTM(
        UNITS, stateful=True, return_sequences=True)),
    "k2_gt_k1_keras_lstm": (4, 10, "state_step", lambda: keras.layers.LSTM(
        UNITS, stateful=True, return_sequences=True)),
    "k2_gt_k1_bidirectional": (4, 10, "state_step", lambda: keras.layers.Bidirectional(
        kt.TBPTTLSTM(UNITS, stateful=True, return_sequences=True))),
    # k2 < k1: chunks of 10, the gradient reaches 4 steps back.
    "k2_lt_k1_keras_lstm": (10, 4, "truncate_gradient", lambda: keras.layers.LSTM(
        UNITS, stateful=True, return_sequences=True)),
    "k2_lt_k1_wrong_truncation": (10, 4, "truncate_gradient", lambda: kt.TBPTTLSTM(
        UNITS, stateful=True, return_sequences=True, truncate_gradient=8)),
}


def decoupled(series, k1, k2):
    series = series[:, : k2 + 7 * k1] if k2 > k1 else series  # whole windows
    return kt.decoupled_split(series, k1, k2, series, batch_size=2)


@pytest.mark.parametrize("case", list(DECOUPLED))
@pytest.mark.parametrize("data", ["dataset", "arrays"])
def test_decoupled_plan_refuses_a_layer_without_its_layer_kwargs(case, data, series):
    k1, k2, name, layer = DECOUPLED[case]
    plan = decoupled(series, k1, k2)
    value = plan.layer_kwargs[name]
    model = make_model(plan.batch_size, plan.timesteps, layer())
    counter = CountBatches()
    expected = (rf"(?s)does not match the decoupled_split plan.*Expected: {name}={value}"
                r".*\*\*plan\.layer_kwargs")
    if data == "dataset":
        with pytest.raises(ValueError, match=expected):
            model.fit(plan.dataset(), shuffle=False, verbose=0,
                      callbacks=[*plan.callbacks(), counter])
        with pytest.raises(ValueError, match=expected):
            model.predict(plan.dataset(), verbose=0, callbacks=[*plan.callbacks(), counter])
    else:  # the callback checks on its own, e.g. for arrays
        with pytest.raises(ValueError, match=expected):
            model.predict(plan.x, batch_size=plan.batch_size, verbose=0,
                          callbacks=[*plan.callbacks(), counter])
    assert counter.batches == 0


def test_state_step_on_a_plan_without_overlap_is_refused(series):
    plan = kt.naive_split(series, 10, series, batch_size=2)
    model = make_model(2, 10, state_step=5)
    with pytest.raises(ValueError, match=r"(?s)Expected: state_step=None.*Received: state_step=5"):
        model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)


def test_decoupled_plan_with_its_layer_kwargs_runs(series):
    # The control: the same plans pass with **plan.layer_kwargs, Bidirectional too.
    for k1, k2 in [(4, 10), (10, 4)]:
        plan = decoupled(series, k1, k2)
        layer = keras.layers.Bidirectional(kt.TBPTTLSTM(
            UNITS, stateful=True, return_sequences=True, **plan.layer_kwargs))
        model = make_model(2, plan.timesteps, layer, dense=1)
        history = model.fit(plan.dataset(), shuffle=False, callbacks=plan.callbacks(), verbose=0)
        assert np.isfinite(history.history["loss"]).all()


# -- item 11: a plan's callbacks with another plan's data; stale states --------

def test_predict_with_another_plans_callbacks_is_refused(series):
    plan = kt.naive_split(series, 10, series, batch_size=2)
    _, val = plan.validation_split(0.5)  # 4 batches, other resets
    shorter = kt.naive_split(series[:2], 10, series[:2], batch_size=2)  # 4 batches, 1 group
    longer = np.concatenate([series[:2], series[2:]], axis=1)
    same_length = kt.naive_split(longer, 10, longer, batch_size=2)  # 8 batches, 1 group
    model = make_model(2, 10)
    counter = CountBatches()
    for other in (val, shorter, same_length):
        assert not np.array_equal(other.resets, plan.resets)
        with pytest.raises(ValueError, match=r"(?s)does not match the prediction data.*"
                           r"Expected: data of 8 batches, resets before batches \[0, 4\].*"
                           r"callbacks=plan\.callbacks\(\)"):
            model.predict(other.dataset(), callbacks=[*plan.callbacks(), counter], verbose=0)
        with pytest.raises(ValueError, match="does not match the evaluation data"):
            model.evaluate(other.dataset(), callbacks=[*plan.callbacks(), counter], verbose=0)
    assert counter.batches == 0
    # Same schedule (an equal plan built twice): accepted.
    twin = kt.naive_split(series, 10, series, batch_size=2)
    model.predict(twin.dataset(), callbacks=plan.callbacks(), verbose=0)


def test_validation_data_without_the_validation_plan_is_refused(series):
    plan = kt.naive_split(series, 10, series, batch_size=2)
    train, val = plan.validation_split(0.25)
    model = make_model(2, 10)
    counter = CountBatches()
    with pytest.raises(ValueError, match=r"(?s)does not match the validation data.*"
                       r"train\.callbacks\(validation=val\)"):
        model.fit(train.dataset(), validation_data=val.dataset(), shuffle=False, verbose=0,
                  callbacks=[*train.callbacks(), counter])
    assert counter.batches == 0  # refused before training, not after an epoch
    history = model.fit(train.dataset(), validation_data=val.dataset(), shuffle=False,
                        callbacks=train.callbacks(validation=val), verbose=0)
    assert "val_loss" in history.history


def test_validation_arrays_of_another_length_raise(series):
    plan = kt.naive_split(series, 10, series, batch_size=2)
    train, val = plan.validation_split(0.25)  # 6 and 2 batches
    model = make_model(2, 10)
    arrays = {"batch_size": 2, "shuffle": False, "verbose": 0}
    with pytest.raises(ValueError, match=r"(?s)Expected: 6 validation batches.*Received: 2 batches"
                       r".*callbacks=train\.callbacks\(validation=val\)"):
        model.fit(train.x, train.y, sample_weight=train.sample_weight,
                  validation_data=(val.x, val.y, val.sample_weight),
                  callbacks=train.callbacks(), **arrays)
    model.fit(train.x, train.y, sample_weight=train.sample_weight,
              validation_data=(val.x, val.y, val.sample_weight),
              callbacks=train.callbacks(validation=val), **arrays)


@pytest.mark.parametrize("method", ["predict", "evaluate"])
def test_fewer_batches_than_the_schedule_are_refused(method, series):
    plan = kt.naive_split(series, 10, series, batch_size=2)  # 8 batches
    model = make_model(2, 10)
    counter = CountBatches()
    run = getattr(model, method)
    args = (plan.x[:6],) if method == "predict" else (plan.x[:6], plan.y[:6])
    with pytest.raises(ValueError, match=r"(?s)Expected: 8 batches.*Received: 3 batches"):
        run(*args, batch_size=2, callbacks=[*plan.callbacks(), counter], verbose=0)
    with pytest.raises(ValueError, match=r"(?s)Received: 3 batches.*`steps=3`"):
        run(plan.dataset(), steps=3, callbacks=[*plan.callbacks(), counter], verbose=0)
    assert counter.batches == 0


def test_stateful_dataset_without_callbacks_warns(series):
    plan = kt.naive_split(series[:2], 10, batch_size=2)  # one group: one reset
    model = make_model(2, 10)
    with pytest.warns(UserWarning, match=NO_CALLBACKS):
        first = model.predict(plan.dataset(), verbose=0)
    with pytest.warns(UserWarning, match=NO_CALLBACKS):
        stale = model.predict(plan.dataset(), verbose=0)
    # What the warning is about: the second call starts from the states the
    # first one left, so the same data gives other outputs.
    assert np.abs(stale - first).max() > 1e-4
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        again = model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    assert not no_callbacks_warnings(record)
    np.testing.assert_allclose(again, first, atol=1e-6)


def test_stateless_plan_without_callbacks_does_not_warn(series):
    plan = kt.as_is(series)
    model = keras.Sequential([keras.Input((40, 1)), kt.TBPTTLSTM(UNITS)])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.predict(plan.dataset(), verbose=0)
    assert not no_callbacks_warnings(record)


# -- item 12: daily errors, caught before the loop with the fix in the message -

@pytest.mark.parametrize("method", ["fit", "evaluate"])
@pytest.mark.parametrize("with_callbacks", [True, False])
def test_plan_without_targets_in_fit_or_evaluate(method, with_callbacks, series):
    plan = kt.naive_split(series, 10, batch_size=2)
    model = make_model(2, 10)
    callbacks = plan.callbacks() if with_callbacks else None
    kwargs = {"shuffle": False} if method == "fit" else {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*" + re.escape(NO_CALLBACKS))
        with pytest.raises(ValueError, match=rf"{method}\(\) needs targets, but the plan has none"):
            getattr(model, method)(plan.dataset(), callbacks=callbacks, verbose=0, **kwargs)


TARGET_SHAPES = {
    "per_step_targets_sequence_output_missing": (
        "per_step", False, None, r"(?s)per-step targets.*return_sequences=True"),
    "per_sequence_targets_with_sequence_output": (
        "per_sequence", True, 1, r"(?s)per-sequence targets.*return_sequences=False"),
}


@pytest.mark.parametrize("case", list(TARGET_SHAPES))
@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_output_shape_against_targets(case, method, series):
    kind, return_sequences, dense, expected = TARGET_SHAPES[case]
    targets = series if kind == "per_step" else np.arange(4.0)
    plan = kt.naive_split(series, 10, targets, batch_size=2)
    layer = kt.TBPTTLSTM(UNITS, stateful=True, return_sequences=return_sequences)
    model = make_model(2, 10, layer, dense=dense)
    kwargs = {"shuffle": False} if method == "fit" else {}
    with pytest.raises(ValueError, match=expected):
        getattr(model, method)(plan.dataset(), callbacks=plan.callbacks(), verbose=0, **kwargs)
    # The callback checks on its own too (arrays, or ResetStates by hand).
    callback = kt.ResetStates(plan=plan)
    callback.set_model(model)
    with pytest.raises(ValueError, match=expected):
        callback.on_train_begin() if method == "fit" else callback.on_test_begin()


def test_one_timestep_output_without_time_axis_is_accepted(series):
    # With timesteps=1 a (batch, features) output still matches per-step targets.
    plan = kt.one_step(series[:, :-1], series[:, 1:], batch_size=2)
    layer = kt.TBPTTLSTM(UNITS, stateful=True)
    model = make_model(2, 1, layer, dense=1)
    history = model.fit(plan.dataset(), shuffle=False, callbacks=plan.callbacks(), verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_schedule_mismatch_names_the_argument(series):
    plan = kt.naive_split(series, 10, series, batch_size=2)
    model = make_model(2, 10)
    with pytest.raises(ValueError, match=r"(?s)Received: 3 steps per epoch.*`steps_per_epoch=3`"):
        model.fit(plan.dataset(), steps_per_epoch=3, shuffle=False,
                  callbacks=plan.callbacks(), verbose=0)
    with pytest.raises(ValueError,
                       match=r"(?s)`validation_split=0\.25`.*plan\.validation_split\(0\.25\)"):
        model.fit(plan.x, plan.y, batch_size=2, validation_split=0.25, shuffle=False,
                  callbacks=plan.callbacks(), verbose=0)
    with pytest.raises(ValueError, match=r"(?s)`batch_size=4`.*pass batch_size=2"):
        model.fit(plan.x, plan.y, batch_size=4, shuffle=False,
                  callbacks=plan.callbacks(), verbose=0)


def test_shuffle_is_refused_before_any_batch(series):
    # fit()'s default shuffle=True: refused when Keras wraps the dataset,
    # before it builds a pipeline or reads a batch.
    plan = kt.naive_split(series, 10, series, batch_size=2)  # 8 batches
    model = make_model(2, 10)
    counter = CountBatches()
    with pytest.raises(ValueError, match=r"(?s)must be read in order.*Pass "
                       r"shuffle=False to fit\(\)\. Received: shuffle=True"):
        model.fit(plan.dataset(), callbacks=[*plan.callbacks(), counter], epochs=20, verbose=0)
    assert counter.batches == 0


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
@pytest.mark.parametrize("with_callbacks", [True, False])
def test_batch_size_mismatch_points_to_rebatch_before_keras(method, with_callbacks, series):
    # Under JAX, Keras' symbolic build of a first fit/evaluate calls the
    # layer on the first batch before any callback; the check comes first.
    plan = kt.naive_split(series[:1], 10, series[:1])  # batch size 1
    model = make_model(2, 10)
    callbacks = plan.callbacks() if with_callbacks else None
    kwargs = {"shuffle": False} if method == "fit" else {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*" + re.escape(NO_CALLBACKS))
        with pytest.raises(ValueError, match=r"(?s)Expected: batch_size=1.*batch size 2.*rebatch"):
            getattr(model, method)(plan.dataset(), callbacks=callbacks, verbose=0, **kwargs)


# -- smaller: reading the same batch twice is harmless ------------------------

def test_reading_a_batch_again_is_harmless(series):
    plan = kt.naive_split(series, 10, series, batch_size=2)
    data = plan.dataset()
    for index in (0, 1, 2, 3):
        data[index]
    again = data[3]
    previous = data[2]
    for got, want in zip(again, plan.batch(3), strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(previous, plan.batch(2), strict=True):
        np.testing.assert_array_equal(got, want)
    data[4]  # the order goes on where it was
    with pytest.raises(ValueError,
                       match=r"batch 7 was asked for where batch 5 was expected \(or batch 0"):
        data[7]
    with pytest.raises(ValueError, match="where batch 5 was expected"):
        data[2]  # not the last two read: a real out-of-order read
    # A stateful model still gets the plan's results after the inspection.
    model = make_model(2, 10)
    reference = model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    np.testing.assert_allclose(
        model.predict(data, callbacks=plan.callbacks(), verbose=0), reference, atol=1e-6)


# -- issue 28: one plan's callbacks list, passed to a second model ------------

class ZeroStatesAtBatchBegin(keras.callbacks.Callback):
    """`(model name, epoch, batch) -> whether every state is zero` when a
    training batch begins; placed after `ResetStates`, it sees its resets."""

    def __init__(self):
        super().__init__()
        self.zero, self.epoch = {}, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        model = self.model  # under JAX this syncs the training state
        states = model.get_layer("lstm").states
        self.zero[model.name, self.epoch, batch] = all(
            not np.asarray(keras.ops.convert_to_numpy(s)).any() for s in states
        )


def _named_model(name, seed, batch_size=2):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(batch_shape=(batch_size, 10, 1)),
        kt.TBPTTLSTM(UNITS, stateful=True, return_sequences=True, name="lstm"),
    ], name=name)
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(0.01))
    return model


def _states(model):
    return [np.asarray(keras.ops.convert_to_numpy(s)).copy()
            for s in model.get_layer("lstm").states]


def test_callbacks_reused_for_a_second_model_bind_to_it(series):
    """The same `plan.callbacks()` list in a second model's `fit`: each call
    binds its `ResetStates` afresh (Keras' `set_model`), so the second
    model's states are reset on the plan's schedule, and the first model's
    states are left alone."""
    plan = kt.naive_split(series, 10, series, batch_size=2)  # 8 batches, resets at 0, 4
    callbacks = plan.callbacks()
    recorder = ZeroStatesAtBatchBegin()
    callbacks.append(recorder)  # the very same list, twice
    first, second = _named_model("first", 1), _named_model("second", 2)
    first.fit(plan.dataset(), shuffle=False, callbacks=callbacks, epochs=1, verbose=0)
    after_first = _states(first)
    assert any(s.any() for s in after_first)
    second.fit(plan.dataset(), shuffle=False, callbacks=callbacks, epochs=2, verbose=0)
    for name, epochs in (("first", 1), ("second", 2)):
        got = [recorder.zero[name, epoch, batch]
               for epoch in range(epochs) for batch in range(len(plan))]
        assert got == plan.resets.tolist() * epochs, name
    for got, want in zip(_states(first), after_first, strict=True):
        np.testing.assert_array_equal(got, want)  # the second fit left them alone
    assert callbacks[0].model is second


SECOND_MODEL_TRAPS = {
    # the second model's own trap -> the message the rebound callback gives
    "another_batch_size": (lambda: _named_model("second", 2, batch_size=4),
                           r"(?s)Expected: batch_size=2.*batch size 4.*rebatch"),
    "not_stateful": (lambda: make_model(2, 10, keras.layers.Dense(UNITS)),
                     r"ResetStates found no stateful recurrent layer"),
}


@pytest.mark.parametrize("trap", list(SECOND_MODEL_TRAPS))
def test_callbacks_reused_for_a_second_model_check_it_afresh(trap, series):
    """The plan's checks run again for the second model: none is skipped
    because the callbacks passed a first model's `fit` already."""
    plan = kt.naive_split(series, 10, series, batch_size=2)
    callbacks = [*plan.callbacks(), CountBatches()]
    _named_model("first", 1).fit(plan.dataset(), shuffle=False, callbacks=callbacks,
                                 verbose=0)
    make, match = SECOND_MODEL_TRAPS[trap]
    second = make()
    before = callbacks[-1].batches
    with pytest.raises(ValueError, match=match):
        second.fit(plan.dataset(), shuffle=False, callbacks=callbacks, verbose=0)
    assert callbacks[-1].batches == before  # refused before any batch


class StopAtBatch(keras.callbacks.Callback):
    """Stops `fit` at a batch, as Ctrl-C or an error would: no `on_train_end`."""

    def __init__(self, batch):
        super().__init__()
        self.batch = batch

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.batch:
            raise RuntimeError(f"stopped at batch {batch}")


def test_a_stopped_fit_leaves_the_reused_callbacks_unchanged(series):
    """A `fit` stopped before its end never reaches `on_train_end`; the next
    call with the same callbacks must still get its own checks (here
    `evaluate(steps=3)` names `steps`, not a validation mismatch)."""
    plan = kt.naive_split(series, 10, series, batch_size=2)  # 8 batches
    callbacks = [*plan.callbacks(), StopAtBatch(2)]
    with pytest.raises(RuntimeError, match="stopped at batch 2"):
        _named_model("first", 1).fit(plan.dataset(), shuffle=False, callbacks=callbacks,
                                     verbose=0)
    counter = CountBatches()
    callbacks[-1] = counter
    second = _named_model("second", 2)
    with pytest.raises(ValueError, match=r"(?s)Expected: 8 batches.*`steps=3` runs 3 batches"):
        second.evaluate(plan.x, plan.y, batch_size=2, steps=3, callbacks=callbacks, verbose=0)
    assert counter.batches == 0
