"""Time order of pandas rows: time columns read as times, rows sorted by them."""

import datetime
import re
import warnings

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from keras_tbptt.core.labels import label_text
from keras_tbptt.core.validation import check_string

# Column names that usually hold the time of a row (tokens of the name).
TIME_LIKE_NAMES = {"time", "date", "datetime", "timestamp", "step", "t", "ts"}

# Index types whose labels are times: a Series or DataFrame (without
# `id_col`) indexed by one of them is put in time order.
TIME_INDEXES = (pd.DatetimeIndex, pd.PeriodIndex, pd.TimedeltaIndex)


def time_values(column, time_col, name, time_format=None):
    """The values of `time_col` as a pandas Index that sorts in time order.

    Numbers, datetimes, timedeltas and periods are used as they are. Text is
    never sorted as text ("10" before "2", "1/10/2020" before "1/2/2020"):
    it is read as numbers when every value is a number, else as dates by
    `pandas.to_datetime` with one format for the whole column (inferred
    from the first value, month first unless only day first fits). Text
    that is neither, dates in mixed formats or in mixed time zones raise a
    ValueError. With `time_format`, the column is read with that format
    (`pandas.to_datetime(format=)`), every value matching it.

    Example:

    >>> import pandas as pd
    >>> time_values(pd.Series(["10", "2", "1"]), "t", "series").tolist()
    [10, 2, 1]
    >>> time_values(pd.Series(["1/10/2020", "1/2/2020"]), "t", "series").day.tolist()
    [10, 2]
    >>> time_values(pd.Series(["01/02/2020", "13/01/2020"]), "t", "series",
    ...              time_format="%d/%m/%Y").month.tolist()
    [2, 1]
    """
    if time_format is not None:
        return _formatted_times(column, time_col, name, time_format)
    if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
        return pd.Index(column)
    try:
        return pd.Index(pd.to_numeric(column))
    except (TypeError, ValueError):
        pass
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parsed = pd.to_datetime(column)
        except (TypeError, ValueError, OverflowError):
            parsed = None
    # Without one format pandas parses each value on its own (dateutil),
    # which can read "01/02" as January in one row and February in another.
    guessed = any("Could not infer format" in str(w.message) for w in caught)
    # pandas 2 reads mixed time zones as an object column of datetimes.
    if parsed is not None and not guessed and pd.api.types.is_datetime64_any_dtype(parsed):
        for w in caught:
            _warn_again(w, time_col, name)
        return pd.Index(parsed)
    zones = mixed_time_zones(column)
    if zones is not None:
        raise ValueError(_mixed_zones_message(zones, time_col, name))
    label, example, found = unreadable(column, guessed)
    fits = format_reading_all(column, example)
    hint = (
        f"Every value reads with time_format={fits!r}: pass it"
        if fits is not None else
        "Pass `time_format=` with the column's one format (e.g. "
        "time_format='%d/%m/%Y' for day-first dates such as '13/01/2020')"
    )
    raise ValueError(
        f"`time_col`={time_col!r} of `{name}` holds text that is neither all "
        "numbers nor dates in one format, so it cannot be put in time order "
        f"(text is never sorted as text: '10' before '2'). Received: "
        f"{example!r} at row {label!r}"
        + ("" if found else f", first value {column.iloc[0]!r}")
        + f". {hint}, or convert the column yourself, e.g. frame[col] = "
        "pd.to_datetime(frame[col], format='%d/%m/%Y') or pd.to_numeric(frame[col])."
    )


def _warn_again(caught, time_col, name):
    """Warn `caught` (a pandas warning) again, in the terms of `time_format`."""
    message = str(caught.message)
    day_first = re.match(r"Parsing dates in (.+?) format when dayfirst=False", message)
    if day_first is None:
        warnings.warn(caught.message, caught.category, stacklevel=6)
        return
    warnings.warn(
        f"`time_col`={time_col!r} of `{name}` is read day first, as "
        f"{day_first[1]!r}: the one format its first value fits. Pass "
        f"time_format={day_first[1]!r} to say so and silence this warning.",
        UserWarning,
        stacklevel=6,
    )


def unreadable(column, guessed=False, time_format=None):
    """`(label, value, True)` of the first value of `column` that cannot be
    read, or `(label, value, False)` of the last one when each can on its
    own (mixed formats).

    Without `time_format`, the first that the reading fitting most values
    (numbers or dates) cannot read; with it, the first it does not match.
    """
    present = column.notna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if time_format is not None:
            try:
                parsed = pd.to_datetime(column, format=time_format, errors="coerce")
            except (TypeError, ValueError, OverflowError):
                parsed = pd.Series(pd.NaT, index=column.index)
            bad = column[np.asarray(pd.isna(parsed)) & present]
        else:
            bad = column[pd.to_numeric(column, errors="coerce").isna() & present]
            try:
                not_dates = column[pd.to_datetime(column, errors="coerce").isna() & present]
            except (TypeError, ValueError, OverflowError):
                not_dates = column
            if 0 < len(not_dates) < len(bad) or (guessed and not len(not_dates)):
                bad = not_dates
    if len(bad):
        return bad.index[0], bad.iloc[0], True
    return column.index[-1], column.iloc[-1], False


def format_reading_all(column, value):
    """The date format of `value`, day first if ambiguous, when it reads
    every value of `column`; else None."""
    if not isinstance(value, str):
        return None
    for dayfirst in (True, False):
        fmt = guess_datetime_format(value, dayfirst=dayfirst)
        if fmt is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                parsed = pd.to_datetime(column, format=fmt)
            except (TypeError, ValueError, OverflowError):
                continue
        if pd.api.types.is_datetime64_any_dtype(parsed):
            return fmt
    return None


# A value that is no time at all, for `_zone`.
_NOT_A_TIME = object()


def _zone(value):
    """The time zone of one time (None: no time zone), or `_NOT_A_TIME`."""
    if isinstance(value, str):
        try:
            value = pd.Timestamp(value)
        except (TypeError, ValueError, OverflowError):
            return _NOT_A_TIME
    if not isinstance(value, datetime.datetime) or pd.isna(value):
        return _NOT_A_TIME
    return None if value.tzinfo is None else str(value.tzinfo)


def mixed_time_zones(column, time_format=None):
    """`((label, value), (label, value))`: the first two values of `column`
    in different time zones (with and without one included), when every
    value reads as a date once converted to UTC; else None."""
    if not pd.api.types.is_object_dtype(column) and not pd.api.types.is_string_dtype(column):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pd.to_datetime(column, utc=True, format=time_format)
        except (TypeError, ValueError, OverflowError):
            return None
    first = None
    for label, value in column.items():
        zone = _zone(value)
        if zone is _NOT_A_TIME:
            continue
        if first is None:
            first = label, value, zone
        elif zone != first[2]:
            return (first[0], first[1]), (label, value)
    return None


def _mixed_zones_message(zones, time_col, name):
    (first_label, first), (other_label, other) = zones
    naive = None in (_zone(first), _zone(other))
    return (
        f"`time_col`={time_col!r} of `{name}` mixes time zones, so its times "
        f"cannot be put in one order as they are. Received: {first!r} at row "
        f"{first_label!r} and {other!r} at row {other_label!r}. Convert the "
        "column to one time zone first, e.g. frame[col] = "
        "pd.to_datetime(frame[col], utc=True)"
        + (" (it reads the times without a time zone as UTC)." if naive else ".")
    )


def _formatted_times(column, time_col, name, time_format):
    """`column` read with `time_format`, every value matching it."""
    if not (
        pd.api.types.is_object_dtype(column)
        or pd.api.types.is_string_dtype(column)
        or pd.api.types.is_integer_dtype(column)
    ):
        raise ValueError(
            f"`time_format` reads a `time_col` of text (or integers such as "
            f"20200131), but `time_col`={time_col!r} of `{name}` holds "
            f"{column.dtype} values. Received: time_format={time_format!r}. "
            "Leave out `time_format`: the column is used as it is."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(column, format=time_format)
        except (TypeError, ValueError, OverflowError):
            parsed = None
    if parsed is not None and pd.api.types.is_datetime64_any_dtype(parsed):
        return pd.Index(parsed)
    zones = mixed_time_zones(column, time_format)
    if zones is not None:
        raise ValueError(_mixed_zones_message(zones, time_col, name))
    label, example, _ = unreadable(column, time_format=time_format)
    raise ValueError(
        f"`time_col`={time_col!r} of `{name}` does not match "
        f"`time_format`={time_format!r}. Received: {example!r} at row {label!r}"
        ". Give the format of every value (e.g. time_format='%d/%m/%Y' "
        "reads '13/01/2020'; codes as for pandas.to_datetime(format=)), or "
        "convert the column yourself with pd.to_datetime."
    )


def check_time_format(time_format, time_col):
    """`time_format` validated against `time_col`: None or a format string."""
    time_format = check_string(time_format, "time_format", allow_none=True)
    if time_format is None:
        return None
    if time_format == "mixed":
        raise ValueError(
            "`time_format` must be the one format of the whole column: "
            "'mixed' reads each value in a format of its own, so '01/02/2020' "
            "could be 1 February in one row and 2 January in another. Give the "
            "column's format, e.g. time_format='%d/%m/%Y'. "
            f"Received: time_format={time_format!r}"
        )
    if "%" not in time_format and time_format != "ISO8601":
        raise ValueError(
            "`time_format` must be a date format such as '%d/%m/%Y' or "
            "'%Y-%m-%d %H:%M' (codes as for pandas.to_datetime(format=)), or "
            f"'ISO8601'. Received: time_format={time_format!r}"
        )
    if time_col is None:
        raise ValueError(
            "`time_format` reads the text of `time_col`, so it needs "
            "`time_col=` (the column of a DataFrame holding the times; a "
            "time index is used as it is). Received: "
            f"time_format={time_format!r}, time_col=None"
        )
    return time_format


def time_order(times, name, what, where="", labels=None):
    """Positions that put `times` (a pandas Index) in time order, stably.

    `None` when the times are already increasing. Missing and repeated
    times are refused: a series needs one row per time step. A missing
    time is reported by its row label in `labels`, else its position.

    Example:

    >>> import pandas as pd
    >>> time_order(pd.Index([3, 1, 2]), "series", "its index").tolist()
    [1, 2, 0]
    >>> time_order(pd.Index([1, 2, 3]), "series", "its index") is None
    True
    """
    missing = np.asarray(times.isna())
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        at = f"position {first}" if labels is None else f"row {labels[first]!r}"
        raise ValueError(
            f"`{name}` has missing times (NaT or NaN) in {what}{where}, at "
            f"{at}: every step needs a time. Drop or fill those rows first."
        )
    if times.has_duplicates:
        first = times[times.duplicated()][0]
        raise ValueError(
            f"`{name}` has repeated times in {what}{where}: "
            f"{label_text(first)} appears more than once; each series needs "
            "one row per time step. Aggregate or drop the repeated rows first "
            "(e.g. frame.groupby(level=0).mean() for the index)."
        )
    if times.is_monotonic_increasing:
        return None
    return np.asarray(times.argsort(kind="stable"))


def is_time_like(name, values):
    if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(values):
        return True
    tokens = re.split(r"[^0-9a-z]+", str(name).lower())
    return any(token in TIME_LIKE_NAMES for token in tokens)
