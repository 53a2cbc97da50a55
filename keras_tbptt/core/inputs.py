"""Validate user series and targets and normalise them to one panel model.

Every scheme accepts the same inputs; this module turns them into a
`Panel`: a list of `[length, features]` float arrays (views of the user's
data where possible) plus what is needed to map results back to the
original layout. Pure numpy/pandas: no Keras import here.
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NAN_POLICIES = ("error", "ffill", "interpolate", "drop")


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

    @property
    def n_series(self):
        return len(self.arrays)

    @property
    def n_features(self):
        return self.arrays[0].shape[1]

    @property
    def lengths(self):
        return np.array([a.shape[0] for a in self.arrays], dtype=np.int64)


@dataclass
class Targets:
    """Validated targets: per step (like the series) or one row per series."""

    arrays: list = None  # per step: [length_i, target_features] each
    per_sequence: np.ndarray = None  # [n_series, target_features]
    stacked: np.ndarray = None  # per step: [n, length, features] view
    squeeze: bool = field(default=False)  # user gave 1-D per-sequence targets

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


def _as_float(values):
    # Integers and booleans become float32 (a copy); floats stay views.
    if np.issubdtype(values.dtype, np.floating):
        return values
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


def _long_format(frame, id_col, time_col, target_cols, name):
    for arg, col in (("id_col", id_col), ("time_col", time_col)):
        if col is not None and col not in frame.columns:
            raise ValueError(
                f"`{arg}` must name a column of `{name}`. Received: "
                f"{arg}={col!r}; columns are {list(frame.columns)}"
            )
    if time_col is not None and id_col is None:
        frame = frame.sort_values(time_col, kind="stable")
    groups = (
        [(None, frame)]
        if id_col is None
        else list(frame.groupby(id_col, sort=False, dropna=False))
    )
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
    arrays, targets, index, ids = [], [], [], []
    for key, group in groups:
        if time_col is not None:
            group = group.sort_values(time_col, kind="stable")
            if group[time_col].duplicated().any():
                raise ValueError(
                    f"`{name}` has repeated times in `time_col`={time_col!r}"
                    + ("" if id_col is None else f" for id {key!r}")
                    + "; each series needs one row per time step."
                )
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
    return arrays, (targets or None), index, (ids if id_col else None)


def as_panel(
    series,
    targets=None,
    *,
    id_col=None,
    time_col=None,
    nan="error",
    name="series",
):
    """Validate `series` (and `targets`) and return `(Panel, Targets|None)`.

    See `keras_tbptt.naive_split` for the accepted layouts.
    """
    check_choice(nan, "nan", NAN_POLICIES)
    if (id_col is not None or time_col is not None) and not isinstance(
        series, pd.DataFrame
    ):
        raise TypeError(
            "`id_col` and `time_col` need a pandas DataFrame as `series`. "
            f"Received: series of type {type(series).__name__}"
        )
    index = ids = None
    stacked = None
    if isinstance(series, pd.DataFrame):
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
        arrays, column_targets, index, ids = _long_format(
            series, id_col, time_col, target_cols, name
        )
        if target_cols:
            targets = column_targets
        kind = "long" if id_col is not None else "frame"
    elif isinstance(series, pd.Series):
        arrays = [_as_numeric(series.to_numpy(), name)[:, None]]
        index, kind = [series.index], "frame"
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
            arrays, kind = list(values), "3d"
            stacked = values
        else:
            raise ValueError(
                f"`{name}` must be 1-D [length], 2-D [length, features] or 3-D "
                f"[n_series, length, features]. Received: shape={values.shape}"
            )
    if not arrays:
        raise ValueError(f"`{name}` holds no series. Received: {name}={series!r}")
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
        stacked = _as_float(stacked)
        arrays = list(stacked)
    else:
        arrays = [_as_float(a) for a in arrays]
        if len(arrays) == 1:
            stacked = arrays[0][None]
    panel = Panel(
        arrays, kind, stacked, index, ids,
        original_lengths=np.array([a.shape[0] for a in arrays], dtype=np.int64),
    )
    target_obj = None if targets is None else as_targets(targets, panel)
    return _handle_nan(panel, target_obj, nan, name)


def as_targets(targets, panel):
    """Validate targets against `panel`: per-step or per-sequence."""
    n, lengths = panel.n_series, panel.lengths
    if isinstance(targets, (pd.Series, pd.DataFrame)):
        targets = targets.to_numpy()
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
        return Targets(arrays=list(values), stacked=values)
    if uniform and values.ndim in (2, 3) and values.shape[:2] == (n, length):
        values = values if values.ndim == 3 else values[:, :, None]
        return Targets(arrays=list(values), stacked=values)
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


def _nan_report(mask_per_series):
    bad = [(i, np.flatnonzero(m)) for i, m in enumerate(mask_per_series) if m.any()]
    total = sum(len(steps) for _, steps in bad)
    first = ", ".join(
        f"series {i} steps {steps[:5].tolist()}{'...' if len(steps) > 5 else ''}"
        for i, steps in bad[:3]
    )
    return total, first


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
    data = [panel.arrays] if panel.stacked is None else [[panel.stacked]]
    if targets is not None:
        data.append(_target_arrays(targets) if targets.stacked is None else [targets.stacked])
    if all(_all_finite(arrays) for arrays in data):
        return panel, targets
    for label, arrays in ((name, panel.arrays), ("targets", _target_arrays(targets))):
        infinite = [np.isinf(a).any(axis=1) for a in arrays]
        if any(m.any() for m in infinite):
            total, first = _nan_report(infinite)
            raise ValueError(
                f"`{label}` contains {total} infinite values ({first}). "
                "Replace or clip them before splitting."
            )
    step_nan = [_nan_rows(a) for a in panel.arrays]
    target_nan = [_nan_rows(a) for a in _target_arrays(targets)]
    if targets is not None and targets.per_step:
        step_nan = [s | t for s, t in zip(step_nan, target_nan)]
    elif targets is not None and any(m.any() for m in target_nan):
        total, first = _nan_report(target_nan)
        raise ValueError(
            f"Per-sequence `targets` contain {total} NaN values ({first}); "
            "drop those series or fill their targets first."
        )
    if not any(m.any() for m in step_nan):
        return panel, targets
    total, first = _nan_report(step_nan)
    if nan == "error":
        raise ValueError(
            f"`{name}` (or per-step `targets`) contains NaN at {total} time steps "
            f"({first}). Pass nan='ffill', 'interpolate' or 'drop' to handle them, "
            "or clean the data first."
        )
    if nan == "drop":
        keep = [~m for m in step_nan]
        if not all(k.any() for k in keep):
            raise ValueError(f"nan='drop' would leave an empty series in `{name}`.")
        panel.steps = [np.flatnonzero(k) for k in keep]
        panel.arrays = [a[k] for a, k in zip(panel.arrays, keep)]
        panel.stacked = None
        if targets is not None:
            targets.arrays = [a[k] for a, k in zip(targets.arrays, keep)]
            targets.stacked = None
        return panel, targets
    fill = (lambda f: f.ffill()) if nan == "ffill" else (
        lambda f: f.interpolate(limit_direction="both")
    )
    panel.arrays = [_fill(a, fill, name, i, nan) for i, a in enumerate(panel.arrays)]
    panel.stacked = None
    if targets is not None and targets.per_step:
        targets.arrays = [
            _fill(a, fill, "targets", i, nan) for i, a in enumerate(targets.arrays)
        ]
        targets.stacked = None
    return panel, targets


def _fill(array, fill, name, i, nan):
    if not np.isnan(array).any():
        return array
    filled = fill(pd.DataFrame(array)).to_numpy(dtype=array.dtype)
    if np.isnan(filled).any():
        raise ValueError(
            f"`{name}` series {i} still has NaN after nan={nan!r} (leading NaN "
            "or a column that is all NaN); use nan='interpolate' or 'drop'."
        )
    return filled


def _nan_rows(array):
    if not np.issubdtype(array.dtype, np.floating):
        return np.zeros(len(array), dtype=bool)
    return np.isnan(array).any(axis=1)


def _target_arrays(targets):
    if targets is None:
        return []
    return targets.arrays if targets.per_step else [targets.per_sequence]
