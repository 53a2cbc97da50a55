"""Out-of-core series: a memory-mapped `.npy` file (`np.load(path,
mmap_mode="r")`) works as input, batches are views of the file, and building
a plan allocates nothing the size of the data (numpy only, no Keras).

Allocations are measured with `tracemalloc`, to which numpy reports every
array it allocates: a copy of the data, a float64 cast or a boolean mask of
it would show up as megabytes.
"""

import tracemalloc
import warnings

import numpy as np
import pytest

import keras_tbptt as kt

N_SERIES, LENGTH, FEATURES = 20, 200_000, 2  # 32 MB of float32
# What building a plan of the 32 MB file may allocate: 1% of the data is
# 320 KB; the plans take a few KB (their layout: a few int64 per row).
BUDGET = 256 * 1024


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """`x.npy` [20, 200_000, 2] and `y.npy` [20, 200_000, 1], float32,
    written series by series (never whole in memory)."""
    path = tmp_path_factory.mktemp("out_of_core")
    rng = np.random.default_rng(0)
    for name, features in (("x.npy", FEATURES), ("y.npy", 1)):
        out = np.lib.format.open_memmap(
            path / name, mode="w+", dtype=np.float32, shape=(N_SERIES, LENGTH, features)
        )
        for i in range(N_SERIES):
            out[i] = rng.standard_normal((LENGTH, features), dtype=np.float32)
        out.flush()
        del out
    return path


@pytest.fixture(scope="module")
def x(folder):
    return np.load(folder / "x.npy", mmap_mode="r")


@pytest.fixture(scope="module")
def y(folder):
    return np.load(folder / "y.npy", mmap_mode="r")


def _peak(call):
    """`(result, peak bytes allocated while running call())`."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a clean file warns about nothing
            result = call()
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        if not tracing:
            tracemalloc.stop()


# (name, build(x, y)): plans whose x and y batches are all views of the file
SCHEMES = [
    ("naive_split", lambda x, y: kt.naive_split(x, 1000)),
    ("naive_split+y", lambda x, y: kt.naive_split(x, 1000, y)),
    ("naive_split+sliced_y", lambda x, y: kt.naive_split(x[..., :1], 1000, x[..., 1:])),
    ("naive_split_batch_size", lambda x, y: kt.naive_split(x, 1000, y, batch_size=4)),
    ("naive_split_streams", lambda x, y: kt.naive_split(x, 1000, y, streams=4)),
    ("one_step", lambda x, y: kt.one_step(x)),
    ("one_step+y", lambda x, y: kt.one_step(x, y)),
    ("decoupled_k2<k1", lambda x, y: kt.decoupled_split(x, 1000, 100, y)),
    ("decoupled_k2>k1", lambda x, y: kt.decoupled_split(x, 500, 1000, y)),
    ("as_is", lambda x, y: kt.as_is(x[:, :300])),
    ("as_is+y", lambda x, y: kt.as_is(x[:, :300], y[:, :300])),
    ("2d_naive_split", lambda x, y: kt.naive_split(x[0], 1000, y[0])),
    ("2d_one_step", lambda x, y: kt.one_step(x[0], y[0])),
    ("1d_naive_split", lambda x, y: kt.naive_split(x[0, :, 0], 1000, y[0, :, 0])),
]
IDS = [name for name, _ in SCHEMES]


@pytest.mark.parametrize("build", [b for _, b in SCHEMES], ids=IDS)
def test_building_a_plan_on_a_memmap_allocates_nothing_the_size_of_the_data(x, y, build):
    plan, peak = _peak(lambda: build(x, y))
    assert peak < BUDGET, (peak, x.nbytes)


def test_one_step_plan_costs_no_bookkeeping_per_batch(x):
    _, peak = _peak(lambda: kt.one_step(x))
    assert peak < BUDGET


@pytest.mark.parametrize("build", [b for _, b in SCHEMES], ids=IDS)
def test_batches_are_views_of_the_file(x, y, build):
    plan = build(x, y)
    for index in sorted({0, len(plan) // 2, len(plan) - 1}):
        batch_x, batch_y, _ = plan.batch(index)
        assert np.shares_memory(batch_x, x), index
        if batch_y is not None:
            assert np.shares_memory(batch_y, x) or np.shares_memory(batch_y, y), index


@pytest.mark.parametrize("build", [b for _, b in SCHEMES], ids=IDS)
def test_reading_batches_allocates_at_most_their_weights(x, y, build):
    plan = build(x, y)
    plan.batch(0)
    # x and y are views (no bytes); the weights are float32 [rows, timesteps],
    # made from boolean masks of that shape (and numpy's 64 KB ufunc buffers).
    cells = plan.batch_size * plan.timesteps

    def read():
        for index in (0, len(plan) // 2, len(plan) - 1):
            plan.batch(index)

    _, peak = _peak(read)
    assert peak < 64 * 1024 + 24 * cells, peak


SMALL = [
    ("naive_split", lambda x, y: kt.naive_split(x, 20, y, batch_size=2)),
    ("naive_split_filler", lambda x, y: kt.naive_split(x, 20, y, batch_size=3)),
    ("naive_split_pack", lambda x, y: kt.naive_split(x, 20, y, batch_size=3, pack=True)),
    ("naive_split_streams", lambda x, y: kt.naive_split(x, 10, y, streams=3)),
    ("naive_split_pad", lambda x, y: kt.naive_split(x, 25, y, remainder="pad")),
    ("one_step", lambda x, y: kt.one_step(x, y)),
    ("decoupled_k2<k1", lambda x, y: kt.decoupled_split(x, 20, 5, y)),
    ("decoupled_k2>k1", lambda x, y: kt.decoupled_split(x, 10, 20, y)),
    ("as_is", lambda x, y: kt.as_is(x, y)),
    ("2d_naive_split", lambda x, y: kt.naive_split(x[1], 15, y[1])),
]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small [4, 60, 2] inputs file and [4, 60, 1] targets file."""
    path = tmp_path_factory.mktemp("small")
    data = np.random.default_rng(1).normal(size=(4, 60, 3)).astype(np.float32)
    np.save(path / "x.npy", data[..., :2])
    np.save(path / "y.npy", data[..., 2:])
    return np.load(path / "x.npy", mmap_mode="r"), np.load(path / "y.npy", mmap_mode="r")


@pytest.mark.parametrize("build", [b for _, b in SMALL], ids=[n for n, _ in SMALL])
def test_memmap_plan_equals_in_memory_plan_and_unsplits_to_the_file(small, build):
    x, y = small
    plan, reference = build(x, y), build(np.array(x), np.array(y))
    for got, want in zip(plan.batches(), reference.batches(), strict=True):
        for part, expected in zip(got, want, strict=True):
            np.testing.assert_array_equal(part, expected)
    np.testing.assert_array_equal(plan.positions, reference.positions)
    expected_x, expected_y = (x[1], y[1]) if plan.n_series == 1 else (x, y)
    np.testing.assert_array_equal(plan.unsplit(plan.x), expected_x)
    np.testing.assert_array_equal(plan.unsplit(plan.y), expected_y)
    # Predictions of a model: any per-step output maps back the same way.
    outputs = plan.x.sum(axis=-1, keepdims=True) * 2
    np.testing.assert_allclose(plan.unsplit(outputs), expected_x.sum(axis=-1, keepdims=True) * 2)


def test_validation_split_of_a_memmap_plan_keeps_views(x, y):
    train, validation = kt.naive_split(x, 1000, y).validation_split(0.2)
    for plan in (train, validation):
        batch_x, batch_y, _ = plan.batch(len(plan) - 1)
        assert np.shares_memory(batch_x, x) and np.shares_memory(batch_y, y)


def test_filler_rows_leave_the_full_groups_as_views(x):
    plan = kt.naive_split(x[:5], 1000, batch_size=2)  # a third group: 1 series + filler
    for index in (0, len(plan) // 2):
        assert np.shares_memory(plan.batch(index)[0], x), index


def test_padding_copies_each_batch_but_not_the_file(x):
    plan, peak = _peak(lambda: kt.naive_split(x[:, :1500], 1000, remainder="pad"))
    assert peak < BUDGET
    last, _, weight = plan.batch(1)
    assert not np.shares_memory(last, x)
    np.testing.assert_array_equal(last[:, :500], x[:, 1000:1500])
    assert (last[:, 500:] == 0).all()


@pytest.fixture(scope="module")
def special_files(folder, x):
    """Copies of x with one NaN, with one inf, as float16 and as int16."""
    files = {}
    for name in ("nan", "inf", "float16", "int16"):
        dtype = {"float16": np.float16, "int16": np.int16}.get(name, np.float32)
        out = np.lib.format.open_memmap(
            folder / f"{name}.npy", mode="w+", dtype=dtype, shape=x.shape
        )
        for i in range(N_SERIES):
            out[i] = x[i] * (100 if name == "int16" else 1)
        if name in ("nan", "inf"):
            out[3, 1000, 1] = np.nan if name == "nan" else np.inf
        out.flush()
        del out
        files[name] = np.load(folder / f"{name}.npy", mmap_mode="r")
    return files


@pytest.mark.parametrize(
    "name, match",
    [
        ("nan", r"`series` contains NaN at 1 time steps \(series 3 steps \[1000\]\)\. Pass nan="),
        ("inf", r"`series` contains 1 infinite values \(series 3 steps \[1000\]\)"),
    ],
)
def test_refusing_a_nan_or_inf_in_a_memmap_scans_it_in_blocks(special_files, name, match):
    data = special_files[name]

    def build():
        with pytest.raises(ValueError, match=match):
            kt.naive_split(data, 1000)

    _, peak = _peak(build)
    # One series' row mask (LENGTH bools) for the series with the hit, plus
    # the blocks of the scan (about 1 MB of data each).
    assert peak < LENGTH + 2 * 1024 * 1024, peak


def test_float16_memmap_is_checked_in_blocks_and_kept(special_files):
    # float16 overflows the one-pass finite screen (a dot product), so the
    # exact check runs: in blocks, not on the whole file.
    data = special_files["float16"]
    plan, peak = _peak(lambda: kt.naive_split(data, 1000))
    assert peak < 2 * 1024 * 1024, peak
    assert np.shares_memory(plan.batch(0)[0], data)


def test_ffill_copies_only_the_series_with_nan(special_files):
    data = special_files["nan"]
    plan, peak = _peak(lambda: kt.naive_split(data, 1000, nan="ffill"))
    one_series = data[0].nbytes  # 1.6 MB; the file is 32 MB
    assert peak < 4 * one_series, peak
    x_batch = plan.batch(1)[0]  # steps 1000-1999: series 3 filled
    assert x_batch[3, 0, 1] == data[3, 999, 1]
    np.testing.assert_array_equal(np.delete(x_batch, 3, axis=0), np.delete(data[:, 1000:2000], 3, axis=0))


def test_integer_memmap_warns_that_it_is_copied(special_files):
    data = special_files["int16"]
    with pytest.warns(UserWarning, match=r"memory-mapped array of dtype int16.*copied.*float32"):
        plan = kt.naive_split(data[:2], 1000)
    assert plan.batch(0)[0].dtype == np.float32
    np.testing.assert_array_equal(plan.batch(0)[0], data[:2, :1000])


def test_many_short_series_cost_no_object_per_series(folder):
    # 100,000 series of 10 steps (8 MB): validation keeps no list of views
    # (a Python object per series, 100-500 bytes each) and the
    # [length, n_series] reading check looks at a bounded sample.
    from keras_tbptt.core.inputs import as_panel

    n = 100_000
    path = folder / "short.npy"
    np.save(path, np.random.default_rng(2).normal(size=(n, 10, 2)).astype(np.float32))
    data = np.load(path, mmap_mode="r")
    (panel, _), peak = _peak(lambda: as_panel(data))
    assert peak < BUDGET + 8 * n, peak  # the lengths: one int64 per series
    assert len(panel.arrays) == n and np.shares_memory(panel.arrays[n - 1], data)
    np.testing.assert_array_equal(panel.arrays[-1], data[-1])
