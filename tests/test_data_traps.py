"""Data traps of issue 11: silent wrong results turned into alignment, errors or warnings.

Every test here failed on the code before the fix (labels swapped, targets
matched by position, invented target values, silent misreadings).
"""

import contextlib
import warnings

import numpy as np
import pandas as pd
import pytest

import keras_tbptt as kt
from conftest import unit_weights


def _long_panel(order=("c", "a", "b"), length=6):
    """A long-format frame whose ids appear in `order` (not sorted)."""
    rows = []
    for k, key in enumerate(order):
        for t in range(length):
            rows.append({"id": key, "t": t, "v": 100.0 * k + t, "y": 1000.0 * k + t})
    return pd.DataFrame(rows)


@contextlib.contextmanager
def _no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ---------------------------------------------------------------- item 4
def test_per_sequence_labels_indexed_by_id_align_by_id():
    frame = _long_panel()
    labels = frame.groupby("id")["v"].first().map({0.0: 0, 100.0: 1, 200.0: 2})
    assert labels.index.tolist() == ["a", "b", "c"]  # sorted, unlike the series
    plan = kt.naive_split(frame.drop(columns="y"), 3, labels, id_col="id", time_col="t")
    x, y, w = plan.x, plan.y, plan.sample_weight
    # Each weighted sample carries the label of its own series.
    first_value = {0.0: 0, 100.0: 1, 200.0: 2}
    for sample in np.flatnonzero(w):
        assert y[sample] == first_value[x[sample, 0, 0] - x[sample, 0, 0] % 100]
    per_series = plan.unsplit(y.astype(float))
    assert per_series.index.tolist() == ["c", "a", "b"]
    assert per_series.loc[labels.index].tolist() == labels.tolist()


@pytest.mark.parametrize(
    "labels, match",
    [
        (pd.Series([0, 1], index=["a", "b"]), r"(?s)missing.*'c'"),
        (pd.Series([0, 1, 2, 3], index=["a", "b", "c", "d"]), r"not series ids: \['d'\]"),
        (pd.Series([0, 1, 2], index=["a", "b", "b"]), r"(?s)duplicate.*'b'"),
        (pd.Series([0, 1, 2], index=["a", "b", "z"]), r"(?s)missing.*'c'.*not.*'z'"),
    ],
    ids=["missing", "extra", "duplicate", "mismatch"],
)
def test_per_sequence_labels_that_cannot_be_aligned_are_refused(labels, match):
    frame = _long_panel().drop(columns="y")
    with pytest.raises(ValueError, match=match):
        kt.naive_split(frame, 3, labels, id_col="id", time_col="t")


def test_per_step_pandas_targets_of_a_long_frame_follow_its_rows():
    # Rows interleaved and out of time order: the target column of the same
    # frame, passed as a Series, must follow every row to its place.
    frame = _long_panel().sample(frac=1.0, random_state=0)
    plan = kt.naive_split(frame.drop(columns="y"), 3, frame["y"], id_col="id", time_col="t")
    reference = kt.naive_split(frame, 3, "y", id_col="id", time_col="t")
    np.testing.assert_array_equal(plan.y, reference.y)
    np.testing.assert_array_equal(plan.x, reference.x)


# ---------------------------------------------------------------- item 5
def test_pandas_targets_align_by_index_not_position():
    index = pd.date_range("2021-01-01", periods=8, freq="D")
    series = pd.Series(np.arange(8.0), index=index)
    targets = pd.Series(np.arange(8.0) * 10, index=index)[::-1]  # same labels, reversed
    plan = kt.naive_split(series, 4, targets)
    np.testing.assert_array_equal(plan.y[:, :, 0].ravel(), np.arange(8.0) * 10)


def test_pandas_targets_on_another_index_are_refused():
    series = pd.Series(np.arange(8.0), index=pd.date_range("2021-01-01", periods=8))
    targets = pd.Series(np.arange(8.0), index=pd.date_range("2021-01-02", periods=8))
    with pytest.raises(ValueError, match=r"(?s)`targets`.*by label.*missing.*2021-01-01.*not the rows.*2021-01-09"):
        kt.naive_split(series, 4, targets)


# ---------------------------------------------------------------- item 6
def test_2d_array_with_more_features_than_steps_warns():
    panel = np.zeros((3, 500))  # 3 series of 500 steps, the tutorial layout
    with pytest.warns(UserWarning, match=r"(?s)one series of 3 steps with 500 features.*series\[\.\.\., None\]"):
        kt.as_is(panel)


def test_plausible_2d_and_silenced_readings_do_not_warn():
    with _no_warnings():
        kt.naive_split(np.zeros((500, 3)), 10)  # 500 steps, 3 features
        kt.naive_split(np.zeros((1, 3, 500)), 1)  # explicitly one series
        kt.naive_split(np.zeros((3, 500))[..., None], 10)


def test_transposed_3d_panel_warns_and_sliding_windows_do_not():
    rng = np.random.default_rng(0)
    walks = rng.normal(size=(4000, 5)).cumsum(axis=0)  # 5 random walks of 4000 steps
    with pytest.warns(UserWarning, match=r"(?s)\[length, n_series, features\].*swapaxes"):
        kt.as_is(walks[:, :, None])  # [length, n_series, 1] read as 4000 series of 5 steps
    long = rng.normal(size=5000).cumsum()
    windows = np.lib.stride_tricks.sliding_window_view(long, 20)[:, :, None]
    noise = rng.normal(size=(4000, 5, 1))
    with _no_warnings():
        kt.as_is(windows)  # 4981 overlapping windows of 20 steps: legitimate
        kt.as_is(noise)  # independent short series
        kt.naive_split(np.swapaxes(walks[:, :, None], 0, 1), 10)  # the right reading


def test_wide_dataframe_columns_are_series():
    index = pd.date_range("2022-01-01", periods=12, freq="h")
    wide = pd.DataFrame({"s1": np.arange(12.0), "s2": np.arange(12.0) + 100}, index=index)
    plan = kt.naive_split(wide, 4, wide * 2, wide=True)
    assert (plan.n_series, plan.n_features) == (2, 1)
    np.testing.assert_array_equal(plan.batch(0)[0][:, :, 0], [[0, 1, 2, 3], [100, 101, 102, 103]])
    back = plan.unsplit(plan.y)
    assert isinstance(back, pd.DataFrame) and back.columns.tolist() == ["s1", "s2"]
    assert back.index.equals(index)
    pd.testing.assert_frame_equal(back, wide * 2, check_freq=False, check_dtype=False)
    # per-sequence targets of a wide frame align by column name
    labels = pd.Series({"s2": 1.0, "s1": 0.0})
    plan = kt.as_is(wide, labels, wide=True)
    assert plan.y.tolist() == [0.0, 1.0]


def test_wide_dataframe_without_wide_warns():
    wide = pd.DataFrame(np.zeros((20, 40)))
    with pytest.warns(UserWarning, match="wide=True"):
        kt.naive_split(wide, 10)


@pytest.mark.parametrize(
    "scheme",
    [
        lambda s, **k: kt.as_is(s, **k),
        lambda s, **k: kt.naive_split(s, 4, **k),
        lambda s, **k: kt.one_step(s, **k),
        lambda s, **k: kt.decoupled_split(s, 4, 8, **k),
        lambda s, **k: kt.truncate(s, 4, **k),
        lambda s, **k: kt.random_windows(s, 4, n=3, seed=0, **k),
    ],
    ids=["as_is", "naive_split", "one_step", "decoupled_split", "truncate", "random_windows"],
)
def test_every_scheme_accepts_wide(scheme):
    wide = pd.DataFrame({"a": np.arange(12.0), "b": np.arange(12.0)})
    assert scheme(wide, wide=True).n_series == 2


# ---------------------------------------------------------------- item 7
def test_mostly_filler_batches_warn_and_point_to_streams():
    with pytest.warns(UserWarning, match=r"(?s)63 of 64 rows.*98%.*streams="):
        kt.naive_split(np.zeros(640), 10, batch_size=64)
    with _no_warnings():
        kt.naive_split(np.zeros(640), 10, batch_size=64, streams=64)
        kt.naive_split(np.zeros((5, 20, 1)), 10, batch_size=2)  # 1 filler of 6 rows


# ---------------------------------------------------------------- item 8
@pytest.mark.parametrize("policy", ["ffill", "interpolate", "drop"])
def test_nan_targets_get_weight_zero_and_are_never_invented(policy):
    values = np.arange(8.0)
    frame = pd.DataFrame({"x": values, "y": pd.Series(values).shift(-1)})
    plan = kt.naive_split(frame, 4, "y", nan=policy)
    y, w = plan.y[:, :, 0].ravel(), unit_weights(plan).ravel()
    np.testing.assert_array_equal(plan.x[:, :, 0].ravel(), values)  # step kept
    np.testing.assert_array_equal(w, [1, 1, 1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(y[:7], values[1:])
    assert y[7] == 0.0
    weight = plan.unsplit(unit_weights(plan))  # back on the frame's rows
    assert weight.name == "y" and weight.tolist() == [1] * 7 + [0]


def test_nan_inputs_are_filled_and_nan_targets_of_the_same_step_stay_unweighted():
    x = np.array([0.0, np.nan, 2.0, 3.0])
    y = np.array([1.0, np.nan, 3.0, np.nan])
    plan = kt.naive_split(x, 2, y, nan="interpolate")
    np.testing.assert_array_equal(plan.x.ravel(), [0, 1, 2, 3])
    np.testing.assert_array_equal(unit_weights(plan).ravel(), [1, 0, 1, 0])
    np.testing.assert_array_equal(plan.y.ravel(), [1, 0, 3, 0])


def test_nan_targets_under_the_default_policy_are_refused():
    with pytest.raises(ValueError, match=r"(?s)`targets` contains NaN.*sample_weight 0"):
        kt.naive_split(np.arange(4.0), 2, np.array([1.0, 2.0, 3.0, np.nan]))


# ---------------------------------------------------------------- item 9
@pytest.mark.parametrize(
    "make",
    [
        lambda f: f.assign(date=pd.Timestamp("2020-01-01") + pd.to_timedelta(f["t"], "D")),
        lambda f: f.rename(columns={"t": "step"}),
        lambda f: f.set_index(pd.Timestamp("2020-01-01") + pd.to_timedelta(f["t"], "D")),
    ],
    ids=["datetime_column", "step_column", "datetime_index"],
)
def test_id_col_without_time_col_warns_when_time_is_there(make):
    frame = make(_long_panel()).drop(columns=["t", "y"], errors="ignore")
    with pytest.warns(UserWarning, match=r"(?s)row order.*time_col"):
        try:
            kt.naive_split(frame, 3, id_col="id")
        except TypeError:  # a datetime column is not numeric: still warned first
            pass


def test_id_col_without_time_like_columns_is_quiet():
    frame = _long_panel().drop(columns=["t", "y"])
    with _no_warnings():
        kt.naive_split(frame, 3, id_col="id")


# ---------------------------------------------------------------- smaller ones
def test_unsplit_keeps_pandas_names():
    index = pd.date_range("2020-01-01", periods=8, freq="D")
    frame = pd.DataFrame({"a": np.arange(8.0), "b": np.arange(8.0) * 2}, index=index)
    one = kt.naive_split(frame, 4, "b").unsplit(np.ones((2, 4, 1)))
    assert isinstance(one, pd.Series) and one.name == "b" and one.index.equals(index)
    named = pd.Series(np.arange(8.0), index=index, name="sales")
    back = kt.naive_split(frame, 4, named).unsplit(np.ones((2, 4, 1)))
    assert isinstance(back, pd.Series) and back.name == "sales"
    two = kt.naive_split(frame[["a"]], 4, frame[["a", "b"]]).unsplit(np.ones((2, 4, 2)))
    assert isinstance(two, pd.DataFrame) and two.columns.tolist() == ["a", "b"]
    inputs = kt.naive_split(frame, 4)
    pd.testing.assert_frame_equal(inputs.unsplit(inputs.x), frame, check_freq=False)


def test_nan_error_names_index_labels_and_columns():
    frame = pd.DataFrame(
        {"a": [1.0, 2.0, np.nan, 4.0], "b": [1.0, 2.0, 3.0, 4.0]},
        index=pd.date_range("2020-03-01", periods=4, freq="D"),
    )
    with pytest.raises(ValueError, match=r"(?s)2020-03-03.*\['a'\]"):
        kt.naive_split(frame, 2)


def test_validation_split_warns_with_the_actual_share():
    plan = kt.naive_split(np.zeros((2, 60, 1)), 10)
    with pytest.warns(UserWarning, match=r"(?s)fraction=0\.05.*17%"):
        train, val = plan.validation_split(0.05)
    assert len(val) == 1
    with _no_warnings():
        kt.naive_split(np.zeros((2, 1000, 1)), 100).validation_split(0.2)
