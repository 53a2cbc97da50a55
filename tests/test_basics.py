"""Shapes, layout, resets, positions and unsplit of the data schemes (no Keras)."""

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import keras_tbptt as kt
from conftest import unit_weights


def test_import_does_not_load_a_backend():
    code = (
        "import sys, numpy as np, keras_tbptt as kt;"
        "kt.naive_split(np.zeros((2, 10, 1)), 5).x;"
        "print(any(m in sys.modules for m in ('keras', 'tensorflow', 'jax')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize(
    "make, length, shape, batch_size, n_batches, reset_every",
    [
        (kt.as_is, 25, (100, 25, 1), 32, 4, 1),
        (kt.one_step, 50, (5000, 1, 1), 100, 50, 50),
        (lambda s: kt.naive_split(s, 500), 50_000, (10000, 500, 1), 100, 100, 100),
    ],
    ids=["as_is_100x25", "one_step_100x50", "naive_100x50000"],
)
def test_seed_examples(make, length, shape, batch_size, n_batches, reset_every):
    plan = make(np.zeros((100, length, 1), dtype="float32"))
    assert (plan.n_samples, plan.timesteps, plan.n_features) == shape
    assert plan.batch_size == batch_size
    assert len(plan) == n_batches
    assert np.flatnonzero(plan.resets).tolist() == list(range(0, n_batches, reset_every))


def test_stateful_layout_and_positions(rng):
    data = rng.normal(size=(6, 30, 2))
    plan = kt.naive_split(data, 10, batch_size=3)
    assert len(plan) == 6 and plan.resets.tolist() == [1, 0, 0, 1, 0, 0]
    for b, (x, _, _) in enumerate(plan.batches()):
        group, chunk = divmod(b, 3)
        for row in range(3):
            np.testing.assert_array_equal(
                x[row], data[group * 3 + row, chunk * 10 : chunk * 10 + 10]
            )
    expected = [(g * 3 + r, c * 10) for g in range(2) for c in range(3) for r in range(3)]
    assert plan.positions.tolist() == [list(p) for p in expected]


def test_batches_are_views_when_layout_allows(rng):
    data = rng.normal(size=(4, 40, 3)).astype("float32")
    plan = kt.naive_split(data, 10, data[..., :1], batch_size=2)
    x, y, w = plan.batch(1)
    assert np.shares_memory(x, data) and np.shares_memory(y, data)
    assert w.shape == (2, 10) and (w == 1).all()
    # One long series as 4 streams: still views.
    plan = kt.naive_split(data[0], 5, streams=4)
    assert np.shares_memory(plan.batch(0)[0], data)
    np.testing.assert_array_equal(plan.batch(1)[0][2], data[0, 25:30])


def test_filler_rows_and_padding_get_zero_weight(rng):
    data = rng.normal(size=(5, 23, 1))
    plan = kt.naive_split(data, 10, data, batch_size=2, remainder="pad")
    # 3 groups (the last has a filler row), 3 windows each (last one 3 steps).
    assert len(plan) == 9 and plan.n_samples == 18
    w = unit_weights(plan)
    assert w.sum() == data.size  # every real step exactly once
    filler = plan.positions[:, 0] == -1
    assert filler.sum() == 3 and (w[filler] == 0).all()
    x = plan.x
    assert (x[filler] == 0).all()
    np.testing.assert_array_equal(plan.unsplit(plan.y), data)


@pytest.mark.parametrize(
    "series",
    [
        np.arange(40.0),
        np.arange(80.0).reshape(40, 2),
        np.arange(240.0).reshape(3, 40, 2),
        [np.arange(40.0), np.arange(20.0)],
    ],
    ids=["1d", "2d", "3d", "ragged"],
)
def test_unsplit_inverts_the_layout(series):
    plan = kt.naive_split(series, 10, batch_size=2)
    back = plan.unsplit(plan.x)
    if isinstance(series, list):
        for original, restored in zip(series, back, strict=True):
            np.testing.assert_array_equal(restored[:, 0], original)
    else:
        np.testing.assert_array_equal(back.reshape(np.shape(series)), series)


def test_unsplit_of_pandas_keeps_the_index():
    index = pd.date_range("2020-01-01", periods=12, freq="D")
    frame = pd.DataFrame({"a": np.arange(12.0), "b": np.arange(12.0) * 2}, index=index)
    plan = kt.naive_split(frame, 4, "b")
    back = plan.unsplit(plan.y)  # one target column: a Series with its name
    assert isinstance(back, pd.Series) and back.index.equals(index) and back.name == "b"
    np.testing.assert_array_equal(back.to_numpy(), frame["b"].to_numpy())
    assert plan.n_features == 1  # the target column is not a feature


def test_long_format_with_ids_and_time():
    frame = pd.DataFrame(
        {
            "id": ["b"] * 6 + ["a"] * 6,
            "t": list(range(6))[::-1] + list(range(6)),
            "v": np.arange(12.0),
        }
    )
    plan = kt.naive_split(frame, 3, id_col="id", time_col="t", batch_size=2)
    x = plan.x[:, :, 0]
    # Series keep their order of appearance (b first) and are sorted by time.
    np.testing.assert_array_equal(x[0], [5.0, 4.0, 3.0])
    np.testing.assert_array_equal(x[1], [6.0, 7.0, 8.0])
    back = plan.unsplit(plan.x)
    np.testing.assert_array_equal(back.loc[frame.index, "v"].to_numpy(), frame["v"].to_numpy())


def test_per_sequence_targets_weight_only_the_last_chunk(rng):
    data = rng.normal(size=(3, 30, 1))
    labels = np.array([0, 1, 2])
    plan = kt.naive_split(data, 10, labels, batch_size=2)
    w, y = unit_weights(plan), plan.y
    assert w.shape == (plan.n_samples,) and y.shape == (plan.n_samples,)
    last_chunks = (plan.positions[:, 1] == 20) & (plan.positions[:, 0] >= 0)
    assert (w == last_chunks).all()
    assert y[w == 1].tolist() == [0, 1, 2]
    outputs = np.arange(plan.n_samples, dtype=float)
    assert plan.unsplit(outputs).tolist() == np.flatnonzero(last_chunks).tolist()


def test_remainder_drop_warns_and_pad_pads():
    with pytest.warns(UserWarning, match="dropped 3 trailing"):
        plan = kt.naive_split(np.arange(23.0), 10, remainder="drop")
    assert plan.n_samples == 2
    assert np.isnan(plan.unsplit(plan.x)[20:]).all()
    plan = kt.naive_split(np.arange(23.0), 10, remainder="pad")
    assert plan.n_samples == 3 and plan.x[2, 3:].sum() == 0


def test_streams_batchify_one_long_series():
    series = np.arange(1000.0)
    plan = kt.naive_split(series, 50, batch_size=4, streams=4)
    assert plan.batch_size == 4 and len(plan) == 5 and plan.resets.sum() == 1
    first, second = plan.batch(0)[0][:, :, 0], plan.batch(1)[0][:, :, 0]
    np.testing.assert_array_equal(first[:, 0], [0, 250, 500, 750])
    np.testing.assert_array_equal(second[:, 0], first[:, -1] + 1)  # continues
    np.testing.assert_array_equal(plan.unsplit(plan.x)[:, 0], series)


def test_streams_with_padding_cover_every_step_once():
    series = np.arange(1003.0)
    plan = kt.naive_split(series, 50, series, streams=4, remainder="pad")
    assert unit_weights(plan).sum() == 1003
    np.testing.assert_array_equal(plan.unsplit(plan.y)[:, 0], series)


def test_one_step_and_decoupled_round_trip(rng):
    data = rng.normal(size=(3, 20, 2))
    plan = kt.one_step(data, batch_size=2)
    assert plan.x.shape == (80, 1, 2) and plan.resets.sum() == 2
    np.testing.assert_array_equal(plan.unsplit(plan.x), data)
    plan = kt.decoupled_split(data, k1=4, k2=8, targets=data, batch_size=3)
    assert plan.layer_kwargs == {"state_step": 4} and plan.x.shape == (12, 8, 2)
    # Every step is weighted exactly once across the overlapping windows.
    assert unit_weights(plan).sum() == 3 * 20
    np.testing.assert_array_equal(plan.unsplit(plan.x), data)
    np.testing.assert_array_equal(plan.batch(1)[0][0], data[0, 4:12])


def test_as_is_truncate_random_windows():
    data = np.arange(2 * 500.0).reshape(2, 500, 1)
    with pytest.warns(UserWarning, match="practical limit"):
        plan = kt.as_is(data, batch_size=1)
    assert np.shares_memory(plan.x, data) and not plan.stateful
    plan = kt.truncate(data, 100, side="end")
    np.testing.assert_array_equal(plan.x, data[:, 400:])
    back = plan.unsplit(plan.x)
    assert np.isnan(back[:, :400]).all() and (back[:, 400:] == data[:, 400:]).all()
    plan = kt.random_windows(data, 50, n=40, seed=3)
    again = kt.random_windows(data, 50, n=40, seed=3)
    np.testing.assert_array_equal(plan.x, again.x)
    starts = plan.positions
    for sample, (series, start) in enumerate(starts):
        np.testing.assert_array_equal(plan.x[sample], data[series, start : start + 50])
    back = plan.unsplit(plan.x)
    covered = ~np.isnan(back)
    np.testing.assert_array_equal(back[covered], data[covered])


def test_as_is_ragged_needs_pad():
    series = [np.arange(5.0), np.arange(3.0)]
    plan = kt.as_is(series, pad=True)
    np.testing.assert_array_equal(plan.x[1, :, 0], [0, 1, 2, 0, 0])
    assert plan.unsplit(plan.x)[1][:, 0].tolist() == [0, 1, 2]


def test_validation_split_is_by_time():
    data = np.arange(2 * 1000.0).reshape(2, 1000, 1)
    train, val = kt.naive_split(data, 100).validation_split(0.2)
    assert len(train) == 8 and len(val) == 2
    assert val.positions[:, 1].min() == 800
    np.testing.assert_array_equal(val.batch(0)[0], data[:, 800:900])
    back = val.unsplit(val.x)
    assert np.isnan(back[:, :800]).all() and (back[:, 800:] == data[:, 800:]).all()


@pytest.mark.parametrize("policy", ["ffill", "interpolate", "drop"])
def test_nan_policies(policy):
    series = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    plan = kt.naive_split(series, 3 if policy != "drop" else 4, nan=policy)
    x = plan.x[:, :, 0].ravel()
    expected = {
        "ffill": [1, 2, 2, 4, 5, 6, 7, 8, 9],
        "interpolate": [1, 2, 3, 4, 5, 6, 7, 8, 9],
        "drop": [1, 2, 4, 5, 6, 7, 8, 9],
    }[policy]
    np.testing.assert_array_equal(x, expected)
    if policy == "drop":
        back = plan.unsplit(plan.x)[:, 0]
        assert np.isnan(back[2]) and back[3] == 4 and plan.positions[1].tolist() == [0, 5]


def test_repr_is_readable():
    plan = kt.naive_split(np.zeros((4, 60, 1)), 20, batch_size=2)
    assert repr(plan) == (
        "SplitPlan(scheme='naive_split', x=(12, 20, 1), batch_size=2, "
        "batches=6, resets=2/6, stateful=True)"
    )


def test_integer_input_becomes_float_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = kt.naive_split(np.arange(20), 5)
    assert plan.x.dtype == np.float32


def _drawn(axis, gid=None):
    return [p for p in axis.patches if p.get_gid() == gid]


@pytest.mark.parametrize(
    "make",
    [
        lambda: kt.naive_split(np.ones((5, 46, 1)), 10, np.ones((5, 46, 1)), batch_size=2,
                               remainder="pad"),
        lambda: kt.decoupled_split(np.ones((3, 100, 1)), 10, 30, np.ones((3, 100, 1)),
                                   batch_size=2),
        lambda: kt.naive_split(np.ones(400), 20, np.ones(400), streams=4),
    ],
    ids=["padding_and_filler", "overlapping_windows", "streams"],
)
def test_plot_layout_draws_every_sample_weight_and_reset(make):
    import matplotlib
    import matplotlib.colors as mcolors

    matplotlib.use("Agg")
    plan = make()
    figure = kt.plot_layout(plan)
    left, right = figure.axes
    real = plan.positions[:, 0] >= 0
    assert len(right.patches) == plan.n_samples
    grey = [p for p in right.patches if mcolors.same_color(p.get_facecolor()[:3], "lightgrey")]
    assert len(grey) == (~real).sum()
    assert len(right.lines) == plan.resets.sum()
    assert len(_drawn(left)) == real.sum()  # one light box per real sample
    # The filled parts are exactly the weighted steps, overlaps included.
    assert sum(p.get_width() for p in _drawn(left, "weighted")) == unit_weights(plan).sum()
    # One red tick where each row (series or stream) starts from a reset state.
    ticks = sorted(line.get_xdata()[0] for line in left.lines if line.get_gid() == "reset")
    layout = plan._layout
    assert ticks == sorted(layout.row_start[layout.row_series >= 0].tolist())
    assert figure.texts[0].get_text().endswith("all drawn")


def test_plot_layout_says_what_it_leaves_out_and_uses_dates():
    import matplotlib

    matplotlib.use("Agg")
    index = pd.date_range("2001-01-01", periods=600, freq="D")
    frame = pd.DataFrame(np.ones((600, 40)), index=index)
    plan = kt.naive_split(frame, 50, batch_size=16, wide=True)
    figure = kt.plot_layout(plan)
    note = figure.texts[0].get_text()
    assert "first 24 of 36 batches" in note and "32 of 40 series" in note
    left, right = figure.axes
    assert not right.texts  # too many boxes for readable labels
    figure.canvas.draw()
    labels = [t.get_text() for t in left.get_xticklabels() if t.get_text()]
    assert labels and all(label.startswith("200") for label in labels)
    assert left.get_xlabel() == "time"


def test_huge_finite_values_are_not_mistaken_for_inf():
    data = np.full((3, 10, 1), 3e30, dtype="float32")  # squares overflow float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = kt.naive_split(data, 5)
    np.testing.assert_array_equal(plan.unsplit(plan.x), data)
