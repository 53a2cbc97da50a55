"""`SplitPlan`: the one object every splitting scheme returns."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from keras_tbptt.core.validation import check_int

if TYPE_CHECKING:  # the Keras side is imported by dataset() and callbacks() only
    from numpy.typing import ArrayLike

    from keras_tbptt.core.inputs import Panel
    from keras_tbptt.core.layout import Layout
    from keras_tbptt.core.targets import Targets
    from keras_tbptt.training.callbacks import ResetStates
    from keras_tbptt.training.dataset import PlanDataset


class SplitPlan:
    """Arrays, batches, reset schedule and the way back for one split.

    Get a plan from a scheme function (`naive_split`, `one_step`, `as_is`,
    `decoupled_split`, `domain_split`, `sentence_split`, `truncate`,
    `random_windows`) or from `validation_split`: the constructor is
    internal, not part of the API. A plan holds views of your data and
    produces batches on demand; `len(plan)` is the number of batches.

    Batch `j + 1` row `i` continues batch `j` row `i` for stateful plans;
    states must be reset before the batches flagged in `resets` (the
    callbacks from `callbacks()` do that).

    Attributes:
        scheme: name of the scheme that built the plan.
        batch_size: rows per batch (the model's static batch size for
            stateful plans).
        timesteps: steps per sample (the LSTM's input length, k1 or the
            window length).
        n_series: number of series in the data.
        n_samples: number of samples (rows of `x`), filler rows included.
        stateful: whether batches continue each other (`False` for
            `as_is`, `truncate` and `random_windows`).
        resets: bool array, one per batch: reset states before this batch
            (for a packed plan: batches where every lane starts anew).
        per_sequence_targets: whether the targets are one row per series
            (`False` for per-step targets and for a plan without targets).
        packed: whether the plan was built with `pack=True` (lanes run
            through several series back to back; see `reset_flags`).
        fill_ratio: real steps in the windows over all steps of all samples
            (1.0: no padding, no filler).
        positions: int array `[samples, 2]`: series index and first step
            (in the original series) of each sample; `-1` for filler rows.
        layer_kwargs: arguments the recurrent layer needs for this plan
            (`truncate_gradient`, `state_step`), e.g.
            `TBPTTLSTM(64, stateful=True, **plan.layer_kwargs)`.
        suggestion (TimestepsSuggestion | None): for a `domain_split`
            plan, the `TimestepsSuggestion` that chose `timesteps`; else
            `None`.
        timesteps_from: for a `domain_split` plan, a few words on why
            `timesteps` has this length; else `None`.

    Example:

    >>> import numpy as np
    >>> import keras_tbptt
    >>> plan = keras_tbptt.naive_split(np.zeros((4, 60, 1)), 20, batch_size=2)
    >>> plan
    SplitPlan(scheme='naive_split', x=(12, 20, 1), batch_size=2, batches=6, resets=2/6, stateful=True)
    >>> plan.resets.tolist()
    [True, False, False, True, False, False]
    >>> plan.positions[:4].tolist()  # (series, start) of the first 4 samples
    [[0, 0], [1, 0], [0, 20], [1, 20]]
    """

    # Set by schemes that read `timesteps` from the data (`domain_split`):
    # the `TimestepsSuggestion`, and a few words on why this length.
    suggestion = None
    timesteps_from: str | None = None

    def __init__(
        self,
        panel: Panel,
        targets: Targets | None,
        layout: Layout,
        *,
        scheme: str,
        segments: tuple[np.ndarray, np.ndarray, np.ndarray],
        rebuild: Callable[[tuple[np.ndarray, np.ndarray, np.ndarray], float], SplitPlan],
        layer_kwargs: dict[str, int] | None = None,
    ) -> None:
        self._panel = panel
        self._targets = targets
        self._layout = layout
        self._segments = segments
        self._rebuild = rebuild
        self.scheme: str = scheme
        self.layer_kwargs: dict[str, int] = dict(layer_kwargs or {})
        self._x_windows = self._window_view(panel.stacked)
        self._y_windows = (
            self._window_view(targets.stacked)
            if targets is not None and targets.per_step
            else None
        )

    # ------------------------------------------------------------------
    # Layout facts
    @property
    def batch_size(self) -> int:
        return self._layout.batch_size

    @property
    def timesteps(self) -> int:
        return self._layout.timesteps

    @property
    def stateful(self) -> bool:
        return self._layout.stateful

    @property
    def n_series(self) -> int:
        return self._panel.n_series

    @property
    def n_features(self) -> int | None:
        """Features per step; `None` when `x` has no feature axis (token ids)."""
        if self._panel.arrays[0].ndim == 1:
            return None
        return self._panel.n_features

    @property
    def per_sequence_targets(self) -> bool:
        return self._targets is not None and not self._targets.per_step

    @property
    def resets(self) -> np.ndarray:
        return self._layout.resets()

    @property
    def packed(self) -> bool:
        """Whether lanes run through several series back to back (`pack=True`).

        Each row of a batch (a lane) then starts a new series where
        `reset_flags` is 1, not only at the first batch: train it with the
        in-graph resets (`dataset()` sends the flags).
        """
        return self._layout.packed

    @property
    def fill_ratio(self) -> float:
        """Real steps in the windows / all steps of all samples
        (`samples * timesteps`), as a float in (0, 1].

        Padding and filler rows (or filler at lane ends) are what is
        missing; a packed plan of a ragged panel fills more.
        """
        layout = self._layout
        rows, windows = self._sample_rows()
        real = np.where(
            layout.row_windows[rows] > windows, layout.real_steps(rows, windows), 0
        )
        return float(real.sum() / (len(rows) * layout.timesteps))

    @property
    def reset_flags(self) -> np.ndarray:
        """float32 `[samples]`, in plan order (as `x`): 1 where that row's
        state must start from zeros before its sample (a new series, or a
        new stream of one), else 0.

        The per-row schedule that `dataset(reset_flags=True)` sends along
        with each batch, for models wrapped by `keras_tbptt.with_reset_flags`
        (the resets then run inside the graph). `plan.resets` is the
        per-batch schedule of the callback path.

        Example: series of 3, 2 and 1 chunks packed in 2 lanes; lane 1
        starts series 2 in batch 2.

        >>> import numpy as np, keras_tbptt
        >>> panel = [np.ones((n, 1)) for n in (30, 20, 10)]
        >>> plan = keras_tbptt.naive_split(panel, 10, batch_size=2, pack=True)
        >>> plan.reset_flags.reshape(len(plan), plan.batch_size).tolist()
        [[1.0, 1.0], [0.0, 0.0], [0.0, 1.0]]
        >>> plan.positions.tolist()  # (series, first step) of each sample
        [[0, 0], [1, 0], [0, 10], [1, 10], [0, 20], [2, 0]]
        """
        _, windows = self._sample_rows()
        return (windows == 0).astype(np.float32)

    def __len__(self) -> int:
        return self._layout.n_batches

    @property
    def n_samples(self) -> int:
        return len(self._sample_rows()[0])

    def _sample_rows(self):
        """Row and window of every sample, in plan order (cached)."""
        if not hasattr(self, "_sample_cache"):
            self._sample_cache = self._layout.sample_cells()
        return self._sample_cache

    def __repr__(self) -> str:
        shape = (self.n_samples, self.timesteps) + self._panel.arrays[0].shape[1:]
        return (
            f"SplitPlan(scheme={self.scheme!r}, x={shape}, "
            f"batch_size={self.batch_size}, batches={len(self)}, "
            f"resets={int(self.resets.sum())}/{len(self)}, "
            f"stateful={self.stateful}"
            + (f", packed=True, fill={self.fill_ratio:.2f}" if self.packed else "")
            + (f", timesteps_from={self.timesteps_from!r}" if self.timesteps_from else "")
            + ")"
        )

    def _cells(self, batch):
        """`(rows, windows)` of batch `batch` (see `Layout.batch_cells`)."""
        return self._layout.batch_cells(batch)

    # ------------------------------------------------------------------
    # Batches
    def _window_view(self, stacked):
        """`[rows, windows, timesteps, features]` view of `stacked`, if any."""
        layout = self._layout
        if stacked is None or layout.window_offsets is not None:
            return None
        # Filler rows (series -1) come last and are never read from the
        # view (`_full`), so the real rows alone must tile the block.
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

    def _gather(self, arrays, batch, dtype):
        """Copy the window of each row (lane) of batch `batch`."""
        layout = self._layout
        rows, windows = self._cells(batch)
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

    def _step_mask(self, rows, window):
        """`[rows, timesteps]` bool: steps that are real and owned by the window.

        With overlapping windows (`hop < timesteps`) a window owns only its
        last `hop` steps; the first window of a row owns all of its steps.
        """
        layout = self._layout
        real = np.arange(layout.timesteps) < layout.real_steps(rows, window)[..., None]
        window = np.asarray(window)[..., None]
        steps = np.arange(layout.timesteps)
        return real & ((window == 0) | (steps >= layout.timesteps - layout.hop))

    def batch(self, index: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Return batch `index` as `(x, y, sample_weight)` numpy arrays.

        `y` and `sample_weight` are `None` for a plan without targets. `x`
        (and `y`) are views of your data when the layout allows (equal
        lengths, no padding or filler rows), else fresh arrays.

        Example:

        >>> import numpy as np, keras_tbptt
        >>> series = np.arange(2 * 30, dtype="float32").reshape(2, 30, 1)
        >>> plan = keras_tbptt.naive_split(series, 10, series)
        >>> x, y, weight = plan.batch(1)  # the second chunk of both series
        >>> x.shape, x[:, 0, 0].tolist(), weight.shape
        ((2, 10, 1), [10.0, 40.0], (2, 10))
        """
        index = check_int(index, "index", minimum=0)
        if index >= len(self):
            raise IndexError(
                f"`index` must be < {len(self)} (the number of batches). "
                f"Received: index={index}"
            )
        return (self._batch_x(index), *self._batch_targets(index))

    def _full(self, rows, window):
        """Whether every row of the batch has this window (no filler, no gap)."""
        return (self._layout.row_windows[rows] > window).all()

    def _batch_x(self, index):
        rows, window = self._cells(index)
        if self._x_windows is not None and self._full(rows, window):
            return self._x_windows[rows, window]
        return self._gather(self._panel.arrays, index, self._panel.arrays[0].dtype)

    def _batch_targets(self, index):
        """`(y, sample_weight)` of batch `index`; `(None, None)` without targets."""
        if self._targets is None:
            return None, None
        rows, window = self._cells(index)
        weight = self._sample_weights(rows, window) * self.weight_scale
        if self._targets.per_step:
            if self._y_windows is not None and self._full(rows, window):
                y = self._y_windows[rows, window]
            else:
                y = self._gather(self._targets.arrays, index, self._targets.dtype)
            return y, weight
        return self._sequence_targets(rows), weight

    def _sequence_targets(self, rows):
        """Per-sequence targets of `rows` (a slice or indices): each row's
        series' target, zeros for filler rows."""
        series = self._layout.row_series[rows]
        y = self._targets.per_sequence[np.maximum(series, 0)]
        y[series < 0] = 0
        return y[:, 0] if self._targets.squeeze else y

    def _sample_weights(self, rows, windows):
        """Unscaled weights (0 or 1) of the samples at `(rows, windows)`, all
        at once: `[n, timesteps]` per step, `[n]` per sequence.

        What `_batch_targets` gives batch by batch, before `weight_scale`.
        """
        layout, targets = self._layout, self._targets
        if not targets.per_step:
            last = layout.row_windows[rows] - 1 == windows
            return (last & (layout.row_series[rows] >= 0)).astype(np.float32)
        weight = self._step_mask(rows, windows).astype(np.float32)
        if targets.observed is not None:  # NaN targets: weight 0
            weight *= self._gather_samples([self._observed_steps], rows, windows)[0][..., 0]
        return weight

    @cached_property
    def _observed_steps(self):
        """`_end_to_end` of the targets' observed masks (kept: `weight_scale`
        reads them block by block)."""
        return _end_to_end(self._targets.observed, None)

    def _sample_lengths(self, rows, windows):
        """Real steps of the samples at `(rows, windows)`: 0 for filler rows
        and rows that have run out of windows."""
        layout = self._layout
        has = (layout.row_series[rows] >= 0) & (windows < layout.row_windows[rows])
        return np.where(has, layout.real_steps(rows, windows), 0)

    def _gather_samples(self, sources, rows, windows):
        """The windows of the samples at `(rows, windows)` of each source,
        `[n, timesteps, ...]` each, gathered at once; `sources` are
        `_end_to_end(arrays, stacked)` results.

        `_gather` for many samples: a row that has run out of windows,
        filler rows and padding read zeros.
        """
        layout = self._layout
        series = np.maximum(layout.row_series[rows], 0)
        step = np.arange(layout.timesteps)
        valid = step < self._sample_lengths(rows, windows)[:, None]
        start = layout.row_start[rows] + layout.offset(rows, windows)
        gathered = []
        for flat, first in sources:
            values = flat[np.where(valid, (first[series] + start)[:, None] + step, 0)]
            values[~valid] = 0
            gathered.append(values)
        return gathered

    @cached_property
    def weight_scale(self) -> float:
        """The value of every nonzero sample weight (1.0 when nothing is
        left out): elements of the epoch / weighted elements.

        An element is a sample (per-sequence targets) or a step of a sample
        (per-step targets); the weighted ones are real steps of the
        windows that own them, with observed targets (per step), or the
        final window of each series (per sequence). Scaling the 0/1 weights
        by this makes Keras' default loss reduction
        (`"sum_over_batch_size"`) report, at the end of each epoch of `fit`
        and in `evaluate`, the mean loss over the weighted elements of the
        whole epoch (sum of weighted losses / sum of weights), however
        unevenly the weights fall on the batches: 12 chunks of which only
        the last carries a label report the loss of the labels, not a
        twelfth of it. It also makes each batch's gradient an unbiased
        estimate of that mean's gradient. Adam, RMSprop and the like do not
        depend on the scale; with plain SGD divide the learning rate by it
        to take the steps unscaled weights would take.

        Example:

        >>> import numpy as np, keras_tbptt
        >>> plan = keras_tbptt.naive_split(np.zeros((4, 120, 1)), 10, np.zeros(4))
        >>> plan.weight_scale  # 12 chunks per series, one labelled
        12.0
        >>> plan.sample_weight[:8].tolist()  # batches 0 and 1 carry no weight
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        """
        if self._targets is None:
            return 1.0
        weighted = float(self._unscaled_batch_weights.sum())
        per_sample = self.timesteps if self._targets.per_step else 1
        return self.n_samples * per_sample / weighted if weighted else 1.0

    @cached_property
    def _unscaled_batch_weights(self):
        """float64 `[batches]`: sum of each batch's unscaled weights."""
        rows, windows = self._sample_rows()
        per_sample = np.zeros(len(rows))
        block = max(1, 2**22 // self.timesteps)  # bounds the temporary masks
        for start in range(0, len(rows), block):
            part = slice(start, start + block)
            weights = self._sample_weights(rows[part], windows[part])
            per_sample[part] = weights.reshape(len(weights), -1).sum(axis=1)
        sizes = self._batch_rows()
        if not len(sizes):
            return per_sample
        return np.add.reduceat(per_sample, np.cumsum(sizes) - sizes)

    def masked_loss_factors(self) -> np.ndarray:
        """float `[batches]`: what each batch's weights are multiplied by for
        a model whose per-step output carries a Keras mask.

        Keras' default reduction divides a masked loss by the batch's
        unmasked steps, not by all of them; multiplying batch `b`'s weights
        by (its real steps / all its steps) restores the mean over the
        weighted steps of the epoch. Assumes the mask is the padding
        (`Embedding(mask_zero=True)` on `sentence_split` ids, `Masking` on
        zero-padded steps). `plan.dataset()` applies it when the model it
        meets has such an output.

        Example: series of 25 steps in padded chunks of 10; the last batch
        holds 5 real steps of 10.

        >>> import numpy as np, keras_tbptt
        >>> plan = keras_tbptt.naive_split(np.ones((2, 25, 1)), 10, remainder="pad")
        >>> plan.masked_loss_factors().tolist()
        [1.0, 1.0, 0.5]
        """
        rows, windows = self._sample_rows()
        real = self._sample_lengths(rows, windows).astype(np.float64)
        sizes = self._batch_rows()
        if not len(sizes):
            return real
        return np.add.reduceat(real, np.cumsum(sizes) - sizes) / (sizes * self.timesteps)

    @property
    def unweighted_batches(self) -> int:
        """Number of batches whose sample weights are all 0 (0 without targets).

        They only carry the state forward: per-sequence targets leave all
        but each series' last window unweighted. Wrap the optimizer in
        `keras_tbptt.SkipUnweightedBatches` so that they cost no update.

        Example: one label per series of 12 chunks.

        >>> import numpy as np, keras_tbptt
        >>> plan = keras_tbptt.naive_split(np.zeros((4, 120, 1)), 10, np.zeros(4))
        >>> plan.unweighted_batches, len(plan)
        (11, 12)
        """
        if self._targets is None:
            return 0
        return int((self._unscaled_batch_weights == 0).sum())

    def _batch_rows(self):
        """Rows (samples) of each batch: `batch_size`, but fewer in the last
        group of a stateless plan."""
        layout = self._layout
        if layout.packed:
            return np.full(len(self), layout.batch_size)
        left = len(layout.row_series) - layout.batch_group * layout.batch_size
        return np.minimum(left, layout.batch_size)

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]:
        """Iterate over all batches in order, as `(x, y, sample_weight)` (see
        `batch`).

        Example: two series of 20 steps in chunks of 5; batch `j` holds chunk
        `j` of both.

        >>> import numpy as np, keras_tbptt
        >>> plan = keras_tbptt.naive_split(np.arange(40.0).reshape(2, 20, 1), 5)
        >>> [x[:, 0, 0].tolist() for x, _, _ in plan.batches()]  # first step of each row
        [[0.0, 20.0], [5.0, 25.0], [10.0, 30.0], [15.0, 35.0]]
        """
        return (self.batch(i) for i in range(len(self)))

    def _stack(self, part):
        """Concatenate one part (0: x, 1: y, 2: sample_weight) of every batch."""
        if part == 0:
            if (
                self._x_windows is not None
                and self._x_windows.shape[1] == 1
                and len(self._x_windows) == len(self._layout.row_series)  # no filler
                and not self.packed
            ):
                return self._x_windows[:, 0]  # one window per row: plan order is row order
            return np.concatenate([self._batch_x(i) for i in range(len(self))])
        if self._targets is None:
            return None
        return np.concatenate([self._batch_targets(i)[part - 1] for i in range(len(self))])

    @property
    def x(self) -> np.ndarray:
        """Inputs `[samples, timesteps, features]` in plan order.

        A view when each row is one sample (e.g. `as_is`), otherwise a copy
        the size of the data: prefer `dataset()` or `batches()` for long
        series.

        Example: 4 series of 60 steps in chunks of 20, with per-step targets.

        >>> import numpy as np, keras_tbptt
        >>> data = np.zeros((4, 60, 1))
        >>> plan = keras_tbptt.naive_split(data, 20, data, batch_size=2)
        >>> plan.x.shape, plan.y.shape, plan.sample_weight.shape
        ((12, 20, 1), (12, 20, 1), (12, 20))
        """
        return self._stack(0)

    @property
    def y(self) -> np.ndarray | None:
        """Targets in plan order: `[samples, timesteps, target_features]`
        (per step) or `[samples, target_features]` (per sequence)."""
        return self._stack(1)

    @property
    def sample_weight(self) -> np.ndarray | None:
        """Weights in plan order: `[samples, timesteps]` (per step) or
        `[samples]` (per sequence).

        0 marks padding, filler rows, steps an earlier window already
        trained, missing (NaN) targets and, with per-sequence targets,
        every window but each series' last. The other weights all equal
        `weight_scale` (elements / weighted elements), so Keras' default
        loss reduction and weighted metrics report the mean over the
        weighted elements of the epoch: keep the default reduction
        (`"sum_over_batch_size"`), and pass metrics as `weighted_metrics`.
        """
        return self._stack(2)

    @property
    def positions(self) -> np.ndarray:
        layout = self._layout
        rows, windows = self._sample_rows()
        series = layout.row_series[rows].copy()
        missing = (series < 0) | (layout.row_windows[rows] <= windows)
        start = self._original_steps(
            rows[~missing],
            layout.row_start[rows[~missing]] + layout.offset(rows[~missing], windows[~missing]),
        )
        series[missing] = -1
        positions = np.full((len(rows), 2), -1, dtype=np.int64)
        positions[:, 0] = series
        positions[~missing, 1] = start
        return positions

    def _original_steps(self, rows, steps):
        """Map steps of the validated series to steps of the user's series."""
        if self._panel.steps is None:
            return steps
        kept = self._panel.steps
        offsets = np.concatenate([[0], np.cumsum([len(k) for k in kept])])
        return np.concatenate(kept)[offsets[self._layout.row_series[rows]] + steps]

    # ------------------------------------------------------------------
    # Back to the original layout
    def unsplit(
        self, outputs: ArrayLike
    ) -> np.ndarray | list[np.ndarray] | pd.DataFrame | pd.Series:
        """Map model outputs (in plan order) back to the original layout.

        Args:
            outputs: per-step outputs `[samples, timesteps, ...]` (from an
                LSTM with `return_sequences=True`) or per-sample outputs
                `[samples, ...]`, e.g. `model.predict(plan.dataset(), ...)`.

        Returns:
            Per-step outputs: one array per series of the original length
            (`[length, ...]`), in the input's layout: a single array for one
            series, `[n_series, length, ...]` for a 3-D input, a list for a
            list input, a DataFrame/Series with the original index for
            pandas input. Steps with no output (truncated, dropped NaN rows,
            never sampled) are NaN; padding and filler rows are dropped;
            overlapping windows (`random_windows`) are averaged. pandas
            rows come back in the caller's order, with the caller's index,
            even when the split sorted them by time (`time_col`, an
            unsorted DatetimeIndex).

            Per-sample outputs with per-sequence targets: `[n_series, ...]`,
            the output of each series' final window. Per-sample outputs with
            per-step targets land on the last step of each window.

        Example:

        >>> import numpy as np, keras_tbptt
        >>> series = np.arange(12.0)
        >>> plan = keras_tbptt.naive_split(series, 4, batch_size=1)
        >>> plan.unsplit(plan.x).ravel().tolist() == series.tolist()
        True
        """
        outputs = np.asarray(outputs)
        if outputs.ndim == 0 or outputs.shape[0] != self.n_samples:
            raise ValueError(
                "`outputs` must have one row per sample of the plan.\n"
                f"- Expected: shape ({self.n_samples}, ...)\n"
                f"- Received: shape={outputs.shape}"
            )
        per_step = outputs.ndim == 3 or (
            outputs.ndim == 2
            and outputs.shape[1] == self.timesteps
            and self.timesteps > 1
            and not self.per_sequence_targets
        )
        if outputs.ndim == 3 and outputs.shape[1] != self.timesteps:
            # Fewer steps would fail in numpy's indexing, more would be cut
            # silently: neither is a plan's output.
            raise ValueError(
                "Per-step `outputs` must have one row per sample and one step "
                "per timestep of the plan (a model with "
                "return_sequences=True over the plan's samples).\n"
                f"- Expected: shape ({self.n_samples}, {self.timesteps}, ...)\n"
                f"- Received: shape={outputs.shape}"
            )
        layout = self._layout
        rows, windows = self._sample_rows()
        masks = self._step_mask(rows, windows)
        series = layout.row_series[rows]
        if self.per_sequence_targets and not per_step:
            last = (layout.row_windows[rows] - 1 == windows) & (series >= 0)
            return self._format_per_series(
                _mean_at(series[last], outputs[last], self.n_series)
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
        steps = self._original_steps(
            rows, layout.row_start[rows] + layout.offset(rows, windows[sample]) + step
        )
        lengths = self._panel.original_lengths
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        result = _mean_at(offsets[series[sample]] + steps, values, int(offsets[-1]))
        return self._format_per_step(np.split(result, offsets[1:-1]), trailing)

    def _output_names(self, trailing):
        """Column labels for outputs of shape `[..., *trailing]`, and whether
        one column comes back as a pandas Series.

        The names of pandas targets (or target column names) when the width
        matches; for a plan without targets, the names of the pandas series.
        """
        width = int(np.prod(trailing)) if trailing else 1
        targets, panel = self._targets, self._panel
        if targets is not None:
            if targets.columns is not None and len(targets.columns) == width:
                return list(targets.columns), targets.one_column and width == 1
        elif panel.columns is not None and len(panel.columns) == width:
            return list(panel.columns), panel.one_column and width == 1
        return None, not trailing

    def _format_per_step(self, arrays, trailing):
        panel = self._panel
        if panel.kind == "3d":
            return np.stack(arrays)
        if panel.kind in ("1d", "2d"):
            return arrays[0]
        if panel.kind == "list":
            return arrays
        columns, one_column = self._output_names(trailing)

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

    def _format_per_series(self, values):
        if self._panel.ids is not None:
            index = pd.Index(self._panel.ids, name=self._panel.id_name)
            columns, one_column = self._output_names(values.shape[1:])
            if values.ndim == 1 or one_column:
                name = None if columns is None else columns[0]
                return pd.Series(values.reshape(len(values)), index=index, name=name)
            return pd.DataFrame(values, index=index, columns=columns)
        return values

    # ------------------------------------------------------------------
    # Train / validation by time
    def validation_split(self, fraction: float) -> tuple[SplitPlan, SplitPlan]:
        """Split every series by time into a training and a validation plan.

        The validation plan holds the last `fraction` of every series (rounded
        to whole windows), the training plan the rest, both with this plan's
        settings. This is the stateful-safe replacement for
        `fit(validation_split=...)`, which takes the last samples of the
        batch order and so breaks the layout.

        Returns:
            `(train_plan, validation_plan)`.

        Example:

        >>> import numpy as np, keras_tbptt
        >>> plan = keras_tbptt.naive_split(np.zeros((2, 1000, 1)), 100)
        >>> train, val = plan.validation_split(0.2)
        >>> len(train), len(val)
        (8, 2)
        """
        if isinstance(fraction, bool) or not isinstance(fraction, (float, int)) or not (
            0 < fraction < 1
        ):
            raise ValueError(
                "`fraction` must be a number strictly between 0 and 1. "
                f"Received: fraction={fraction!r}"
            )
        if self.per_sequence_targets:
            raise ValueError(
                "validation_split() splits every series by time, which leaves "
                "per-sequence targets without their series end. Split the "
                "series themselves into training and validation sets instead."
            )
        series, start, length = self._segments
        unit = self._layout.hop * self._layout.streams
        held = np.maximum(unit, np.round(fraction * length / unit).astype(np.int64) * unit)
        if (held >= length).any():
            raise ValueError(
                f"`fraction`={fraction} leaves no training steps for series of "
                f"{int(length.min())} steps with windows of {unit} steps. Use a "
                "smaller fraction or shorter windows."
            )
        share = held.sum() / length.sum()
        if abs(share - fraction) > 0.25 * fraction:
            warnings.warn(
                f"validation_split(fraction={fraction}) holds out "
                f"{share:.0%} of the steps: the held-out part is rounded to "
                f"whole windows of {unit} steps"
                + (f" ({self._layout.streams} streams of {self._layout.hop})"
                   if self._layout.streams > 1 else "")
                + f" in series of {int(length.min())}"
                + (f" to {int(length.max())}" if length.max() != length.min() else "")
                + " steps. Choose a fraction near a multiple of "
                f"{unit / length.mean():.3g}, or shorter windows.",
                stacklevel=2,
            )
        train = self._rebuild((series, start, length - held), 1 - fraction)
        validation = self._rebuild((series, start + length - held, held), fraction)
        for part in (train, validation):  # keep why timesteps was chosen
            part.suggestion, part.timesteps_from = self.suggestion, self.timesteps_from
        return train, validation

    # ------------------------------------------------------------------
    # Keras
    def dataset(self, reset_flags: bool | None = None) -> PlanDataset:
        """A `keras.utils.PyDataset` yielding the batches lazily, in order.

        Args:
            reset_flags: `True` to send each batch's per-row reset flags
                with it (batches `((x, flags), y, sample_weight)`), for a
                model wrapped by `keras_tbptt.with_reset_flags`: resets then
                run inside the graph, with no callbacks, under
                `steps_per_execution > 1` too. `False`: batches
                `(x, y, sample_weight)`, reset by `callbacks()`. `None`
                (default): `True` for packed plans, else `False`.

        A stateful plan's dataset refuses `fit(shuffle=True)` (Keras'
        default for a finite dataset: pass `shuffle=False`) before Keras
        reads a batch; a stateless plan's batches are shuffled as Keras
        would shuffle them. When `fit`, `evaluate` or `predict`
        takes it, it checks the model and the callbacks against the plan
        before any batch runs (see `keras_tbptt.PlanDataset`), and warns
        when a stateful plan runs without `callbacks()`.

        Returns:
            A `keras_tbptt.PlanDataset` of `len(plan)` batches.

        Example:

        >>> import numpy as np, keras, keras_tbptt
        >>> plan = keras_tbptt.naive_split(np.zeros((4, 60, 1)), 20, np.zeros((4, 60, 1)))
        >>> data = plan.dataset()
        >>> len(data), [a.shape for a in data[0]]  # (x, y, sample_weight)
        (3, [(4, 20, 1), (4, 20, 1), (4, 20)])
        >>> model = keras.Sequential([
        ...     keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 1)),
        ...     keras_tbptt.TBPTTLSTM(2, stateful=True, return_sequences=True),
        ... ])
        >>> model.compile(loss="mse")
        >>> history = model.fit(data, callbacks=plan.callbacks(), shuffle=False, verbose=0)
        >>> (x, flags), y, weight = plan.dataset(reset_flags=True)[0]
        >>> flags.tolist()  # batch 0: every row starts from zero states
        [1.0, 1.0, 1.0, 1.0]
        """
        from keras_tbptt.training.dataset import PlanDataset

        return PlanDataset(self, reset_flags=reset_flags)

    def callbacks(self, validation: SplitPlan | None = None) -> list[ResetStates]:
        """The state-reset callbacks for `fit`, `evaluate` and `predict`.

        The callback also checks the model against this plan before any
        batch runs: targets for `fit`/`evaluate`, the batch size, the
        output shape against per-step or per-sequence targets, and
        `layer_kwargs` on every stateful layer (see `keras_tbptt.ResetStates`).
        The callback binds to the model of each call: the same list passed
        to a second model's `fit` checks and resets that model (each Keras
        call binds its callbacks afresh).

        Args:
            validation: the validation plan passed as `validation_data` to
                `fit`, if any; its reset schedule is used during validation
                and `evaluate`.

        Returns:
            A list with one `keras_tbptt.ResetStates(plan=self,
            validation=validation)`.

        Example:

        >>> import numpy as np, keras_tbptt
        >>> plan = keras_tbptt.naive_split(np.zeros((4, 100, 1)), 10, np.zeros((4, 100, 1)))
        >>> train, val = plan.validation_split(0.2)
        >>> [callback] = train.callbacks(validation=val)
        >>> len(callback.resets), len(callback.test_resets)  # batches of each
        (8, 2)
        """
        from keras_tbptt.training.callbacks import ResetStates

        for plan in (self, validation):
            if getattr(plan, "packed", False):
                raise ValueError(
                    "A packed plan resets each lane where its series changes, "
                    "within a batch, which callbacks (resetting whole batches "
                    "between them) cannot do. Feed plan.dataset(reset_flags=True) "
                    "to a model wrapped by keras_tbptt.with_reset_flags(model), "
                    "with no callbacks."
                )
        if validation is not None and not isinstance(validation, SplitPlan):
            raise TypeError(
                "`validation` must be a SplitPlan (e.g. from "
                f"plan.validation_split()). Received: {type(validation).__name__}"
            )
        return [ResetStates(plan=self, validation=validation)]


def _end_to_end(arrays, stacked):
    """`(steps, first)`: all series end to end (a view of `stacked` when
    given), and the index where each series starts."""
    if stacked is not None:
        n, length = stacked.shape[:2]
        return stacked.reshape((n * length,) + stacked.shape[2:]), np.arange(n) * length
    lengths = np.array([len(array) for array in arrays], np.int64)
    return np.concatenate(list(arrays)), np.cumsum(lengths) - lengths


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
