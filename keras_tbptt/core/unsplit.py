"""The way back: a plan's samples to the user's series (`SplitPlan.unsplit`,
`SplitPlan.positions`), in the input's own layout (numpy, pandas, wide or
long format)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from keras_tbptt.core.batches import PlanBatches
    from keras_tbptt.core.inputs import Panel
    from keras_tbptt.core.layout import Layout


def original_steps(panel: Panel, layout: Layout, rows, steps) -> np.ndarray:
    """Map steps of the validated series to steps of the user's series."""
    if panel.steps is None:
        return steps
    kept = panel.steps
    offsets = np.concatenate([[0], np.cumsum([len(k) for k in kept])])
    return np.concatenate(kept)[offsets[layout.row_series[rows]] + steps]


def sample_positions(batches: PlanBatches) -> np.ndarray:
    """`SplitPlan.positions`: `(series, first step)` of every sample, `-1`
    for filler rows, rows that have run out of windows and windows of
    padding alone."""
    layout = batches.layout
    rows, windows = batches.sample_cells
    series = layout.row_series[rows].copy()
    # A window of padding alone (the room of moving cuts) has no first step.
    missing = (series < 0) | (layout.row_windows[rows] <= windows)
    missing |= layout.real_steps(rows, windows) == 0
    start = original_steps(
        batches.panel,
        layout,
        rows[~missing],
        layout.row_start[rows[~missing]] + layout.offset(rows[~missing], windows[~missing]),
    )
    series[missing] = -1
    positions = np.full((len(rows), 2), -1, dtype=np.int64)
    positions[:, 0] = series
    positions[~missing, 1] = start
    return positions


def unsplit(
    batches: PlanBatches, outputs
) -> np.ndarray | list[np.ndarray] | pd.DataFrame | pd.Series:
    """`SplitPlan.unsplit`: map outputs in plan order back to the series."""
    layout, panel, targets = batches.layout, batches.panel, batches.targets
    n_samples, timesteps = batches.n_samples, layout.timesteps
    per_sequence_targets = targets is not None and not targets.per_step
    outputs = np.asarray(outputs)
    if outputs.ndim == 0 or outputs.shape[0] != n_samples:
        raise ValueError(
            "`outputs` must have one row per sample of the plan.\n"
            f"- Expected: shape ({n_samples}, ...)\n"
            f"- Received: shape={outputs.shape}"
        )
    per_step = outputs.ndim == 3 or (
        outputs.ndim == 2
        and outputs.shape[1] == timesteps
        and timesteps > 1
        and not per_sequence_targets
    )
    if outputs.ndim == 3 and outputs.shape[1] != timesteps:
        # Fewer steps would fail in numpy's indexing, more would be cut
        # silently: neither is a plan's output.
        raise ValueError(
            "Per-step `outputs` must have one row per sample and one step "
            "per timestep of the plan (a model with "
            "return_sequences=True over the plan's samples).\n"
            f"- Expected: shape ({n_samples}, {timesteps}, ...)\n"
            f"- Received: shape={outputs.shape}"
        )
    rows, windows = batches.sample_cells
    masks = batches.step_mask(rows, windows)
    series = layout.row_series[rows]
    if per_sequence_targets and not per_step:
        last = (layout.row_windows[rows] - 1 == windows) & (series >= 0)
        return _format_per_series(
            batches, _mean_at(series[last], outputs[last], panel.n_series)
        )
    if per_step:
        trailing = outputs.shape[2:]
        sample, step = np.nonzero(masks)
        values = outputs[sample, step]
    else:  # a per-sample output belongs to the last step of its window
        trailing = outputs.shape[1:]
        sample = np.flatnonzero(masks.any(axis=1))
        step = layout.timesteps - 1 - np.argmax(masks[sample, ::-1], axis=1)
        values = outputs[sample]
    rows = rows[sample]
    steps = original_steps(
        panel, layout, rows, layout.row_start[rows] + layout.offset(rows, windows[sample]) + step
    )
    lengths = panel.original_lengths
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    result = _mean_at(offsets[series[sample]] + steps, values, int(offsets[-1]))
    return _format_per_step(batches, np.split(result, offsets[1:-1]), trailing)


def _output_names(batches, trailing):
    """Column labels for outputs of shape `[..., *trailing]`, and whether
    one column comes back as a pandas Series.

    The names of pandas targets (or target column names) when the width
    matches; for a plan without targets, the names of the pandas series.
    """
    width = int(np.prod(trailing)) if trailing else 1
    targets, panel = batches.targets, batches.panel
    if targets is not None:
        if targets.columns is not None and len(targets.columns) == width:
            return list(targets.columns), targets.one_column and width == 1
    elif panel.columns is not None and len(panel.columns) == width:
        return list(panel.columns), panel.one_column and width == 1
    return None, not trailing


def _format_per_step(batches, arrays, trailing):
    panel = batches.panel
    if panel.kind == "3d":
        return np.stack(arrays)
    if panel.kind in ("1d", "2d"):
        return arrays[0]
    if panel.kind == "list":
        return arrays
    columns, one_column = _output_names(batches, trailing)

    def frame(values, index):
        if one_column:
            name = None if columns is None else columns[0]
            return pd.Series(values.reshape(len(values)), index=index, name=name)
        return pd.DataFrame(values.reshape(len(values), -1), index=index, columns=columns)

    if panel.kind == "wide":  # one column per series, on the shared index
        if not trailing or trailing == (1,):
            result = pd.DataFrame(
                {i: a.reshape(len(a)) for i, a in zip(panel.ids, arrays)},
                index=panel.index[0],
                columns=pd.Index(panel.ids, name=panel.id_name),
            )
        else:
            one_column = False  # `frame` then makes a DataFrame per series
            result = pd.concat(
                [frame(a, index) for a, index in zip(arrays, panel.index)],
                axis=1, keys=pd.Index(panel.ids, name=panel.id_name),
            )
        rows = None if panel.rows is None else panel.rows[0]
    else:
        frames = [frame(a, index) for a, index in zip(arrays, panel.index)]
        result = frames[0] if len(frames) == 1 else pd.concat(frames)
        rows = None if panel.rows is None else np.concatenate(panel.rows)
    if rows is not None:  # rows were sorted by time: back to the caller's order
        result = result.iloc[np.argsort(rows, kind="stable")]
    return result


def _format_per_series(batches, values):
    panel = batches.panel
    if panel.ids is not None:
        index = pd.Index(panel.ids, name=panel.id_name)
        columns, one_column = _output_names(batches, values.shape[1:])
        if values.ndim == 1 or one_column:
            name = None if columns is None else columns[0]
            return pd.Series(values.reshape(len(values)), index=index, name=name)
        return pd.DataFrame(values, index=index, columns=columns)
    return values


def _mean_at(index, values, size):
    """Average `values` into `size` slots at `index`; NaN where none land."""
    values = np.asarray(values, dtype=np.result_type(values.dtype, np.float32))
    total = np.zeros((size,) + values.shape[1:], dtype=values.dtype)
    count = np.zeros(size, dtype=np.int64)
    np.add.at(total, index, values)
    np.add.at(count, index, 1)
    count = count.reshape((size,) + (1,) * (values.ndim - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
