"""Time order that is never silent (issue 15).

Text times are read as numbers or dates, never sorted as text; a descending
or unsorted time index is put in time order; repeated or missing times are
refused; `unsplit` gives the caller's rows back; `forecast` labels the future
after the latest time. Every test here failed on the code before the fix.
"""

import warnings

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


# ------------------------------------------- issue 28: time zones, time_format
def _panel(times, values=None):
    """A long panel of ids 'b' and 'a' sharing `times`, rows shuffled."""
    values = np.arange(float(len(times))) if values is None else values
    frame = pd.concat([
        pd.DataFrame({"id": "b", "t": times, "v": values}),
        pd.DataFrame({"id": "a", "t": times, "v": values + 100}),
    ], ignore_index=True)
    return frame.sample(frac=1.0, random_state=0)


MIXED_ZONES = {
    "two_zones": ([pd.Timestamp("2020-01-01 12:00", tz="Asia/Tokyo"),
                   pd.Timestamp("2020-01-01 05:00", tz="Europe/Paris")],
                  r"Timestamp\('2020-01-01 12:00:00\+0900', tz='Asia/Tokyo'\).*"
                  r"Timestamp\('2020-01-01 05:00:00\+0100', tz='Europe/Paris'\)"),
    "offsets_in_text": (["2020-01-01 12:00+09:00", "2020-01-01 05:00+01:00"],
                        r"'2020-01-01 12:00\+09:00' at row .* and '2020-01-01 05:00\+01:00'"),
    "with_and_without": ([pd.Timestamp("2020-01-01 12:00", tz="Asia/Tokyo"),
                          pd.Timestamp("2020-01-01 05:00")],
                         r"Timestamp\('2020-01-01 12:00:00\+0900', tz='Asia/Tokyo'\) at row .* "
                         r"and Timestamp\('2020-01-01 05:00:00'\)"),
}


@pytest.mark.parametrize("case", list(MIXED_ZONES))
def test_time_col_in_several_time_zones_is_refused_naming_utc(case):
    first, second = MIXED_ZONES[case][0]
    times = [first, second] * 3  # 6 steps, alternating zones
    frame = _panel(times)
    with pytest.raises(ValueError, match=(
        r"(?s)`time_col`='t' of `series` mixes time zones.*Received: "
        + MIXED_ZONES[case][1]
        + r".*pd\.to_datetime\(frame\[col\], utc=True\)"
        + (r" \(it reads the times without a time zone as UTC\)\.$"
           if case == "with_and_without" else r"\.$")
    )):
        kt.naive_split(frame, 2, id_col="id", time_col="t")
    # As the message says: in UTC the rows are put in time order.
    frame["t"] = pd.to_datetime(frame["t"], utc=True) + pd.to_timedelta(
        frame.groupby("id").cumcount(), unit="D")  # distinct times per id
    plan = kt.naive_split(frame, 2, id_col="id", time_col="t")
    for i, key in enumerate(plan._panel.ids):
        rows = frame[frame["id"] == key].sort_values("t")
        np.testing.assert_array_equal(
            plan.x[plan.positions[:, 0] == i, :, 0].ravel(), rows["v"].to_numpy())


def test_time_format_with_offsets_in_several_zones_names_the_zones():
    frame = _panel(["2020-01-01 12:00+09:00", "2020-01-02 05:00+01:00"])
    with pytest.raises(ValueError, match=r"mixes time zones.*'2020-01-02 05:00\+01:00'"):
        kt.naive_split(frame, 1, id_col="id", time_col="t", time_format="%Y-%m-%d %H:%M%z")


DAY_FIRST = pd.date_range("2020-01-01", periods=96, freq="D")  # "01/01/2020" is ambiguous


def _day_first_panel():
    """Shuffled rows, the first one an ambiguous date ('01/01/2020')."""
    steps = np.arange(96.0)
    frame = _panel(DAY_FIRST.strftime("%d/%m/%Y"), np.sin(2 * np.pi * steps / 12) + steps / 50)
    first = frame["t"] == "01/01/2020"
    return pd.concat([frame[first], frame[~first]])


SCHEMES_WITH_TIME_COL = {
    "naive_split": lambda frame, **kw: kt.naive_split(frame, 12, **kw),
    "as_is": lambda frame, **kw: kt.as_is(frame, **kw),
    "one_step": lambda frame, **kw: kt.one_step(frame, **kw),
    "truncate": lambda frame, **kw: kt.truncate(frame, 24, **kw),
    "decoupled_split": lambda frame, **kw: kt.decoupled_split(frame, 12, 24, **kw),
    "random_windows": lambda frame, **kw: kt.random_windows(frame, 12, 6, seed=0, **kw),
    "domain_split": lambda frame, **kw: kt.domain_split(frame, remainder="pad", **kw),
    "suggest_timesteps": lambda frame, **kw: kt.suggest_timesteps(frame, **kw),
}


@pytest.mark.parametrize("scheme", list(SCHEMES_WITH_TIME_COL))
def test_time_format_reads_day_first_dates_in_every_scheme(scheme):
    """`time_format='%d/%m/%Y'` gives what the column converted by
    `pd.to_datetime(format=)` gives; without it, the column is refused with
    a message naming that `time_format`."""
    run = SCHEMES_WITH_TIME_COL[scheme]
    frame = _day_first_panel()
    with pytest.raises(ValueError, match=(
        r"(?s)`time_col`='t' of `series` holds text.*Received: '(1[3-9]|2\d|3[01])/0\d/2020'.*"
        r"Every value reads with time_format='%d/%m/%Y': pass it")):
        run(frame, id_col="id", time_col="t")
    got = run(frame, id_col="id", time_col="t", time_format="%d/%m/%Y")
    converted = frame.assign(t=pd.to_datetime(frame["t"], format="%d/%m/%Y"))
    want = run(converted, id_col="id", time_col="t")
    if scheme == "suggest_timesteps":
        assert str(got) == str(want) and got.timesteps >= 1
    else:
        assert len(got.x)  # not two empty plans
        np.testing.assert_array_equal(got.x, want.x)
        np.testing.assert_array_equal(got.positions, want.positions)


@pytest.mark.parametrize(
    "times, time_format, expected",
    [
        (["01/02/2020", "13/01/2020", "02/01/2020"], "%d/%m/%Y", [2, 1, 0]),
        ([20200201, 20200113, 20200102], "%Y%m%d", [2, 1, 0]),
        (["2020-02-01", "2020-01-13T06:00", "2020-01-02"], "ISO8601", [2, 1, 0]),
    ],
    ids=["day_first", "integers", "iso8601"],
)
def test_time_format_orders_the_steps(times, time_format, expected):
    frame = pd.DataFrame({"t": times, "v": np.arange(3.0)})
    plan = kt.naive_split(frame, 1, time_col="t", time_format=time_format)
    np.testing.assert_array_equal(plan.x[:, 0, 0], expected)


def test_a_column_read_day_first_by_inference_warns_naming_time_format():
    frame = pd.DataFrame({"t": ["13/01/2020", "02/01/2020", "01/02/2020"], "v": [1.0, 0.0, 2.0]})
    with pytest.warns(UserWarning, match=r"`time_col`='t' of `series` is read day first, as "
                                         r"'%d/%m/%Y'.*Pass time_format='%d/%m/%Y'"):
        plan = kt.naive_split(frame, 1, time_col="t")
    np.testing.assert_array_equal(plan.x[:, 0, 0], [0.0, 1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as the warning says: silent with the format
        kt.naive_split(frame, 1, time_col="t", time_format="%d/%m/%Y")


BAD_TIME_FORMATS = {
    "not_a_string": (dict(time_format=True), TypeError,
                     r"`time_format` must be None or a string\. Received: time_format=True "
                     r"of type bool"),
    "empty": (dict(time_format=""), ValueError,
              r"`time_format` must be None or a non-empty string\. Received: time_format=''"),
    "mixed": (dict(time_format="mixed"), ValueError,
              r"(?s)`time_format` must be the one format of the whole column: 'mixed'.*"
              r"Received: time_format='mixed'"),
    "no_codes": (dict(time_format="dayfirst"), ValueError,
                 r"`time_format` must be a date format such as '%d/%m/%Y'.*"
                 r"Received: time_format='dayfirst'"),
    "without_time_col": (dict(time_format="%d/%m/%Y", time_col=None), ValueError,
                         r"`time_format` reads the text of `time_col`, so it needs "
                         r"`time_col=`.*Received: time_format='%d/%m/%Y', time_col=None"),
    "not_matching": (dict(time_format="%m/%d/%Y"), ValueError,
                     r"`time_col`='t' of `series` does not match `time_format`='%m/%d/%Y'\. "
                     r"Received: '13/01/2020' at row 1\. Give the format of every value"),
    "already_dates": (dict(time_format="%d/%m/%Y", frame=lambda f: f.assign(
                          t=pd.to_datetime(f["t"], format="%d/%m/%Y"))), ValueError,
                      r"`time_format` reads a `time_col` of text.*holds datetime64.*"
                      r"Received: time_format='%d/%m/%Y'\. Leave out `time_format`"),
}


@pytest.mark.parametrize("case", list(BAD_TIME_FORMATS))
def test_bad_time_format_is_refused_naming_it(case):
    kwargs, error, match = BAD_TIME_FORMATS[case]
    kwargs = {"time_col": "t", **kwargs}
    frame = pd.DataFrame({"t": ["01/02/2020", "13/01/2020", "02/01/2020"], "v": np.arange(3.0)})
    frame = kwargs.pop("frame", lambda f: f)(frame)
    with pytest.raises(error, match=match):
        kt.naive_split(frame, 1, **kwargs)
