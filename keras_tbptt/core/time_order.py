"""Time order of pandas rows: time columns read as times, rows sorted by them."""

import re
import warnings

import numpy as np
import pandas as pd

from keras_tbptt.core.labels import label_text

# Column names that usually hold the time of a row (tokens of the name).
TIME_LIKE_NAMES = {"time", "date", "datetime", "timestamp", "step", "t", "ts"}

# Index types whose labels are times: a Series or DataFrame (without
# `id_col`) indexed by one of them is put in time order.
TIME_INDEXES = (pd.DatetimeIndex, pd.PeriodIndex, pd.TimedeltaIndex)


def time_values(column, time_col, name):
    """The values of `time_col` as a pandas Index that sorts in time order.

    Numbers, datetimes, timedeltas and periods are used as they are. Text is
    never sorted as text ("10" before "2", "1/10/2020" before "1/2/2020"):
    it is read as numbers when every value is a number, else as dates by
    `pandas.to_datetime` with one format for the whole column (inferred
    from the first value, month first unless only day first fits). Text
    that is neither, or dates in mixed formats, raise a ValueError.

    Example:

    >>> import pandas as pd
    >>> time_values(pd.Series(["10", "2", "1"]), "t", "series").tolist()
    [10, 2, 1]
    >>> time_values(pd.Series(["1/10/2020", "1/2/2020"]), "t", "series").day.tolist()
    [10, 2]
    """
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
    for w in caught:
        if "Could not infer format" not in str(w.message):
            warnings.warn(w.message, w.category, stacklevel=5)
    if parsed is not None and not guessed:
        return pd.Index(parsed)
    # The bad value shown: the first that the reading fitting most values
    # (numbers or dates) cannot read.
    present = column.notna()
    bad = column[pd.to_numeric(column, errors="coerce").isna() & present]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            not_dates = column[pd.to_datetime(column, errors="coerce").isna() & present]
        except (TypeError, ValueError, OverflowError):
            not_dates = column
    if 0 < len(not_dates) < len(bad) or (guessed and not len(not_dates)):
        bad = not_dates
    example = bad.iloc[0] if len(bad) else column.iloc[-1]
    label = bad.index[0] if len(bad) else column.index[-1]
    raise ValueError(
        f"`time_col`={time_col!r} of `{name}` holds text that is neither all "
        "numbers nor dates in one format, so it cannot be put in time order "
        f"(text is never sorted as text: '10' before '2'). Received: "
        f"{example!r} at row {label!r}"
        + ("" if len(bad) else f", first value {column.iloc[0]!r}")
        + ". Convert the column yourself, e.g. frame[col] = "
        "pd.to_datetime(frame[col], format='%d/%m/%Y') or pd.to_numeric(frame[col])."
    )


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
