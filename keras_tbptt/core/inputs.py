"""Validate user series and targets and normalise them to one panel model.

Every scheme accepts the same inputs; this module turns them into a
`Panel`: a list of `[length, features]` float arrays (views of the user's
data where possible) plus what is needed to map results back to the
original layout. Pure numpy/pandas: no Keras import here.
"""

import mmap
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NAN_POLICIES = ("error", "ffill", "interpolate", "drop")

# The exact NaN/inf checks scan the data in blocks of about this many bytes,
# so that a large (memory-mapped) array is never copied or mirrored whole.
SCAN_BYTES = 1 << 20


class _SeriesViews(Sequence):
    """The series of a stacked `[n, length, ...]` array, as views made on demand.

    Behaves like the list `list(stacked)` without holding it: a view is a
    Python object of 100-500 bytes, which for many short series costs more
    than the data, and batches are read from `stacked` anyway.

    Example:

    >>> import numpy as np
    >>> stacked = np.zeros((100_000, 10, 2), dtype=np.float32)
    >>> series = _SeriesViews(stacked)
    >>> len(series), series[-1].shape, np.shares_memory(series[3], stacked)
    (100000, (10, 2), True)
    """

    __slots__ = ("stacked",)

    def __init__(self, stacked):
        self.stacked = stacked

    def __len__(self):
        return self.stacked.shape[0]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.stacked[i] for i in range(len(self))[index]]
        return self.stacked[index]

    def __iter__(self):
        return iter(self.stacked)

    def __repr__(self):
        return f"_SeriesViews({len(self)} series of shape {self.stacked.shape[1:]})"


@dataclass
class Panel:
    """A validated collection of series, each `[length, features]`."""

    arrays: list
    kind: str
    stacked: np.ndarray = None  # [n, length, features] view when uniform
    index: list = None  # pandas index of each series, for `unsplit`
    ids: list = None  # series ids of a long-format frame
    steps: list = None  # original step numbers when nan="drop" removed some
    original_lengths: np.ndarray = None
    columns: list = None  # feature labels of pandas input, for `unsplit`
    one_column: bool = False  # a pandas Series: `unsplit` returns a Series
    id_name: object = "id"  # name of the ids (the `id_col`) for `unsplit`
    # Row positions in the caller's frame of each series' steps, when sorting
    # by time moved rows (else None): `unsplit` puts them back in place.
    rows: list = None

    @property
    def n_series(self):
        return len(self.arrays)

    @property
    def n_features(self):
        return self.arrays[0].shape[1]

    @property
    def lengths(self):
        if isinstance(self.arrays, _SeriesViews):  # uniform: no loop over series
            return np.full(len(self.arrays), self.arrays.stacked.shape[1], np.int64)
        return np.array([a.shape[0] for a in self.arrays], dtype=np.int64)


@dataclass
class Targets:
    """Validated targets: per step (like the series) or one row per series."""

    arrays: list = None  # per step: [length_i, target_features] each
    per_sequence: np.ndarray = None  # [n_series, target_features]
    stacked: np.ndarray = None  # per step: [n, length, features] view
    squeeze: bool = field(default=False)  # user gave 1-D per-sequence targets
    columns: list = None  # labels of pandas targets, for `unsplit`
    one_column: bool = False  # a pandas Series or one column name
    observed: list = None  # per step: [length_i, 1] float, 0 where NaN

    @property
    def per_step(self):
        return self.arrays is not None

    @property
    def n_features(self):
        if self.per_step:
            return self.arrays[0].shape[1]
        return self.per_sequence.shape[1]

    @property
    def dtype(self):
        if self.per_step:
            return self.arrays[0].dtype
        return self.per_sequence.dtype


def check_int(value, name, minimum=1, allow_none=False):
    """Return `value` as an int >= `minimum`, or raise naming `name`."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"`{name}` must be {'None or ' if allow_none else ''}an integer >= {minimum}. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    if value < minimum:
        raise ValueError(
            f"`{name}` must be {'None or ' if allow_none else ''}an integer >= "
            f"{minimum}. Received: {name}={value}"
        )
    return int(value)


def check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {', '.join(map(repr, choices))}. "
            f"Received: {name}={value!r}"
        )
    return value


def _as_numeric(values, name, where=""):
    values = np.asarray(values)
    if values.dtype == object:
        try:
            values = values.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"`{name}` must hold numbers{where}. Received an array of "
                "dtype=object that cannot be converted to float; convert or "
                "encode non-numeric columns first."
            ) from None
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        raise TypeError(
            f"`{name}` must hold numbers{where}. Received dtype={values.dtype}; "
            "convert or encode non-numeric data first."
        )
    if np.issubdtype(values.dtype, np.complexfloating):
        raise TypeError(
            f"`{name}` must hold real numbers. Received dtype={values.dtype}."
        )
    return values


def _memory_mapped(array):
    """Whether `array` is a view of a memory-mapped file (`np.load(mmap_mode=)`)."""
    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


def _as_float(values, name="series"):
    # Integers and booleans become float32 (a copy); floats stay views.
    if np.issubdtype(values.dtype, np.floating):
        return values
    if _memory_mapped(values):
        warnings.warn(
            f"`{name}` is a memory-mapped array of dtype {values.dtype}: it is "
            f"copied into memory as float32 ({values.size * 4 / 1e6:,.1f} MB) "
            "to make batches. Save it as float32 (e.g. np.save(path, "
            "array.astype(np.float32))) so that batches are read from the "
            "file instead.",
            stacklevel=4,
        )
    return values.astype(np.float32)


def _is_sequence_of_series(obj):
    return isinstance(obj, (list, tuple)) and any(
        isinstance(item, (np.ndarray, pd.Series, pd.DataFrame, list, tuple))
        for item in obj
    )


def _as_2d(array, name, where=""):
    if array.ndim == 1:
        return array[:, None]
    if array.ndim == 2:
        return array
    raise ValueError(
        f"`{name}` must be 1-D or 2-D{where}. "
        f"Received: shape={array.shape}"
    )


# Column names that usually hold the time of a row (tokens of the name).
TIME_LIKE_NAMES = {"time", "date", "datetime", "timestamp", "step", "t", "ts"}

# Index types whose labels are times: a Series or DataFrame (without
# `id_col`) indexed by one of them is put in time order.
TIME_INDEXES = (pd.DatetimeIndex, pd.PeriodIndex, pd.TimedeltaIndex)


def _time_values(column, time_col, name):
    """The values of `time_col` as a pandas Index that sorts in time order.

    Numbers, datetimes, timedeltas and periods are used as they are. Text is
    never sorted as text ("10" before "2", "1/10/2020" before "1/2/2020"):
    it is read as numbers when every value is a number, else as dates by
    `pandas.to_datetime` with one format for the whole column (inferred
    from the first value, month first unless only day first fits). Text
    that is neither, or dates in mixed formats, raise a ValueError.

    Example:

    >>> import pandas as pd
    >>> _time_values(pd.Series(["10", "2", "1"]), "t", "series").tolist()
    [10, 2, 1]
    >>> _time_values(pd.Series(["1/10/2020", "1/2/2020"]), "t", "series").day.tolist()
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


def _time_order(times, name, what, where="", labels=None):
    """Positions that put `times` (a pandas Index) in time order, stably.

    `None` when the times are already increasing. Missing and repeated
    times are refused: a series needs one row per time step. A missing
    time is reported by its row label in `labels`, else its position.

    Example:

    >>> import pandas as pd
    >>> _time_order(pd.Index([3, 1, 2]), "series", "its index").tolist()
    [1, 2, 0]
    >>> _time_order(pd.Index([1, 2, 3]), "series", "its index") is None
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
            f"{_label_text(first)} appears more than once; each series needs "
            "one row per time step. Aggregate or drop the repeated rows first "
            "(e.g. frame.groupby(level=0).mean() for the index)."
        )
    if times.is_monotonic_increasing:
        return None
    return np.asarray(times.argsort(kind="stable"))


# 3-D reading check: at least this many series per step before looking.
TRANSPOSED_MIN_RATIO = 10
# ... and neighbouring steps must differ this many times more than
# neighbouring series (a time axis is smoother than a series axis).
TRANSPOSED_SMOOTHNESS = 4.0
# ... in a sample of the first series of at most this many values (a few
# float64 temporaries of it, whatever the size of the data).
TRANSPOSED_SAMPLE_VALUES = 1 << 15


def _is_time_like(name, values):
    if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(values):
        return True
    tokens = re.split(r"[^0-9a-z]+", str(name).lower())
    return any(token in TIME_LIKE_NAMES for token in tokens)


def _warn_row_order(frame, id_col, target_cols, name):
    """`id_col` without `time_col`: row order is time order; say so if time is there."""
    unused = [
        c for c in frame.columns
        if c != id_col and c not in target_cols and _is_time_like(c, frame[c])
    ]
    if isinstance(frame.index, (pd.DatetimeIndex, pd.PeriodIndex)):
        unused.insert(0, "the index (a DatetimeIndex)")
    if unused:
        warnings.warn(
            f"`{name}` is split by `id_col`={id_col!r} without `time_col`, so "
            "the row order within each id is taken as the time order, while "
            f"{unused[:3]} look like time and are not used to order the rows. "
            "Pass `time_col=` to sort by it (for the index: "
            "frame.reset_index() first), or sort the rows and drop the time "
            "column to silence this warning.",
            stacklevel=5,
        )


def _long_format(frame, id_col, time_col, target_cols, name):
    for arg, col in (("id_col", id_col), ("time_col", time_col)):
        if col is not None and col not in frame.columns:
            raise ValueError(
                f"`{arg}` must name a column of `{name}`. Received: "
                f"{arg}={col!r}; columns are {list(frame.columns)}"
            )
    if id_col is not None and time_col is None:
        _warn_row_order(frame, id_col, target_cols, name)
    times, what = None, None
    if time_col is not None:
        times, what = _time_values(frame[time_col], time_col, name), f"`time_col`={time_col!r}"
    elif id_col is None and isinstance(frame.index, TIME_INDEXES):
        times, what = frame.index, f"its index (a {type(frame.index).__name__})"
    if id_col is None:
        groups = [(None, None)]  # None: all rows, in their order
    else:
        # Row positions of each id, ids in order of first appearance.
        codes = frame.groupby(id_col, sort=False, dropna=False).ngroup().to_numpy()
        by_id = np.argsort(codes, kind="stable")
        parts = np.split(by_id, np.cumsum(np.bincount(codes))[:-1])
        keys = frame[id_col].to_numpy()
        groups = [(keys[p[0]], p) for p in parts if len(p)]
    feature_cols = [
        c for c in frame.columns if c not in (id_col, time_col, *target_cols)
    ]
    text = [
        c for c in feature_cols
        if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
    ]
    if text:
        raise TypeError(
            f"`{name}` columns must be numeric; {text} are not. Encode them "
            "(e.g. pandas.get_dummies) or drop them, or name them as "
            "`id_col`/`time_col`."
        )
    if not feature_cols:
        raise ValueError(
            f"`{name}` has no feature columns left after removing id_col, "
            f"time_col and the target columns. Received columns: "
            f"{list(frame.columns)}"
        )
    if id_col is None and len(feature_cols) > len(frame):
        warnings.warn(
            f"`{name}` is a DataFrame of {len(frame)} rows and "
            f"{len(feature_cols)} columns, read as one series of {len(frame)} "
            f"steps with {len(feature_cols)} features (rows are time steps). "
            "If every column is a series of its own, pass wide=True.",
            stacklevel=4,
        )
    arrays, targets, index, ids, rows = [], [], [], [], []
    for key, positions in groups:
        if times is not None:
            order = _time_order(
                times if positions is None else times[positions], name, what,
                "" if id_col is None else f" for id {key!r}",
                None if time_col is None else (
                    frame.index if positions is None else frame.index[positions]
                ),
            )
            if order is not None:
                positions = order if positions is None else positions[order]
        group = frame if positions is None else frame.iloc[positions]
        rows.append(np.arange(len(frame)) if positions is None else positions)
        where = "" if id_col is None else f" (series id {key!r})"
        arrays.append(
            _as_numeric(group[feature_cols].to_numpy(), name, where)
        )
        if target_cols:
            targets.append(
                _as_numeric(group[target_cols].to_numpy(), "targets", where)
            )
        index.append(group.index)  # row labels, so results join back
        ids.append(key)
    moved = bool(rows) and not np.array_equal(np.concatenate(rows), np.arange(len(frame)))
    return (
        arrays, (targets or None), index, (ids if id_col else None), feature_cols,
        rows if moved else None,
    )


def _wide_format(frame, name):
    """A DataFrame whose columns are univariate series sharing the index."""
    if frame.columns.has_duplicates:
        raise ValueError(
            f"With wide=True the columns of `{name}` name the series and must "
            f"be unique. Received duplicates: "
            f"{frame.columns[frame.columns.duplicated()].unique().tolist()[:5]}"
        )
    text = [
        c for c in frame.columns
        if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
    ]
    if text:
        raise TypeError(
            f"With wide=True every column of `{name}` is a series and must be "
            f"numeric; {text} are not."
        )
    values = _as_numeric(frame.to_numpy(), name)
    index, rows = frame.index, None
    if isinstance(index, TIME_INDEXES):
        rows = _time_order(index, name, f"its index (a {type(index).__name__})")
        if rows is not None:
            values, index = values[rows], index[rows]
    stacked = np.swapaxes(values, 0, 1)[:, :, None]  # [n_series, length, 1] view
    return stacked, [index] * frame.shape[1], list(frame.columns), rows


def _warn_implausible_array(values, name):
    """Warn when Keras' reading of a plain array is unlikely to be meant.

    2-D: `[length, features]` with more features than steps is most likely
    `[n_series, length]`. 3-D: `[n_series, length, features]` with at least
    `TRANSPOSED_MIN_RATIO` times more series than steps, where neighbouring
    steps differ `TRANSPOSED_SMOOTHNESS` times more (mean absolute
    difference) than neighbouring series, is most likely `[length,
    n_series, features]`: time is the smooth axis. Overlapping windows of
    one series (equal differences) and independent series (a rough series
    axis) do not warn.
    """
    if values.ndim == 2 and values.shape[1] > values.shape[0]:
        length, features = values.shape
        warnings.warn(
            f"`{name}` has shape {values.shape}, read as one series of "
            f"{length} steps with {features} features (Keras' [length, "
            "features]). If it holds "
            f"{length} series of {features} steps, pass series[..., None] "
            f"([n_series, length, 1]); if it really is one series, pass "
            "series[None] to silence this warning.",
            stacklevel=4,
        )
    if values.ndim != 3:
        return
    n, length = values.shape[:2]
    if length < 2 or n < TRANSPOSED_MIN_RATIO * length:
        return
    rows = max(2, min(n, TRANSPOSED_SAMPLE_VALUES // max(1, length * values.shape[2])))
    sample = np.asarray(values[:rows], dtype=np.float64)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN samples
        across = np.nanmean(np.abs(np.diff(sample, axis=0)))
        along = np.nanmean(np.abs(np.diff(sample, axis=1)))
    if np.isfinite(along) and along > TRANSPOSED_SMOOTHNESS * across:
        warnings.warn(
            f"`{name}` has shape {values.shape}, read as {n} series of {length} "
            "steps ([n_series, length, features]), but neighbouring series "
            f"differ {along / max(across, 1e-300):.0f}x less than neighbouring "
            "steps: it looks like [length, n_series, features]. If so, pass "
            "np.swapaxes(series, 0, 1).",
            stacklevel=4,
        )


def as_panel(
    series,
    targets=None,
    *,
    id_col=None,
    time_col=None,
    nan="error",
    name="series",
    wide=False,
):
    """Validate `series` (and `targets`) and return `(Panel, Targets|None)`.

    See `keras_tbptt.naive_split` for the accepted layouts.
    """
    check_choice(nan, "nan", NAN_POLICIES)
    if not isinstance(wide, bool):
        raise TypeError(f"`wide` must be True or False. Received: wide={wide!r}")
    if (id_col is not None or time_col is not None) and not isinstance(
        series, pd.DataFrame
    ):
        raise TypeError(
            "`id_col` and `time_col` need a pandas DataFrame as `series`. "
            f"Received: series of type {type(series).__name__}"
        )
    if wide and (not isinstance(series, pd.DataFrame) or id_col or time_col):
        raise TypeError(
            "`wide=True` needs a pandas DataFrame whose columns are series "
            "(and no `id_col`/`time_col`). Received: series of type "
            f"{type(series).__name__}"
            + (f", id_col={id_col!r}, time_col={time_col!r}" if id_col or time_col else "")
        )
    _check_target_names(series, targets, wide, name)
    index = ids = columns = rows = None
    stacked = None
    one_column, id_name = False, "id"
    target_names = None
    if wide:
        stacked, index, ids, order = _wide_format(series, name)
        arrays, kind = _SeriesViews(stacked), "wide"
        rows = None if order is None else [order] * len(ids)
        id_name = series.columns.name
    elif isinstance(series, pd.DataFrame):
        target_cols = []
        if isinstance(targets, str) or (
            isinstance(targets, (list, tuple))
            and targets
            and all(isinstance(t, str) for t in targets)
        ):
            target_cols = [targets] if isinstance(targets, str) else list(targets)
            missing = [c for c in target_cols if c not in series.columns]
            if missing:
                raise ValueError(
                    f"`targets` names columns that `{name}` lacks: {missing}. "
                    f"Columns are {list(series.columns)}"
                )
            target_names = (target_cols, isinstance(targets, str))
        arrays, column_targets, index, ids, columns, rows = _long_format(
            series, id_col, time_col, target_cols, name
        )
        if target_cols:
            targets = column_targets
        kind = "long" if id_col is not None else "frame"
        id_name = id_col if id_col is not None else "id"
    elif isinstance(series, pd.Series):
        values, labels = _as_numeric(series.to_numpy(), name), series.index
        if isinstance(labels, TIME_INDEXES):
            order = _time_order(labels, name, f"its index (a {type(labels).__name__})")
            if order is not None:
                values, labels, rows = values[order], labels[order], [order]
        arrays = [values[:, None]]
        index, kind = [labels], "frame"
        columns, one_column = [series.name], True
    elif _is_sequence_of_series(series):
        arrays = []
        for i, item in enumerate(series):
            values = _as_numeric(item, name, f" (series {i})")
            arrays.append(_as_2d(values, name, f" for each series (series {i})"))
        kind = "list"
    else:
        values = _as_numeric(series, name)
        if values.ndim == 1:
            arrays, kind = [values[:, None]], "1d"
        elif values.ndim == 2:
            arrays, kind = [values], "2d"
        elif values.ndim == 3:
            arrays, kind = _SeriesViews(values), "3d"
            stacked = values
        else:
            raise ValueError(
                f"`{name}` must be 1-D [length], 2-D [length, features] or 3-D "
                f"[n_series, length, features]. Received: shape={values.shape}"
            )
        _warn_implausible_array(values, name)
    if not arrays:
        raise ValueError(f"`{name}` holds no series. Received: {name}={series!r}")
    if stacked is not None:  # uniform: check one series, not a loop over all
        arrays = [arrays[0]]
    n_features = {a.shape[1] for a in arrays}
    if len(n_features) > 1:
        raise ValueError(
            f"All series in `{name}` must have the same number of features. "
            f"Received feature counts: {sorted(n_features)}"
        )
    for i, a in enumerate(arrays):
        if a.shape[0] == 0:
            raise ValueError(
                f"`{name}` contains an empty series (series {i} has length 0)."
            )
    if n_features == {0}:
        raise ValueError(f"`{name}` has 0 features. Received shape {arrays[0].shape}")
    if stacked is not None:
        stacked = _as_float(stacked, name)
        arrays = _SeriesViews(stacked)
    else:
        arrays = [_as_float(a, name) for a in arrays]
        if len(arrays) == 1:
            stacked = arrays[0][None]
    panel = Panel(
        arrays, kind, stacked, index, ids,
        columns=columns, one_column=one_column, id_name=id_name, rows=rows,
    )
    panel.original_lengths = panel.lengths
    target_obj = None if targets is None else as_targets(targets, panel)
    if target_names is not None:
        target_obj.columns, target_obj.one_column = target_names
    return _handle_nan(panel, target_obj, nan, name)


def _check_target_names(series, targets, wide, name):
    """Column names as `targets` need a long DataFrame to take them from."""
    names = isinstance(targets, str) or (
        isinstance(targets, (list, tuple)) and targets
        and all(isinstance(t, str) for t in targets)
    )
    if names and (wide or not isinstance(series, pd.DataFrame)):
        got = "a DataFrame with wide=True" if wide else f"series of type {type(series).__name__}"
        raise TypeError(
            f"`targets` names a column ({targets!r}), which needs a pandas "
            f"DataFrame as `{name}` (with wide=False) to take it from; with "
            f"numpy, pass the target array itself. Received: targets={targets!r} "
            f"and {got}."
        )


def _labels(labels, limit=5):
    labels = list(labels)
    shown = ", ".join(repr(label) for label in labels[:limit])
    if len(labels) > limit:
        return f"[{shown}, ...] ({len(labels)} in all)"
    return f"[{shown}]"


def _align_by_labels(target_index, expected, what, where):
    """Raise unless `target_index` holds exactly the labels of `expected`."""
    if target_index.has_duplicates:
        raise ValueError(
            f"`targets` has duplicate index labels "
            f"{_labels(target_index[target_index.duplicated()].unique())}; "
            f"pandas targets are aligned to {what} by label, so each label "
            "must appear once."
        )
    if expected.has_duplicates:
        raise ValueError(
            f"pandas `targets` are aligned to {what} by label, but {where} has "
            f"duplicate labels {_labels(expected[expected.duplicated()].unique())}. "
            "Give the series a unique index, name the target column(s) of "
            "`series` instead, or pass targets as a numpy array (matched by "
            "position)."
        )
    missing = expected.difference(target_index, sort=False)
    extra = target_index.difference(expected, sort=False)
    if len(missing) or len(extra):
        lines = []
        if len(missing):
            lines.append(f"- {what[0].upper() + what[1:]} missing from `targets`: {_labels(missing)}")
        if len(extra):
            lines.append(f"- `targets` index labels that are not {what}: {_labels(extra)}")
        raise ValueError(
            f"pandas `targets` are aligned to {what} by label, not by "
            "position, and their labels do not match.\n" + "\n".join(lines)
            + "\nSelect or reindex the targets to match, or pass a numpy "
            "array (e.g. targets.to_numpy()) to match by position, as for "
            "next-step targets cut from the same series (x = s[:-1], "
            "y = s[1:]), whose labels are shifted."
        )


def _pandas_targets(targets, panel):
    """Align pandas `targets` to `panel` by label; return (values, columns, one).

    Per-sequence targets of a long or wide frame align with the series ids;
    per-step targets with the row labels of the series. Without a pandas
    `series` there is nothing to align to: the values are used in order.
    """
    one = isinstance(targets, pd.Series)
    columns = [targets.name] if one else list(targets.columns)
    if panel.index is None:
        return targets.to_numpy(), columns, one
    n, lengths = panel.n_series, panel.lengths
    if panel.kind == "wide":
        if isinstance(targets, pd.DataFrame) and set(targets.columns) == set(panel.ids):
            # per step, one column per series: align rows and columns
            _align_by_labels(targets.columns, pd.Index(panel.ids), "series ids", "`series`")
            _align_by_labels(targets.index, panel.index[0], "the rows of `series`", "`series`")
            values = targets.loc[panel.index[0], panel.ids].to_numpy()
            return np.swapaxes(values, 0, 1)[:, :, None], None, False
        _align_by_labels(targets.index, pd.Index(panel.ids), "series ids", "`series`")
        return targets.loc[panel.ids].to_numpy(), columns, one
    total = int(lengths.sum())
    if panel.ids is not None and len(targets) != total:
        _align_by_labels(targets.index, pd.Index(panel.ids), "series ids", "`series`")
        return targets.loc[panel.ids].to_numpy(), columns, one
    if panel.ids is None and len(targets) == 1 and total > 1:
        return targets.to_numpy(), columns, one  # one label for one series
    expected = panel.index[0].append(panel.index[1:]) if n > 1 else panel.index[0]
    if not targets.index.equals(expected):
        _align_by_labels(targets.index, expected, "the rows of `series`", "`series`")
        targets = targets.loc[expected]
    values = targets.to_numpy()
    if n > 1:
        values = np.split(values, np.cumsum(lengths)[:-1])
    return values, columns, one


def as_targets(targets, panel):
    """Validate targets against `panel`: per-step or per-sequence."""
    n, lengths = panel.n_series, panel.lengths
    columns, one_column = None, False
    by_label = isinstance(targets, (pd.Series, pd.DataFrame))
    if by_label:
        targets, columns, one_column = _pandas_targets(targets, panel)
    result = _numpy_targets(targets, panel, n, lengths)
    moved = panel.rows is not None and panel.kind in ("frame", "wide")
    if not by_label and result.per_step and moved:
        # Matched by position to the caller's rows, which were put in time
        # order: move the targets with them.
        order = panel.rows[0]
        if result.stacked is not None:
            result.stacked = result.stacked[:, order]
            result.arrays = _SeriesViews(result.stacked)
        else:
            result.arrays = [a[order] for a in result.arrays]
    result.columns, result.one_column = columns, one_column
    return result


def _numpy_targets(targets, panel, n, lengths):
    if _is_sequence_of_series(targets) and len(targets) == n and n > 1:
        arrays = [
            _as_2d(_as_numeric(t, "targets", f" (series {i})"), "targets")
            for i, t in enumerate(targets)
        ]
        got = [a.shape[0] for a in arrays]
        if got != lengths.tolist():
            raise ValueError(
                "Per-step `targets` must have one row per time step of each "
                f"series.\n- Expected lengths: {lengths.tolist()}\n"
                f"- Received lengths: {got}"
            )
        return Targets(arrays=arrays)
    values = _as_numeric(targets, "targets")
    uniform = len(set(lengths)) == 1
    length = lengths[0]
    # Per step: a time axis matching the series. Per sequence: one row per series.
    if n == 1 and values.ndim in (1, 2) and values.shape[0] == length:
        values = _as_2d(values, "targets")[None]
        return Targets(arrays=_SeriesViews(values), stacked=values)
    if uniform and values.ndim in (2, 3) and values.shape[:2] == (n, length):
        values = values if values.ndim == 3 else values[:, :, None]
        return Targets(arrays=_SeriesViews(values), stacked=values)
    if values.ndim in (1, 2) and values.shape[0] == n:
        return Targets(
            per_sequence=_as_2d(values, "targets"), squeeze=values.ndim == 1
        )
    raise ValueError(
        "`targets` must be per step (the series' shape with any number of "
        "target features) or per sequence (one row per series).\n"
        f"- Expected: first dimension {n} (series) "
        f"{'followed by ' + str(length) + ' (steps) ' if uniform else ''}"
        f"or, for one series, {lengths[0]} (steps)\n"
        f"- Received: shape={values.shape}"
    )


def _nan_report(mask_per_series, panel=None, arrays=None, columns=None):
    """Count NaN rows and describe the first ones.

    For pandas input the description names the series id, the index labels
    (dates) and the columns holding NaN; otherwise positions.
    """
    bad = [(i, np.flatnonzero(m)) for i, m in enumerate(mask_per_series) if m.any()]
    total = sum(len(steps) for _, steps in bad)
    parts = []
    for i, steps in bad[:3]:
        more = "..." if len(steps) > 5 else ""
        if panel is not None and panel.index is not None:
            who = "" if panel.ids is None else f"series {panel.ids[i]!r} "
            labels = ", ".join(_label_text(label) for label in panel.index[i][steps[:5]])
            part = f"{who}at index [{labels}{more}]"
        else:
            part = f"series {i} steps {steps[:5].tolist()}{more}"
        if columns is not None and arrays is not None:
            with np.errstate(invalid="ignore"):
                bad_columns = ~np.isfinite(arrays[i][steps]).all(axis=0)
            part += f" in columns {[columns[j] for j in np.flatnonzero(bad_columns)]}"
        parts.append(part)
    return total, "; ".join(parts)


def _label_text(label):
    """An index label for a message: dates without a midnight time."""
    if isinstance(label, pd.Timestamp) and label == label.normalize():
        return str(label.date())
    return repr(label) if isinstance(label, str) else str(label)


def _all_finite(arrays):
    """True when no array holds NaN or inf (a fast screen, exact when True).

    One pass and no data-sized temporaries: NaN and inf propagate into the
    dot product of the values with themselves. A finite overflow only sends
    the data to the slower exact check.
    """
    for a in arrays:
        if not np.issubdtype(a.dtype, np.floating):
            continue
        if a.flags.c_contiguous:
            flat = a.reshape(-1)
            with np.errstate(over="ignore", invalid="ignore"):
                if not np.isfinite(np.dot(flat, flat)):
                    return False
        elif not (np.isfinite(a.min()) and np.isfinite(a.max())):
            return False
    return True


def _handle_nan(panel, targets, nan, name):
    """Apply the NaN policy to the inputs; never fill targets.

    NaN inputs: refused (`nan="error"`), filled (`"ffill"`,
    `"interpolate"`) or their steps dropped with their targets (`"drop"`).
    NaN per-step targets are never filled or dropped: the step keeps its
    (possibly filled) inputs, the target becomes 0 and the step gets
    `sample_weight` 0 (`Targets.observed`). Under `nan="error"` they are
    refused like NaN inputs.
    """
    data = [panel.arrays] if panel.stacked is None else [[panel.stacked]]
    if targets is not None:
        data.append(_target_arrays(targets) if targets.stacked is None else [targets.stacked])
    if all(_all_finite(arrays) for arrays in data):
        return panel, targets
    target_columns = None if targets is None else targets.columns
    for label, arrays, columns in (
        (name, panel.arrays, panel.columns),
        ("targets", _target_arrays(targets), target_columns),
    ):
        infinite = _row_masks(arrays, np.isinf)
        if any(m.any() for m in infinite):
            total, first = _nan_report(infinite, panel if label == name else None)
            raise ValueError(
                f"`{label}` contains {total} infinite values ({first}). "
                "Replace or clip them before splitting."
            )
    step_nan = _row_masks(panel.arrays, np.isnan)
    target_nan = _row_masks(_target_arrays(targets), np.isnan)
    if targets is not None and not targets.per_step and any(m.any() for m in target_nan):
        # One row per series: the rows with NaN name the series.
        bad = np.flatnonzero(target_nan[0])
        who = bad.tolist() if panel.ids is None else [panel.ids[i] for i in bad]
        shown = ", ".join(map(repr, list(who)[:5])) + (", ..." if len(bad) > 5 else "")
        raise ValueError(
            f"Per-sequence `targets` contain {len(bad)} NaN values (series "
            f"[{shown}]); drop those series or fill their targets first."
        )
    if targets is None or not targets.per_step:
        target_nan = [_clean(len(m)) for m in step_nan]
    if nan == "error" and any(m.any() for m in step_nan):
        total, first = _nan_report(step_nan, panel, panel.arrays, panel.columns)
        raise ValueError(
            f"`{name}` contains NaN at {total} time steps ({first}). Pass "
            "nan='ffill', 'interpolate' or 'drop' to handle them, or clean the "
            "data first."
        )
    if nan == "error" and any(m.any() for m in target_nan):
        total, first = _nan_report(
            target_nan,
            panel if len(targets.arrays) == panel.n_series else None,
            targets.arrays, targets.columns,
        )
        raise ValueError(
            f"`targets` contains NaN at {total} time steps ({first}), e.g. the "
            "last rows of a shifted column. Pass nan='ffill', 'interpolate' or "
            "'drop': NaN targets are never filled; their steps keep their "
            "inputs and get target 0 and sample_weight 0. Or drop those rows "
            "first."
        )
    if targets is not None and any(m.any() for m in target_nan):
        # Series without NaN targets share a read-only view of ones.
        targets.observed = [
            (~m).astype(np.float32)[:, None] if m.any()
            else np.broadcast_to(np.float32(1), (len(m), 1))
            for m in target_nan
        ]
        targets.arrays = [
            np.where(m[:, None], 0, a).astype(a.dtype, copy=False) if m.any() else a
            for a, m in zip(targets.arrays, target_nan)
        ]
        targets.stacked = None
    if not any(m.any() for m in step_nan):
        return panel, targets
    if nan == "drop":
        keep = [~m for m in step_nan]
        if not all(k.any() for k in keep):
            raise ValueError(f"nan='drop' would leave an empty series in `{name}`.")
        panel.steps = [np.flatnonzero(k) for k in keep]

        def cut(arrays):  # series without NaN stay views (a[k] copies)
            return [a[k] if m.any() else a for a, m, k in zip(arrays, step_nan, keep)]

        panel.arrays = cut(panel.arrays)
        panel.stacked = None
        if targets is not None and targets.per_step:
            targets.arrays = cut(targets.arrays)
            if targets.observed is not None:
                targets.observed = cut(targets.observed)
            targets.stacked = None
        return panel, targets
    fill = (lambda f: f.ffill()) if nan == "ffill" else (
        lambda f: f.interpolate(limit_direction="both")
    )
    # Only the series with NaN are filled (copied); the others stay views.
    panel.arrays = [
        _fill(a, fill, name, i, nan) if m.any() else a
        for i, (a, m) in enumerate(zip(panel.arrays, step_nan))
    ]
    panel.stacked = None
    return panel, targets


def _fill(array, fill, name, i, nan):
    filled = fill(pd.DataFrame(array)).to_numpy(dtype=array.dtype)
    if _row_mask(filled, np.isnan).any():
        raise ValueError(
            f"`{name}` series {i} still has NaN after nan={nan!r} (leading NaN "
            "or a column that is all NaN); use nan='interpolate' or 'drop'."
        )
    return filled


def _clean(length):
    """An all-False row mask: a read-only view that costs no memory."""
    return np.broadcast_to(False, (length,))


def _blocks(length, row_bytes):
    """Slices of `length` rows of `row_bytes` each, about SCAN_BYTES a slice."""
    step = max(1, SCAN_BYTES // max(1, row_bytes))
    return [slice(start, start + step) for start in range(0, length, step)]


def _row_mask(array, test):
    """bool `[len(array)]`: rows of `array` where `test` holds for any value.

    Scanned in blocks of about `SCAN_BYTES`, so the temporaries stay small
    whatever the size of `array`; an array with no hit gets `_clean` (no
    memory). `test` is `np.isnan` or `np.isinf`: false for integers.
    """
    if not np.issubdtype(array.dtype, np.floating) and test is np.isnan:
        return _clean(len(array))
    row_bytes = array.itemsize * int(np.prod(array.shape[1:]))
    mask = None
    for block in _blocks(len(array), row_bytes):
        part = test(array[block])
        hits = part.reshape(len(part), -1).any(axis=1)
        if hits.any():
            if mask is None:
                mask = np.zeros(len(array), dtype=bool)
            mask[block] = hits
    return _clean(len(array)) if mask is None else mask


def _row_masks(arrays, test):
    """`_row_mask` of every series; for a stacked panel of short series, in
    blocks of whole series rather than one call per series."""
    if not isinstance(arrays, _SeriesViews) or arrays.stacked[:1].nbytes > SCAN_BYTES:
        return [_row_mask(a, test) for a in arrays]
    stacked = arrays.stacked
    n, length = stacked.shape[:2]
    if not np.issubdtype(stacked.dtype, np.floating) and test is np.isnan:
        return [_clean(length)] * n
    masks = [_clean(length)] * n
    for block in _blocks(n, stacked[:1].nbytes):
        part = test(stacked[block])
        hits = part.reshape(part.shape[0], length, -1).any(axis=2)
        for i in np.flatnonzero(hits.any(axis=1)):
            masks[block.start + i] = hits[i].copy()
    return masks


def _target_arrays(targets):
    if targets is None:
        return []
    return targets.arrays if targets.per_step else [targets.per_sequence]
