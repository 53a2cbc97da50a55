"""The fast paths of `plan.dataset()` give exactly `plan.batch`'s batches.

`PlanDataset` is its own Keras data adapter: under JAX (NumPy, torch) a
Python generator of views of the series, or of slices of the whole epoch
gathered at once, or (memory-mapped series) of `plan.batch`; under
TensorFlow a `tf.data` pipeline slicing that epoch, or a `tf.numpy_function`
per batch. Each path is compared here, batch by batch, with `SplitPlan.batch`
over plans of every layout: views, padding, filler rows, overlapping windows,
packed lanes with reset flags, sentence windows, per-sequence targets, NaN
targets, token ids, memory-mapped series and the smaller last batches of
stateless plans; then fit, evaluate and predict against numpy arrays. No
timing here: speed is measured in `benchmarks/bench_dataset.py`.
"""

import random
import warnings

import keras
import numpy as np
import pandas as pd
import pytest

import keras_tbptt as kt
from keras_tbptt.core.arrays import is_memory_mapped
from keras_tbptt.training import dataset as dataset_module

RNG = np.random.default_rng(7)


def series(n, length, features=1):
    return RNG.standard_normal((n, length, features)).astype("float32")


def ragged(lengths, features=1):
    return [RNG.standard_normal((n, features)).astype("float32") for n in lengths]


def nan_targets():
    targets = series(3, 40, 2)
    targets[1, 5:9] = np.nan
    return targets


def memory_mapped(tmp_path):
    path = tmp_path / "series.npy"
    np.save(path, series(4, 60, 2))
    return np.load(path, mmap_mode="r")


DOCS = [[5, 6, 7, 1, 8, 1, 9], [3, 4, 1, 2, 2, 2, 2, 2, 2, 1], [7, 1], [4, 4, 1]]

PLANS = {
    "views": lambda tmp: kt.naive_split(series(4, 60), 10, series(4, 60), batch_size=2),
    "one_step": lambda tmp: kt.one_step(series(5, 30), series(5, 30)),
    "padded": lambda tmp: kt.naive_split(
        ragged([33, 50, 20]), 8, ragged([33, 50, 20]), remainder="pad", batch_size=2),
    "filler_rows": lambda tmp: kt.naive_split(series(3, 40, 2), 10, series(3, 40), batch_size=2),
    "streams": lambda tmp: kt.naive_split(series(2, 80), 10, series(2, 80), streams=2),
    "overlapping": lambda tmp: kt.decoupled_split(series(3, 64), 4, 12, series(3, 64)),
    "overlapping_padded": lambda tmp: kt.decoupled_split(
        ragged([30, 47]), 5, 15, ragged([30, 47]), remainder="pad"),
    "packed": lambda tmp: kt.naive_split(
        ragged([37, 120, 64, 90, 41]), 10, ragged([37, 120, 64, 90, 41]), remainder="pad",
        batch_size=2, pack=True),
    "packed_one_step": lambda tmp: kt.one_step(
        ragged([3, 2, 2, 1]), ragged([3, 2, 2, 1]), batch_size=2, pack=True),
    "no_targets": lambda tmp: kt.naive_split(series(4, 60), 10, batch_size=2),
    "per_sequence": lambda tmp: kt.naive_split(
        series(3, 40), 10, RNG.standard_normal((3, 2)), batch_size=2),
    "per_sequence_1d": lambda tmp: kt.naive_split(
        ragged([25, 40, 31]), 10, np.array([1.0, 2.0, 3.0]), remainder="pad", batch_size=2),
    "nan_targets": lambda tmp: kt.naive_split(series(3, 40), 10, nan_targets(), nan="ffill"),
    "sentences": lambda tmp: kt.sentence_split(
        DOCS, sentence_end=1, max_len=4, targets=[d[1:] + [0] for d in DOCS], batch_size=2),
    "wide_frame": lambda tmp: kt.naive_split(
        pd.DataFrame(RNG.standard_normal((40, 3))), 10, batch_size=3, wide=True),
    "memory_mapped": lambda tmp: kt.naive_split(memory_mapped(tmp), 15, batch_size=2),
    "memory_mapped_padded": lambda tmp: kt.naive_split(
        memory_mapped(tmp), 16, memory_mapped(tmp), remainder="pad", batch_size=2),
    "as_is_partial": lambda tmp: kt.as_is(ragged([5, 9, 7, 3, 8]), ragged([5, 9, 7, 3, 8]),
                                          batch_size=2, pad=True),
    "random_windows": lambda tmp: kt.random_windows(
        series(3, 50), 10, 7, series(3, 50), seed=0, batch_size=3),
    "truncate": lambda tmp: kt.truncate(series(5, 30), 12, series(5, 30), batch_size=2),
}


def expected_batches(plan, reset_flags):
    flags = plan.reset_flags.reshape(len(plan), plan.batch_size) if reset_flags else None
    out = []
    for j in range(len(plan)):
        x, y, weight = plan.batch(j)
        if flags is not None:
            x = (x, flags[j])
        out.append((x,) if y is None else (x, y, weight))
    return out


def assert_same_batches(got, expected):
    assert len(got) == len(expected)
    for j, (a, b) in enumerate(zip(got, expected, strict=True)):
        a, b = keras.tree.flatten(a), keras.tree.flatten(b)
        assert len(a) == len(b), f"batch {j}"
        for u, v in zip(a, b, strict=True):
            u = np.asarray(u)
            assert u.dtype == v.dtype, f"batch {j}: {u.dtype} != {v.dtype}"
            np.testing.assert_array_equal(u, v, err_msg=f"batch {j}")


@pytest.fixture(params=sorted(PLANS))
def plan_and_flags(request, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # filler share, padding
        plan = PLANS[request.param](tmp_path)
    return request.param, plan, bool(plan.packed)


def test_reads_every_batch_as_plan_batch(plan_and_flags):
    _, plan, flags = plan_and_flags
    data = plan.dataset(reset_flags=flags)
    expected = expected_batches(plan, flags)
    assert_same_batches([data[j] for j in range(len(data))], expected)
    assert_same_batches(list(data.get_numpy_iterator()), expected)
    assert_same_batches(list(data.get_jax_iterator()), expected)
    inputs = [batch[:1] for batch in expected]  # what predict() gets
    assert_same_batches(list(data._in_order(inputs_only=True)), inputs)
    # Views of the series where every batch is one, else the epoch gathered
    # at once, unless the series are memory-mapped (then batch by batch).
    memory_mapped = is_memory_mapped(plan._panel.arrays[0])
    assert (data._epoch is False) == (bool(data._fast.all()) or memory_mapped)


def test_reset_flags_travel_with_every_stateful_plan():
    plan = kt.naive_split(series(3, 40), 10, series(3, 40), batch_size=2)
    data = plan.dataset(reset_flags=True)
    expected = expected_batches(plan, True)
    assert_same_batches(list(data.get_jax_iterator()), expected)
    assert [b[0][1].tolist() for b in expected[:5]] == [[1, 1], [0, 0], [0, 0], [0, 0], [1, 1]]


def test_view_batches_stay_views_of_the_data(tmp_path):
    data = memory_mapped(tmp_path)
    plan = kt.naive_split(data, 15, batch_size=2)
    for (x,) in plan.dataset().get_jax_iterator():
        assert np.shares_memory(x, data)


@pytest.mark.parametrize("path", ["epoch", "numpy_function"])
def test_tensorflow_pipeline_gives_plan_batches(plan_and_flags, path, monkeypatch):
    tf = pytest.importorskip("tensorflow")
    _, plan, flags = plan_and_flags
    if path == "numpy_function":
        monkeypatch.setattr(dataset_module, "EPOCH_MAX_BYTES", 0)
    data = plan.dataset(reset_flags=flags)
    dataset = data.get_tf_dataset()
    memory_mapped = is_memory_mapped(plan._panel.arrays[0])
    assert data._tf_path == ("numpy_function" if memory_mapped else path)  # mmap: not copied
    expected = expected_batches(plan, flags)
    assert_same_batches([tf.nest.map_structure(lambda t: t.numpy(), b) for b in dataset], expected)
    batch_axis = {spec.shape[0] for spec in tf.nest.flatten(dataset.element_spec)}
    assert batch_axis == {None if data.has_partial_batch else plan.batch_size}
    monkeypatch.setattr(data, "_settings", lambda: (False, True))  # as for predict()
    inputs = [tf.nest.map_structure(lambda t: t.numpy(), b) for b in data.get_tf_dataset()]
    assert_same_batches(inputs, [batch[:1] for batch in expected])


@pytest.mark.parametrize("path", ["epoch", "numpy_function"])
@pytest.mark.parametrize("n_series", [40, 41], ids=["equal_batches", "partial_last_batch"])
def test_tensorflow_shuffles_a_stateless_plan_in_the_graph(path, n_series, monkeypatch):
    # fit(shuffle=True) on a stateless plan: the batch indices are permuted
    # inside tf.data, anew each epoch; no Python generator runs there.
    tf = pytest.importorskip("tensorflow")
    if path == "numpy_function":
        monkeypatch.setattr(dataset_module, "EPOCH_MAX_BYTES", 0)
    plan = kt.as_is(series(n_series, 5), series(n_series, 5), batch_size=2)
    data = plan.dataset()
    monkeypatch.setattr(data, "_settings", lambda: (True, False))  # as for fit(shuffle=True)
    tf.random.set_seed(0)
    dataset = data.get_tf_dataset()
    assert data._tf_path == path
    expected = expected_batches(plan, False)
    first = {float(b[0][0, 0, 0]): j for j, b in enumerate(expected)}
    orders = []
    for _ in range(2):
        epoch = [tf.nest.map_structure(lambda t: t.numpy(), b) for b in dataset]
        order = [first[float(b[0][0, 0, 0])] for b in epoch]
        assert_same_batches(epoch, [expected[j] for j in order])
        orders.append(order)
    assert all(sorted(order) == list(range(len(plan))) for order in orders)
    assert orders[0] != list(range(len(plan))) and orders[0] != orders[1]


def epoch_orders(data, shuffle):
    """Batch order of two epochs as Keras' epoch iterator reads them."""
    from keras.src.trainers.epoch_iterator import EpochIterator

    iterator = EpochIterator(x=data, shuffle=shuffle)
    first_value = {float(data[j][0][0, 0, 0]): j for j in range(len(data))}
    orders = []
    for _ in range(2):
        orders.append([first_value[float(batch[0][0, 0, 0])]
                       for _, _, (batch,) in iterator.enumerate_epoch()])
    return orders


def test_stateless_plans_are_shuffled_when_keras_asks():
    plan = kt.as_is(series(40, 5), batch_size=2)  # 20 batches
    random.seed(0)
    shuffled = epoch_orders(plan.dataset(), shuffle=True)
    assert all(sorted(order) == list(range(20)) for order in shuffled)
    assert shuffled[0] != list(range(20)) and shuffled[0] != shuffled[1]
    assert epoch_orders(plan.dataset(), shuffle=False) == [list(range(20))] * 2


def test_stateful_plans_refuse_shuffling_from_the_adapter():
    plan = kt.naive_split(series(4, 100), 5, batch_size=2)  # 40 batches
    random.seed(1)
    with pytest.raises(ValueError, match=r"must be read in order.*Received: shuffle=True"):
        epoch_orders(plan.dataset(), shuffle=True)


def test_class_weight_is_refused_before_any_batch():
    plan = kt.naive_split(series(2, 20), 10, series(2, 20))
    model = keras.Sequential([
        keras.Input(batch_shape=(2, 10, 1)),
        kt.TBPTTLSTM(2, stateful=True, return_sequences=True),
    ])
    model.compile(loss="mse")
    with pytest.raises(ValueError, match=r"`class_weight` and `sample_weight`.*class_weight=\{0: 1\.0\}"):
        model.fit(plan.dataset(), shuffle=False, class_weight={0: 1.0},
                  callbacks=plan.callbacks(), verbose=0)


@pytest.mark.parametrize("lazy", [False, True], ids=["in_memory", "lazy"])
@pytest.mark.parametrize("name", ["views", "padded", "overlapping", "per_sequence", "nan_targets"])
def test_fit_evaluate_predict_match_numpy_arrays(name, lazy, monkeypatch, tmp_path):
    if lazy:  # batch by batch: tf.numpy_function, or plan.batch under JAX
        monkeypatch.setattr(dataset_module, "EPOCH_MAX_BYTES", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = PLANS[name](tmp_path)
    over_time = not plan.per_sequence_targets

    def model():
        keras.utils.set_random_seed(0)
        net = keras.Sequential([
            keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 1)),
            kt.TBPTTLSTM(3, stateful=True, return_sequences=over_time, **plan.layer_kwargs),
            keras.layers.Dense(plan._targets.n_features),
        ])
        net.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        return net

    arrays, data = model(), model()
    kwargs = {"shuffle": False, "callbacks": plan.callbacks(), "verbose": 0}
    a = arrays.fit(plan.x, plan.y, sample_weight=plan.sample_weight,
                   batch_size=plan.batch_size, epochs=2, **kwargs)
    d = data.fit(plan.dataset(), epochs=2, **kwargs)
    np.testing.assert_allclose(d.history["loss"], a.history["loss"], rtol=1e-5)
    del kwargs["shuffle"]
    np.testing.assert_allclose(
        data.evaluate(plan.dataset(), **kwargs),
        arrays.evaluate(plan.x, plan.y, sample_weight=plan.sample_weight,
                        batch_size=plan.batch_size, **kwargs), rtol=1e-5)
    np.testing.assert_allclose(
        data.predict(plan.dataset(), **kwargs),
        arrays.predict(plan.x, batch_size=plan.batch_size, **kwargs), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reset_flags", [False, True])
def test_predict_reads_only_the_inputs(reset_flags):
    # Keras' predict ignores targets and weights; sending them costs a copy
    # to the device per batch (numpy arrays send only x).
    plan = kt.naive_split(series(4, 30), 10, series(4, 30), batch_size=2)
    model = keras.Sequential([
        keras.Input(batch_shape=(2, 10, 1)),
        kt.TBPTTLSTM(2, stateful=True, return_sequences=True),
    ])
    if reset_flags:
        model = kt.with_reset_flags(model)
    seen = []
    predict_step = model.predict_step

    def spy(*args):  # (data), or (state, data) under JAX
        seen.append(len(args[-1]))
        return predict_step(*args)

    model.predict_step = spy
    callbacks = [] if reset_flags else plan.callbacks()
    out = model.predict(plan.dataset(reset_flags=reset_flags), callbacks=callbacks, verbose=0)
    assert seen and set(seen) == {1}
    assert out.shape == (len(plan) * 2, 10, 2)
