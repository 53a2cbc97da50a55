"""Per-row resets inside the graph: reset flags travel with the data.

A stateful `TBPTTLSTM` in a `with_reset_flags` model, fed
`plan.dataset(reset_flags=True)`, must give what one uninterrupted pass over
each series gives: for packed panels of ragged series (lanes change series
mid-epoch) and plain ones, with `steps_per_execution` 1 and 8, under every
backend, with no callbacks.
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import keras_tbptt as kt  # noqa: E402
from conftest import executable_steps, to_numpy  # noqa: E402

pytestmark = pytest.mark.keras
UNITS = 4
CONFIG = {"units": UNITS, "return_sequences": True}


@pytest.fixture(scope="module")
def ragged():
    """12 ragged series (37 to 500 steps), targets, and LSTM weights."""
    rng = np.random.default_rng(7)
    lengths = np.r_[37, 500, rng.integers(37, 501, size=10)]
    series = [rng.normal(size=(n, 2)).astype("float32") for n in lengths]
    targets = [rng.normal(size=(n, UNITS)).astype("float32") for n in lengths]
    keras.utils.set_random_seed(0)
    layer = keras.layers.LSTM(**CONFIG)
    layer.build((None, None, 2))
    weights = [w * 3 for w in layer.get_weights()]  # a long memory
    return series, targets, weights


def full_pass(config, weights, series):
    """Outputs of a non-stateful keras.layers.LSTM over each whole series,
    in one call: the series are zero-padded at the end, which cannot change
    the outputs before the padding."""
    layer = keras.layers.LSTM(**{**config, "stateful": False})
    layer.build((None, None, series[0].shape[-1]))
    layer.set_weights(weights)
    longest = max(len(s) for s in series)
    padded = np.stack([np.pad(s, ((0, longest - len(s)), (0, 0))) for s in series])
    outputs = to_numpy(layer(padded.astype("float32")))
    return [out[: len(s)] for out, s in zip(outputs, series)]


def flag_model(plan, weights, steps_per_execution=1, jit_compile="auto"):
    layer = kt.TBPTTLSTM(stateful=True, **CONFIG, **plan.layer_kwargs)
    inner = keras.Sequential(
        [keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 2)), layer]
    )
    layer.set_weights(weights + layer.get_weights()[len(weights):])
    model = kt.with_reset_flags(inner)
    model.compile(
        optimizer=keras.optimizers.SGD(0.0),
        loss="mse",
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    return model


def full_pass_outputs(plan, series, weights):
    """Expected outputs in plan order: each series' part in the plan run in
    one pass from a zero state (its first sample's step onwards)."""
    positions = plan.positions
    expected = np.zeros((plan.n_samples, plan.timesteps, UNITS), "float32")
    firsts = [positions[positions[:, 0] == i, 1].min() for i in range(len(series))]
    passes = full_pass(CONFIG, weights, [s[first:] for s, first in zip(series, firsts)])
    for i, (outputs, first) in enumerate(zip(passes, firsts)):
        mine = positions[:, 0] == i
        for sample, start in zip(np.flatnonzero(mine), positions[mine, 1]):
            part = outputs[start - first : start - first + plan.timesteps]
            expected[sample, : len(part)] = part
    return expected


def weighted_mse(plan, outputs):
    """The mean squared error over the weighted steps of the whole epoch."""
    y, weight = plan.y, plan.sample_weight
    losses = ((outputs - y) ** 2).mean(axis=-1)
    return (losses * weight).sum() / weight.sum()


SCHEMES = {
    "naive_packed": lambda s, y: kt.naive_split(s, 25, y, batch_size=4, remainder="pad", pack=True),
    "naive": lambda s, y: kt.naive_split(s, 25, y, batch_size=4, remainder="pad"),
    "decoupled_packed": lambda s, y: kt.decoupled_split(
        s, 20, 30, y, batch_size=5, remainder="pad", pack=True
    ),
}


@pytest.mark.parametrize("steps_per_execution", sorted({1, executable_steps(8)}))
@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_predictions_equal_full_pass(scheme, steps_per_execution, ragged):
    series, targets, weights = ragged
    plan = SCHEMES[scheme](series, targets)
    model = flag_model(plan, weights, steps_per_execution)
    outputs = model.predict(plan.dataset(reset_flags=True), verbose=0)
    for got, expected in zip(plan.unsplit(outputs), full_pass(CONFIG, weights, series)):
        np.testing.assert_allclose(got, expected, atol=2e-5)


@pytest.mark.parametrize("steps_per_execution", sorted({1, executable_steps(8)}))
def test_fit_with_learning_rate_zero_gives_full_pass_loss(steps_per_execution, ragged):
    series, targets, weights = ragged
    plan = SCHEMES["naive_packed"](series, targets)
    model = flag_model(plan, weights, steps_per_execution)
    history = model.fit(plan.dataset(), shuffle=False, epochs=2, verbose=0)
    expected = weighted_mse(plan, full_pass_outputs(plan, series, weights))
    np.testing.assert_allclose(history.history["loss"], [expected] * 2, rtol=1e-5)
    evaluated = model.evaluate(plan.dataset(), verbose=0)
    np.testing.assert_allclose(evaluated, expected, rtol=1e-5)


@pytest.mark.parametrize("pack", [True, False])
def test_validation_during_fit_uses_its_own_resets(pack, ragged):
    series, targets, weights = ragged
    plan = kt.naive_split(series, 25, targets, batch_size=4, remainder="pad", pack=pack)
    train, val = plan.validation_split(0.3)
    model = flag_model(train, weights, executable_steps(4))
    history = model.fit(
        train.dataset(reset_flags=True),
        validation_data=val.dataset(reset_flags=True),
        shuffle=False,
        epochs=2,
        verbose=0,
    )
    # Validation starts each series' held-out part from a zero state, and
    # training resumes from the train plan's own resets.
    expected_val = weighted_mse(val, full_pass_outputs(val, series, weights))
    expected_train = weighted_mse(train, full_pass_outputs(train, series, weights))
    np.testing.assert_allclose(history.history["val_loss"], [expected_val] * 2, rtol=1e-5)
    np.testing.assert_allclose(history.history["loss"], [expected_train] * 2, rtol=1e-5)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_flags_as_arrays_match_the_dataset(jit_compile, ragged):
    series, targets, weights = ragged
    plan = SCHEMES["naive_packed"](series, targets)
    model = flag_model(plan, weights, executable_steps(5), jit_compile=jit_compile)
    from_arrays = model.predict(
        [plan.x, plan.reset_flags], batch_size=plan.batch_size, verbose=0
    )
    from_dataset = model.predict(plan.dataset(), verbose=0)
    np.testing.assert_allclose(from_arrays, from_dataset, atol=1e-6)


def test_layer_resets_only_flagged_rows():
    """`resets=` zeroes the carried state of flagged rows, and only theirs."""
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(2, 4, 6, 3)).astype("float32")
    layer = kt.TBPTTLSTM(5, stateful=True, return_sequences=True)
    layer(first)
    flags = np.array([1, 0, 1, 0], "float32")
    got = to_numpy(layer(second, resets=flags))
    fresh = kt.TBPTTLSTM(5, return_sequences=True)
    fresh.build(second.shape)
    fresh.set_weights(layer.get_weights()[:3])
    from_zero = to_numpy(fresh(second))
    continued = to_numpy(fresh(np.concatenate([first, second], axis=1)))[:, 6:]
    np.testing.assert_allclose(got[[0, 2]], from_zero[[0, 2]], atol=1e-6)
    np.testing.assert_allclose(got[[1, 3]], continued[[1, 3]], atol=1e-6)


def test_explicit_resets_in_a_functional_model(ragged):
    """A functional model may wire the flags by hand (`resets=`)."""
    series, targets, weights = ragged
    plan = SCHEMES["naive_packed"](series, targets)
    x = keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 2))
    flags = keras.Input(batch_shape=(plan.batch_size,))
    layer = kt.TBPTTLSTM(stateful=True, **CONFIG)
    model = keras.Model([x, flags], layer(x, resets=flags))
    layer.set_weights(weights + layer.get_weights()[len(weights):])
    outputs = model.predict(plan.dataset(), verbose=0)
    for got, expected in zip(plan.unsplit(outputs), full_pass(CONFIG, weights, series)):
        np.testing.assert_allclose(got, expected, atol=2e-5)


def test_saved_model_keeps_its_flags(tmp_path, ragged):
    series, targets, weights = ragged
    plan = SCHEMES["naive_packed"](series, targets)
    model = flag_model(plan, weights)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(plan.dataset(), verbose=0),
        model.predict(plan.dataset(), verbose=0),
        atol=1e-6,
    )


def test_rebatch_and_forecast_a_wrapped_model(ragged):
    series, targets, weights = ragged
    plan = SCHEMES["naive_packed"](series, targets)
    model = flag_model(plan, weights)
    single = kt.rebatch(model, 1)
    assert [tuple(t.shape) for t in single.inputs] == [(1, 25, 2), (1,)]
    chunk = series[0][:25][None]
    expected = full_pass(CONFIG, weights, [series[0][:25]])[0]
    got = single.predict([chunk, np.ones(1, "float32")], verbose=0)[0]
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_every_stateful_layer_of_a_wrapped_functional_model_resets(ragged):
    """Stacked stateful layers in a nested functional model all read the flags."""
    series, targets, weights = ragged
    plan = SCHEMES["naive_packed"](series, targets)
    x = keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 2))
    first = kt.TBPTTLSTM(stateful=True, **CONFIG)
    second = kt.TBPTTLSTM(3, stateful=True, return_sequences=True)
    inner = keras.Model(x, second(first(x)))
    first.set_weights(weights + first.get_weights()[len(weights):])
    model = kt.with_reset_flags(inner)
    got = plan.unsplit(model.predict(plan.dataset(), verbose=0))
    reference = keras.Sequential([keras.layers.LSTM(**CONFIG), keras.layers.LSTM(3, return_sequences=True)])
    reference.build((None, None, 2))
    reference.set_weights(first.get_weights()[:3] + second.get_weights()[:3])
    for out, s in zip(got, series):
        np.testing.assert_allclose(out, to_numpy(reference(s[None]))[0], atol=2e-5)
