"""pandas DataFrames as series: long format (`id_col`/`time_col`) and wide."""

import warnings

import numpy as np
import pandas as pd

from keras_tbptt.core.arrays import as_numeric
from keras_tbptt.core.time_order import (
    TIME_INDEXES,
    is_time_like,
    time_order,
    time_values,
)


def _warn_row_order(frame, id_col, target_cols, name):
    """`id_col` without `time_col`: row order is time order; say so if time is there."""
    unused = [
        c for c in frame.columns
        if c != id_col and c not in target_cols and is_time_like(c, frame[c])
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


def _no_rows(frame, name, wide=False):
    """Refuse a DataFrame without rows before its (empty, so untyped) columns."""
    if not len(frame):
        raise ValueError(
            f"`{name}` has no rows: a DataFrame needs one row per time step"
            + (" (wide=True: columns are series)" if wide else "")
            + f". Received: an empty DataFrame with columns {list(frame.columns)}"
        )


def long_format(frame, id_col, time_col, target_cols, name, time_format=None):
    _no_rows(frame, name)
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
        times = time_values(frame[time_col], time_col, name, time_format)
        what = f"`time_col`={time_col!r}"
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
            order = time_order(
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
            as_numeric(group[feature_cols].to_numpy(), name, where)
        )
        if target_cols:
            targets.append(
                as_numeric(group[target_cols].to_numpy(), "targets", where)
            )
        index.append(group.index)  # row labels, so results join back
        ids.append(key)
    moved = bool(rows) and not np.array_equal(np.concatenate(rows), np.arange(len(frame)))
    return (
        arrays, (targets or None), index, (ids if id_col else None), feature_cols,
        rows if moved else None,
    )


def wide_format(frame, name):
    """A DataFrame whose columns are univariate series sharing the index."""
    _no_rows(frame, name, wide=True)
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
    values = as_numeric(frame.to_numpy(), name)
    index, rows = frame.index, None
    if isinstance(index, TIME_INDEXES):
        rows = time_order(index, name, f"its index (a {type(index).__name__})")
        if rows is not None:
            values, index = values[rows], index[rows]
    stacked = np.swapaxes(values, 0, 1)[:, :, None]  # [n_series, length, 1] view
    return stacked, [index] * frame.shape[1], list(frame.columns), rows
