"""`as_panel`: validate user series (and targets) into one `Panel`.

Every scheme accepts the same inputs; this module turns them into a
`Panel`: a list of `[length, features]` float arrays (views of the user's
data where possible) plus what is needed to map results back to the
original layout.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from keras_tbptt.core.arrays import (
    as_2d,
    as_float,
    as_numeric,
    is_sequence_of_series,
    SeriesViews,
)
from keras_tbptt.core.frames import long_format, wide_format
from keras_tbptt.core.missing import NAN_POLICIES, handle_nan
from keras_tbptt.core.targets import check_target_names, as_targets
from keras_tbptt.core.time_order import TIME_INDEXES, check_time_format, time_order
from keras_tbptt.core.validation import check_choice


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
        if isinstance(self.arrays, SeriesViews):  # uniform: no loop over series
            return np.full(len(self.arrays), self.arrays.stacked.shape[1], np.int64)
        return np.array([a.shape[0] for a in self.arrays], dtype=np.int64)


# 3-D reading check: at least this many series per step before looking.
TRANSPOSED_MIN_RATIO = 10

# ... and neighbouring steps must differ this many times more than
# neighbouring series (a time axis is smoother than a series axis).
TRANSPOSED_SMOOTHNESS = 4.0

# ... in a sample of the first series of at most this many values (a few
# float64 temporaries of it, whatever the size of the data).
TRANSPOSED_SAMPLE_VALUES = 1 << 15


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
    time_format=None,
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
    time_format = check_time_format(time_format, time_col)
    check_target_names(series, targets, wide, name)
    index = ids = columns = rows = None
    stacked = None
    one_column, id_name = False, "id"
    target_names = None
    if wide:
        stacked, index, ids, order = wide_format(series, name)
        arrays, kind = SeriesViews(stacked), "wide"
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
        arrays, column_targets, index, ids, columns, rows = long_format(
            series, id_col, time_col, target_cols, name, time_format
        )
        if target_cols:
            targets = column_targets
        kind = "long" if id_col is not None else "frame"
        id_name = id_col if id_col is not None else "id"
    elif isinstance(series, pd.Series):
        values, labels = as_numeric(series.to_numpy(), name), series.index
        if isinstance(labels, TIME_INDEXES):
            order = time_order(labels, name, f"its index (a {type(labels).__name__})")
            if order is not None:
                values, labels, rows = values[order], labels[order], [order]
        arrays = [values[:, None]]
        index, kind = [labels], "frame"
        columns, one_column = [series.name], True
    elif is_sequence_of_series(series):
        arrays = []
        for i, item in enumerate(series):
            values = as_numeric(item, name, f" (series {i})")
            arrays.append(as_2d(values, name, f" for each series (series {i})"))
        kind = "list"
    else:
        values = as_numeric(series, name)
        if values.ndim == 1:
            arrays, kind = [values[:, None]], "1d"
        elif values.ndim == 2:
            arrays, kind = [values], "2d"
        elif values.ndim == 3:
            arrays, kind = SeriesViews(values), "3d"
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
        stacked = as_float(stacked, name)
        arrays = SeriesViews(stacked)
    else:
        arrays = [as_float(a, name) for a in arrays]
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
    return handle_nan(panel, target_obj, nan, name)
