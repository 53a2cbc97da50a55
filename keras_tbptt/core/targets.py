"""`Targets`: per-step or per-sequence targets, checked against a panel."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from keras_tbptt.core.arrays import (
    as_2d,
    as_numeric,
    is_sequence_of_series,
    SeriesViews,
)
from keras_tbptt.core.labels import format_labels


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


def check_target_names(series, targets, wide, name):
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


def _align_by_labels(target_index, expected, what, where):
    """Raise unless `target_index` holds exactly the labels of `expected`."""
    if target_index.has_duplicates:
        raise ValueError(
            f"`targets` has duplicate index labels "
            f"{format_labels(target_index[target_index.duplicated()].unique())}; "
            f"pandas targets are aligned to {what} by label, so each label "
            "must appear once."
        )
    if expected.has_duplicates:
        raise ValueError(
            f"pandas `targets` are aligned to {what} by label, but {where} has "
            f"duplicate labels {format_labels(expected[expected.duplicated()].unique())}. "
            "Give the series a unique index, name the target column(s) of "
            "`series` instead, or pass targets as a numpy array (matched by "
            "position)."
        )
    missing = expected.difference(target_index, sort=False)
    extra = target_index.difference(expected, sort=False)
    if len(missing) or len(extra):
        lines = []
        if len(missing):
            lines.append(f"- {what[0].upper() + what[1:]} missing from `targets`: {format_labels(missing)}")
        if len(extra):
            lines.append(f"- `targets` index labels that are not {what}: {format_labels(extra)}")
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
            result.arrays = SeriesViews(result.stacked)
        else:
            result.arrays = [a[order] for a in result.arrays]
    result.columns, result.one_column = columns, one_column
    return result


def _numpy_targets(targets, panel, n, lengths):
    if is_sequence_of_series(targets) and len(targets) == n and n > 1:
        arrays = [
            as_2d(as_numeric(t, "targets", f" (series {i})"), "targets")
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
    values = as_numeric(targets, "targets")
    uniform = len(set(lengths)) == 1
    length = lengths[0]
    # Per step: a time axis matching the series. Per sequence: one row per series.
    if n == 1 and values.ndim in (1, 2) and values.shape[0] == length:
        values = as_2d(values, "targets")[None]
        return Targets(arrays=SeriesViews(values), stacked=values)
    if uniform and values.ndim in (2, 3) and values.shape[:2] == (n, length):
        values = values if values.ndim == 3 else values[:, :, None]
        return Targets(arrays=SeriesViews(values), stacked=values)
    if values.ndim in (1, 2) and values.shape[0] == n:
        return Targets(
            per_sequence=as_2d(values, "targets"), squeeze=values.ndim == 1
        )
    raise ValueError(
        "`targets` must be per step (the series' shape with any number of "
        "target features) or per sequence (one row per series).\n"
        f"- Expected: first dimension {n} (series) "
        f"{'followed by ' + str(length) + ' (steps) ' if uniform else ''}"
        f"or, for one series, {lengths[0]} (steps)\n"
        f"- Received: shape={values.shape}"
    )
