"""Bad arguments to the Keras-facing API get clear errors."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import keras_tbptt as kt  # noqa: E402

pytestmark = pytest.mark.keras
PLAN = kt.naive_split(np.zeros((2, 10, 1)), 5)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: kt.TBPTTLSTM(4, truncate_gradient=0), ValueError,
         r"`truncate_gradient` must be None or an integer >= 1\. Received: truncate_gradient=0"),
        (lambda: kt.TBPTTLSTM(4, truncate_gradient=2.5), TypeError, "truncate_gradient=2.5"),
        (lambda: kt.TBPTTLSTM(4, truncate_gradient=True), TypeError, "truncate_gradient=True"),
        (lambda: kt.TBPTTLSTM(4, state_step=-1), ValueError, "`state_step` must be None"),
        (lambda: kt.TBPTTLSTM(4, truncate_gradient=3, unroll=True), ValueError, "`unroll=True` cannot"),
        (lambda: kt.TBPTTLSTM(4, state_step=9)(np.zeros((1, 5, 1), "float32")), ValueError,
         r"`state_step` must be <= the number of timesteps\. Received: state_step=9, timesteps=5"),
        (lambda: kt.ResetStates(), ValueError, "exactly one of `resets`, `every` and `plan`"),
        (lambda: kt.ResetStates([True], every=2), ValueError, "exactly one of `resets`"),
        (lambda: kt.ResetStates([True], plan=PLAN), ValueError, "exactly one of `resets`"),
        (lambda: kt.ResetStates(plan="plan"), TypeError,
         "`plan` must be a SplitPlan.*Received: plan of type str"),
        (lambda: kt.ResetStates(plan=PLAN, validation=np.zeros(3)), TypeError,
         "`validation` must be a SplitPlan"),
        (lambda: kt.ResetStates(every=2, validation=PLAN), ValueError, "`validation` needs `plan`"),
        (lambda: kt.ResetStates(plan=PLAN, batch_size=2), ValueError,
         "`plan` sets the schedules and the batch size; do not also pass `batch_size`"),
        (lambda: kt.ResetStates(every=0), ValueError, "`every` must be None or an integer >= 1"),
        (lambda: kt.ResetStates([1, 0]), ValueError, "`resets` must be a non-empty 1-D sequence of booleans"),
        (lambda: kt.ResetStates([True], batch_size=0), ValueError, "`batch_size` must be None or an integer >= 1"),
        (lambda: kt.rebatch("model", 2), TypeError, "`model` must be a built keras"),
        (lambda: kt.rebatch(keras.Sequential([keras.Input((3, 1)), keras.layers.Dense(1)]), 0),
         ValueError, "`batch_size` must be an integer >= 1"),
        (lambda: kt.naive_split(np.zeros((2, 10, 1)), 5).callbacks(validation="val"), TypeError,
         "`validation` must be a SplitPlan"),
    ],
)
def test_bad_keras_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_more_batches_than_the_schedule():
    data = np.zeros((2, 20, 1), "float32")
    plan = kt.naive_split(data, 5, data)
    model = keras.Sequential([
        keras.Input(batch_shape=(2, 5, 1)),
        kt.TBPTTLSTM(3, stateful=True, return_sequences=True),
    ])
    callback = kt.ResetStates(plan.resets[:2], batch_size=2)
    # The plan's dataset compares the schedules before Keras reads a batch.
    with pytest.raises(ValueError, match=r"(?s)does not match the prediction data.*"
                       r"Expected: data of 2 batches.*Received: plan.dataset\(\) of 4 batches"):
        model.predict(plan.dataset(), callbacks=[callback], verbose=0)
    # Arrays: the callback counts the batches itself.
    with pytest.raises(ValueError, match=r"(?s)does not match the prediction data.*Expected: 2 batches.*Received: 4 batches"):
        model.predict(plan.x, batch_size=2, callbacks=[callback], verbose=0)
    model.compile(loss="mse")
    with pytest.raises(ValueError, match=r"(?s)Expected: 2 batches per epoch.*Received: 4 steps"):
        model.fit(plan.x, plan.y, batch_size=2, shuffle=False, callbacks=[callback], verbose=0)
    with pytest.raises(ValueError, match=r"(?s)does not match the training data.*Expected: data of 2 batches"):
        model.fit(plan.dataset(), shuffle=False, callbacks=[callback], verbose=0)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TF graphs only")
def test_unknown_timesteps_with_truncation_raise():
    import tensorflow as tf

    layer = kt.TBPTTLSTM(4, truncate_gradient=3)
    layer.build((None, None, 1))
    traced = tf.function(layer, input_signature=[tf.TensorSpec((None, None, 1))])
    with pytest.raises(ValueError, match="static number of timesteps"):
        traced.get_concrete_function()


def _stateful(batch_size=2, timesteps=5, layer_cls=kt.TBPTTLSTM):
    return keras.Sequential([
        keras.Input(batch_shape=(batch_size, timesteps, 1)),
        layer_cls(3, stateful=True, return_sequences=True),
    ])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: kt.with_reset_flags("model"), TypeError, "`model` must be a keras.Model"),
        (lambda: kt.with_reset_flags(_stateful(layer_cls=keras.layers.LSTM)), ValueError,
         r"Stateful layers \['lstm.*'\] cannot read reset flags"),
        (lambda: kt.with_reset_flags(keras.Sequential([
            keras.Input(batch_shape=(2, 5, 1)), kt.TBPTTLSTM(3)])), ValueError,
         "no stateful TBPTTLSTM layer"),
        (lambda: kt.TBPTTLSTM(3, stateful=True)(np.zeros((2, 5, 1), "float32"),
                                                resets=np.zeros(3, "float32")), ValueError,
         r"(?s)`resets` must hold one flag per row.*Expected: shape \(2,\).*Received: shape \(3,\)"),
        (lambda: PLAN.dataset(reset_flags="yes"), TypeError, "`reset_flags` must be True, False or None"),
        (lambda: kt.as_is(np.zeros((2, 10, 1))).dataset(reset_flags=True), ValueError,
         "`reset_flags=True` needs a stateful plan"),
    ],
)
def test_bad_reset_flag_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_reset_flags_and_model_must_agree():
    data = np.zeros((2, 20, 1), "float32")
    plan = kt.naive_split(data, 5, data[..., :1].repeat(3, -1))
    plain = _stateful()
    plain.compile(loss="mse")
    with pytest.raises(ValueError, match=r"dataset with reset flags.*model takes only x"):
        plain.fit(plan.dataset(reset_flags=True), shuffle=False, verbose=0)
    flagged = kt.with_reset_flags(_stateful())
    flagged.compile(loss="mse", steps_per_execution=2)
    with pytest.raises(ValueError, match=r"without reset flags, but the model takes \[x, reset_flags\]"):
        flagged.fit(plan.dataset(), shuffle=False, verbose=0, callbacks=plan.callbacks())
    with pytest.raises(ValueError, match="both a dataset with reset flags and ResetStates"):
        flagged.predict(plan.dataset(reset_flags=True), callbacks=plan.callbacks(), verbose=0)
    train, val = plan.validation_split(0.5)
    with pytest.raises(ValueError, match="without reset flags"):
        flagged.fit(train.dataset(reset_flags=True), validation_data=val.dataset(),
                    shuffle=False, verbose=0)


def test_packed_plans_refuse_the_callback_path():
    series = [np.zeros((n, 1)) for n in (7, 12, 20)]
    plan = kt.naive_split(series, 5, batch_size=2, remainder="pad", pack=True)
    with pytest.raises(ValueError, match="packed plan resets each lane"):
        plan.callbacks()
    with pytest.raises(ValueError, match="packed plan resets each lane"):
        plan.dataset(reset_flags=False)
