"""Time order that is never silent (issue 15).

Text times are read as numbers or dates, never sorted as text; a descending
or unsorted time index is put in time order; repeated or missing times are
refused; `unsplit` gives the caller's rows back; `forecast` labels the future
after the latest time. Every test here failed on the code before the fix.
"""

import numpy as np
import pandas as pd
import pytest

import keras_tbptt as kt

ORDER = [0, 9, 10, 11, 1, 5, 2, 8, 3, 7, 4, 6]  # shuffled steps 0..11


def _text_times(kind):
    """12 steps as text, in the shuffled ORDER, and their numbers."""
    if kind == "numbers":
        text = [str(step) for step in ORDER]  # "10" sorts before "2" as text
    elif kind == "dates":
        text = [f"1/{step + 1}/2020" for step in ORDER]  # "1/10/2020" before "1/2/2020"
    else:  # dates with a time of day, month first
        text = [f"2/{step + 1}/2021 10:30" for step in ORDER]
    return text, np.array(ORDER, dtype=float)


@pytest.mark.parametrize("kind", ["numbers", "dates", "dates_with_time"])
@pytest.mark.parametrize("ids", [False, True], ids=["one_series", "id_col"])
def test_text_time_col_is_read_as_numbers_or_dates_not_text(kind, ids):
    text, steps = _text_times(kind)
    frame = pd.DataFrame({"t": text, "v": steps})
    if ids:
        frame = pd.concat([frame.assign(id="b"), frame.assign(id="a", v=steps + 100)])
    plan = kt.naive_split(frame, 4, id_col="id" if ids else None, time_col="t")
    series = [np.arange(12.0), np.arange(12.0) + 100] if ids else [np.arange(12.0)]
    for i, expected in enumerate(series):
        got = plan.x[plan.positions[:, 0] == i, :, 0].ravel()
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "times, bad",
    [
        (["2020-01-01", "01/02/2020", "2020-01-03", "2020-01-04"], "'01/02/2020'"),
        (["1/2/2020", "2020-01-03", "1/4/2020", "1/5/2020"], "'2020-01-03'"),
        (["3", "two", "1", "4"], "'two'"),
        (["mon", "tue", "wed", "thu"], "'mon'"),
    ],
    ids=["mixed_date_formats", "iso_after_us", "number_and_word", "words"],
)
def test_text_time_col_that_is_neither_is_refused(times, bad):
    frame = pd.DataFrame({"t": times, "v": np.arange(4.0)})
    with pytest.raises(
        ValueError, match=rf"(?s)`time_col`='t'.*never sorted as text.*{bad}.*pd\.to_datetime"
    ):
        kt.naive_split(frame, 2, time_col="t")


def _values(n=12):
    return np.arange(n, dtype=float)


INDEXES = {
    "descending_dates": lambda: pd.date_range("2021-03-01", periods=12, freq="D")[::-1],
    "unsorted_dates": lambda: pd.date_range("2021-03-01", periods=12, freq="h")[ORDER],
    "descending_periods": lambda: pd.period_range("2019-01", periods=12, freq="M")[::-1],
    "unsorted_timedeltas": lambda: pd.to_timedelta(ORDER, unit="s"),
}


def _in_time_order(index):
    """The steps of `_values()` placed on `index`: value = rank of its time."""
    return np.argsort(np.asarray(index.argsort(), dtype=int)).astype(float)


@pytest.mark.parametrize("make", list(INDEXES))
@pytest.mark.parametrize("layout", ["series", "frame", "wide"])
def test_time_index_is_sorted_and_unsplit_gives_the_callers_rows_back(make, layout):
    index = INDEXES[make]()
    rank = _in_time_order(index)  # rank[i]: how many rows come before row i in time
    if layout == "series":
        data = pd.Series(rank, index=index, name="v")
    elif layout == "frame":
        data = pd.DataFrame({"v": rank, "w": rank * 2}, index=index)
    else:
        data = pd.DataFrame({"a": rank, "b": rank + 100}, index=index)
    plan = kt.naive_split(data, 4, wide=layout == "wide")
    first = plan.x[plan.positions[:, 0] == 0, :, 0].ravel()
    np.testing.assert_array_equal(first, _values())  # time order, not row order
    back = plan.unsplit(plan.x)
    assert back.index.equals(data.index)  # the caller's order and labels
    if layout == "series":
        pd.testing.assert_series_equal(back, data, check_dtype=False, check_freq=False)
    else:
        pd.testing.assert_frame_equal(back, data, check_dtype=False, check_freq=False)


@pytest.mark.parametrize(
    "targets",
    [
        lambda s: s * 10,  # pandas, same labels: aligned by label
        lambda s: (s * 10).sample(frac=1.0, random_state=0),  # pandas, another order
        lambda s: s.to_numpy() * 10,  # numpy: matched to the caller's rows
    ],
    ids=["pandas", "pandas_shuffled", "numpy"],
)
def test_targets_follow_the_rows_when_they_are_sorted(targets):
    index = pd.date_range("2021-03-01", periods=12, freq="D")[ORDER]
    series = pd.Series(_in_time_order(index), index=index)
    plan = kt.naive_split(series, 4, targets(series))
    np.testing.assert_array_equal(plan.x[:, :, 0].ravel(), _values())
    np.testing.assert_array_equal(plan.y[:, :, 0].ravel(), _values() * 10)
    back = plan.unsplit(plan.y)
    np.testing.assert_array_equal(back.to_numpy().ravel(), series.to_numpy() * 10)
    assert back.index.equals(index)


def test_numpy_targets_follow_a_text_time_col():
    text, steps = _text_times("numbers")
    frame = pd.DataFrame({"t": text, "v": steps})
    plan = kt.naive_split(frame, 4, steps * 10, time_col="t")  # matched to the rows
    np.testing.assert_array_equal(plan.y[:, :, 0].ravel(), _values() * 10)


def test_long_frame_unsplit_gives_the_callers_row_order():
    rows = [{"id": key, "t": t, "v": 100.0 * k + t} for k, key in enumerate("ba") for t in range(6)]
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=1)
    plan = kt.naive_split(frame, 3, id_col="id", time_col="t")
    back = plan.unsplit(plan.x)
    assert back.index.equals(frame.index)
    np.testing.assert_array_equal(back["v"].to_numpy(), frame["v"].to_numpy())


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: pd.Series(_values(4), index=pd.DatetimeIndex(
            ["2020-01-03", "2020-01-02", "2020-01-04", "2020-01-02"])),
         r"repeated times in its index \(a DatetimeIndex\): 2020-01-02 appears more than once"),
        (lambda: pd.DataFrame({"v": _values(4)}, index=pd.DatetimeIndex(
            ["2020-01-01", "2020-01-02", "2020-01-02", "2020-01-03"])),  # sorted, yet repeated
         r"repeated times in its index.*2020-01-02"),
        (lambda: pd.Series(_values(4), index=pd.DatetimeIndex(
            ["2020-01-02", None, "2020-01-01", "2020-01-03"])),
         r"missing times \(NaT or NaN\) in its index.*position 1"),
        (lambda: pd.DataFrame({"a": _values(3), "b": _values(3)}, index=pd.PeriodIndex(
            ["2020-02", "2020-01", "2020-02"], freq="M")),
         r"repeated times in its index \(a PeriodIndex\): 2020-02"),
    ],
    ids=["series_duplicate", "sorted_duplicate", "nat", "wide_period_duplicate"],
)
def test_repeated_or_missing_times_in_the_index_are_refused(make, match):
    data = make()
    with pytest.raises(ValueError, match=match):
        kt.naive_split(data, 1, wide=isinstance(data, pd.DataFrame) and data.shape[1] == 2)


def test_missing_times_in_time_col_are_refused():
    frame = pd.DataFrame({"t": [2.0, np.nan, 1.0, 3.0], "v": _values(4)}, index=list("abcd"))
    with pytest.raises(ValueError, match=r"missing times \(NaT or NaN\) in `time_col`='t'.*row 'b'"):
        kt.naive_split(frame, 2, time_col="t")


def test_repeated_text_times_name_the_first_repeat():
    frame = pd.DataFrame({"t": ["1/3/2020", "1/2/2020", "1/3/2020"], "v": _values(3)})
    with pytest.raises(ValueError, match=r"repeated times in `time_col`='t': 2020-01-03"):
        kt.naive_split(frame, 1, time_col="t")


# ---------------------------------------------------------------- forecast
FORECAST_INDEXES = {
    # history index, the next 3 labels
    "descending_dates": (
        lambda: pd.date_range("2021-01-01", periods=13, freq="D")[::-1],
        pd.date_range("2021-01-14", periods=3, freq="D"),
    ),
    "unsorted_dates_no_freq": (
        lambda: pd.DatetimeIndex(pd.date_range("2021-01-01", periods=13, freq="W-SUN")
                                 .to_numpy()[[*ORDER, 12]][::-1]),
        pd.date_range("2021-04-04", periods=3, freq="W-SUN"),
    ),
    "descending_periods": (
        lambda: pd.period_range("2020-01", periods=13, freq="M")[::-1],
        pd.period_range("2021-02", periods=3, freq="M"),
    ),
}


@pytest.mark.keras
@pytest.mark.parametrize("case", list(FORECAST_INDEXES))
def test_forecast_runs_forward_from_the_latest_time(case):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input(batch_shape=(2, 4, 1)),
        kt.TBPTTLSTM(4, stateful=True, return_sequences=True),
        keras.layers.Dense(1),
    ])
    make_index, expected_index = FORECAST_INDEXES[case]
    index = make_index()
    values = np.sin(np.arange(13.0) / 3)  # in time order
    history = pd.Series(values[_in_time_order(index).astype(int)], index=index, name="y")
    got = kt.forecast(model, history, 3)
    assert got.index.equals(expected_index)
    assert got.name == "y"
    # The state warms up in time order: the same as the sorted numpy history.
    np.testing.assert_allclose(got.to_numpy(), kt.forecast(model, values, 3)[:, 0], atol=1e-6)
