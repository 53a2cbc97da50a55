"""`PlanBatches`: a plan's batches, sample weights and epoch arrays (numpy).

The package-internal interface between a `SplitPlan` and what reads its
batches: the plan's public `batch`, `x`, `y`, `sample_weight`,
`weight_scale`, `masked_loss_factors` and `unweighted_batches` delegate
here, and `training/dataset.py`'s `PlanDataset`, `training/checks.py` and
`plot_layout` read a plan through `batches_of(plan)`, never through the
plan's private attributes.

Coordinates: a *sample* is window `window` of layout row `row`; batch `b`
holds the cells `Layout.batch_cells(b)`, and `sample_cells` lists every
sample in plan order (the order of `plan.x`).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from keras_tbptt.core.inputs import Panel
    from keras_tbptt.core.layout import Layout
    from keras_tbptt.core.targets import Targets


class PlanBatches:
    """Batch assembly and weights of one plan's panel, targets and layout.

    Args:
        panel: the validated series.
        targets: their targets, or `None`.
        layout: the plan's layout.

    Attributes:
        panel, targets, layout: as given.
        x_windows: `[rows, windows, timesteps, ...]` view of the inputs when
            the layout allows one (equal rows, no padding), else `None`.
        y_windows: the same for per-step targets, else `None`.
    """

    def __init__(self, panel: Panel, targets: Targets | None, layout: Layout) -> None:
        self.panel = panel
        self.targets = targets
        self.layout = layout
        self.x_windows = window_view(layout, panel.stacked)
        self.y_windows = (
            window_view(layout, targets.stacked)
            if targets is not None and targets.per_step
            else None
        )

    @cached_property
    def sample_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and window of every sample, in plan order."""
        return self.layout.sample_cells()

    @property
    def n_samples(self) -> int:
        return len(self.sample_cells[0])

    def fill_ratio(self) -> float:
        """Real steps in the windows / all steps of all samples
        (`SplitPlan.fill_ratio`)."""
        layout = self.layout
        rows, windows = self.sample_cells
        real = np.where(
            layout.row_windows[rows] > windows, layout.real_steps(rows, windows), 0
        )
        return float(real.sum() / (len(rows) * layout.timesteps))

    def reset_flags(self) -> np.ndarray:
        """float32 `[samples]`: 1 where a sample starts its row (`SplitPlan.reset_flags`)."""
        _, windows = self.sample_cells
        return (windows == 0).astype(np.float32)

    def cells(self, batch: int):
        """`(rows, windows)` of batch `batch` (see `Layout.batch_cells`)."""
        return self.layout.batch_cells(batch)

    def gather(self, arrays, batch: int, dtype) -> np.ndarray:
        """Copy the window of each row (lane) of batch `batch`."""
        layout = self.layout
        rows, windows = self.cells(batch)
        if isinstance(rows, slice):  # one window for the whole group
            rows = range(len(layout.row_series))[rows]
            windows = [windows] * len(rows)
        else:
            rows, windows = rows.tolist(), windows.tolist()
        out = np.zeros(
            (len(rows), layout.timesteps) + arrays[0].shape[1:], dtype=dtype
        )
        for i, (row, window) in enumerate(zip(rows, windows)):
            series = layout.row_series[row]
            offset = layout.offset(row, window)
            stop = offset + layout.real_steps(row, window)
            # A row that has run out of windows is zeros (positions: -1),
            # even where an overlapping window would still reach real steps.
            if series >= 0 and stop > offset and window < layout.row_windows[row]:
                start = layout.row_start[row]
                out[i, : stop - offset] = arrays[series][start + offset : start + stop]
        return out

    def step_mask(self, rows, window) -> np.ndarray:
        """`[rows, timesteps]` bool: steps that are real and owned by the window.

        With overlapping windows (`hop < timesteps`) a window owns only its
        last `hop` steps; the first window of a row owns all of its steps.
        """
        layout = self.layout
        real = np.arange(layout.timesteps) < layout.real_steps(rows, window)[..., None]
        window = np.asarray(window)[..., None]
        steps = np.arange(layout.timesteps)
        return real & ((window == 0) | (steps >= layout.timesteps - layout.hop))

    def full(self, rows, window) -> bool:
        """Whether every row of the batch has this window (no filler, no gap)."""
        return (self.layout.row_windows[rows] > window).all()

    def batch_x(self, index: int) -> np.ndarray:
        """The inputs of batch `index`: a view where the layout allows."""
        rows, window = self.cells(index)
        if self.x_windows is not None and self.full(rows, window):
            return self.x_windows[rows, window]
        return self.gather(self.panel.arrays, index, self.panel.arrays[0].dtype)

    def batch_targets(self, index: int):
        """`(y, sample_weight)` of batch `index`; `(None, None)` without targets."""
        if self.targets is None:
            return None, None
        rows, window = self.cells(index)
        weight = self.sample_weights(rows, window) * self.weight_scale
        if self.targets.per_step:
            if self.y_windows is not None and self.full(rows, window):
                y = self.y_windows[rows, window]
            else:
                y = self.gather(self.targets.arrays, index, self.targets.dtype)
            return y, weight
        return self.sequence_targets(rows), weight

    def sequence_targets(self, rows) -> np.ndarray:
        """Per-sequence targets of `rows` (a slice or indices): each row's
        series' target, zeros for filler rows."""
        series = self.layout.row_series[rows]
        y = self.targets.per_sequence[np.maximum(series, 0)]
        y[series < 0] = 0
        return y[:, 0] if self.targets.squeeze else y

    def sample_weights(self, rows, windows) -> np.ndarray:
        """Unscaled weights (0 or 1) of the samples at `(rows, windows)`, all
        at once: `[n, timesteps]` per step, `[n]` per sequence.

        What `batch_targets` gives batch by batch, before `weight_scale`.
        """
        layout, targets = self.layout, self.targets
        if not targets.per_step:
            last = layout.row_windows[rows] - 1 == windows
            return (last & (layout.row_series[rows] >= 0)).astype(np.float32)
        weight = self.step_mask(rows, windows).astype(np.float32)
        if targets.observed is not None:  # NaN targets: weight 0
            weight *= self.gather_samples([self.observed_steps], rows, windows)[0][..., 0]
        return weight

    @cached_property
    def observed_steps(self):
        """`end_to_end` of the targets' observed masks (kept: `weight_scale`
        reads them block by block)."""
        return end_to_end(self.targets.observed, None)

    def sample_lengths(self, rows, windows) -> np.ndarray:
        """Real steps of the samples at `(rows, windows)`: 0 for filler rows
        and rows that have run out of windows."""
        layout = self.layout
        has = (layout.row_series[rows] >= 0) & (windows < layout.row_windows[rows])
        return np.where(has, layout.real_steps(rows, windows), 0)

    def gather_samples(self, sources, rows, windows) -> list[np.ndarray]:
        """The windows of the samples at `(rows, windows)` of each source,
        `[n, timesteps, ...]` each, gathered at once; `sources` are
        `end_to_end(arrays, stacked)` results.

        `gather` for many samples: a row that has run out of windows,
        filler rows and padding read zeros.
        """
        layout = self.layout
        series = np.maximum(layout.row_series[rows], 0)
        step = np.arange(layout.timesteps)
        valid = step < self.sample_lengths(rows, windows)[:, None]
        start = layout.row_start[rows] + layout.offset(rows, windows)
        gathered = []
        for flat, first in sources:
            values = flat[np.where(valid, (first[series] + start)[:, None] + step, 0)]
            values[~valid] = 0
            gathered.append(values)
        return gathered

    @cached_property
    def weight_scale(self) -> float:
        """The value of every nonzero sample weight (`SplitPlan.weight_scale`)."""
        if self.targets is None:
            return 1.0
        weighted = float(self.unscaled_batch_weights.sum())
        per_sample = self.layout.timesteps if self.targets.per_step else 1
        return self.n_samples * per_sample / weighted if weighted else 1.0

    @cached_property
    def unscaled_batch_weights(self) -> np.ndarray:
        """float64 `[batches]`: sum of each batch's unscaled weights."""
        rows, windows = self.sample_cells
        per_sample = np.zeros(len(rows))
        block = max(1, 2**22 // self.layout.timesteps)  # bounds the temporary masks
        for start in range(0, len(rows), block):
            part = slice(start, start + block)
            weights = self.sample_weights(rows[part], windows[part])
            per_sample[part] = weights.reshape(len(weights), -1).sum(axis=1)
        sizes = self.batch_rows()
        if not len(sizes):
            return per_sample
        return np.add.reduceat(per_sample, np.cumsum(sizes) - sizes)

    def masked_loss_factors(self) -> np.ndarray:
        """float `[batches]`: real steps / all steps of each batch
        (`SplitPlan.masked_loss_factors`)."""
        rows, windows = self.sample_cells
        real = self.sample_lengths(rows, windows).astype(np.float64)
        sizes = self.batch_rows()
        if not len(sizes):
            return real
        return np.add.reduceat(real, np.cumsum(sizes) - sizes) / (
            sizes * self.layout.timesteps
        )

    def batch_rows(self) -> np.ndarray:
        """Rows (samples) of each batch: `batch_size`, but fewer in the last
        group of a stateless plan."""
        layout = self.layout
        if layout.packed:
            return np.full(layout.n_batches, layout.batch_size)
        left = len(layout.row_series) - layout.batch_group * layout.batch_size
        return np.minimum(left, layout.batch_size)

    def stack(self, part: int) -> np.ndarray | None:
        """Concatenate one part (0: x, 1: y, 2: sample_weight) of every batch."""
        n = self.layout.n_batches
        if part == 0:
            if (
                self.x_windows is not None
                and self.x_windows.shape[1] == 1
                and len(self.x_windows) == len(self.layout.row_series)  # no filler
                and not self.layout.packed
            ):
                return self.x_windows[:, 0]  # one window per row: plan order is row order
            return np.concatenate([self.batch_x(i) for i in range(n)])
        if self.targets is None:
            return None
        return np.concatenate([self.batch_targets(i)[part - 1] for i in range(n)])


def batches_of(plan) -> PlanBatches:
    """The `PlanBatches` of `plan` (a `SplitPlan`): the package's way into
    a plan's batches (no annotation: this module must not import the plan)."""
    return plan._batches


def window_view(layout: Layout, stacked: np.ndarray | None) -> np.ndarray | None:
    """`[rows, windows, timesteps, features]` view of `stacked`, if any."""
    if stacked is None or layout.window_offsets is not None:
        return None
    # Filler rows (series -1) come last and are never read from the
    # view (`PlanBatches.full`), so the real rows alone must tile the block.
    rows = int((layout.row_series >= 0).sum())
    n = stacked.shape[0]
    streams, remainder = divmod(rows, n)
    if remainder or rows == 0:
        return None
    row_length = int(layout.row_length[0])
    first = int(layout.row_start[0])
    covered = (layout.row_windows[:rows] - 1) * layout.hop + layout.timesteps
    if (
        (layout.row_length[:rows] != row_length).any()
        or (covered != row_length).any()  # padding
        or (layout.row_series[:rows] != np.arange(rows) // streams).any()
        or (layout.row_start[:rows] != first + np.arange(rows) % streams * row_length).any()
    ):
        return None
    block = stacked[:, first : first + streams * row_length]
    try:
        block = block.reshape(
            (rows, row_length) + stacked.shape[2:], copy=False
        )
    except ValueError:  # rows are not a view-compatible reshape
        return None
    windows = np.lib.stride_tricks.sliding_window_view(
        block, layout.timesteps, axis=1
    )[:, :: layout.hop]
    return np.moveaxis(windows, -1, 2)


def end_to_end(arrays, stacked: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """`(steps, first)`: all series end to end (a view of `stacked` when
    given), and the index where each series starts."""
    if stacked is not None:
        n, length = stacked.shape[:2]
        return stacked.reshape((n * length,) + stacked.shape[2:]), np.arange(n) * length
    lengths = np.array([len(array) for array in arrays], np.int64)
    return np.concatenate(list(arrays)), np.cumsum(lengths) - lengths
