"""The stateful batch layout shared by every scheme (numpy only).

A plan is made of *rows*: contiguous segments `(series, start, length)` of
the validated series. A row is cut into windows of `timesteps` steps that
start every `hop` steps (`hop == timesteps` for plain chunks). Rows are taken
in groups of `batch_size`; batch `j` of a group holds window `j` of each row
of the group, so row `i` of batch `j + 1` continues row `i` of batch `j`, and
states are reset when a group starts. Windows may also vary in length
(`build_window_layout`: one sentence each), zero-padded to `timesteps`.

A *packed* layout (`pack=True`) has no groups: each row of a batch is a
lane that runs through several rows back to back, and the row and window
of every cell are stored (`cell_row`, `cell_window`, `[batches,
batch_size]`); a lane's state is reset where its row changes.
"""

import heapq
import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass
class Layout:
    timesteps: int
    hop: int
    batch_size: int
    stateful: bool
    streams: int
    row_series: np.ndarray  # [rows]; -1 marks a filler row
    row_start: np.ndarray  # [rows]
    row_length: np.ndarray  # [rows] real steps covered by the row
    row_windows: np.ndarray  # [rows] number of windows of the row
    # [groups] batches of each group (its rows' most windows); None when
    # packed. Batch -> (group, window) is computed, not stored: one_step has
    # a batch per step, and two int64 a batch would cost more than the data.
    group_windows: np.ndarray
    uniform_rows: bool  # rows tile a [rows, length] block with no padding
    # Windows of varying length (sentences): offset from the row start and
    # real steps of window j of row i, [rows, most windows]; None when
    # windows start every `hop` steps.
    window_offsets: np.ndarray = None
    window_lengths: np.ndarray = None
    # Packed layouts: row and window of every cell, [batches, batch_size].
    # Cells after a lane's last row hold a filler row (series -1, no
    # windows) at window 0.
    cell_row: np.ndarray = None
    cell_window: np.ndarray = None

    @property
    def packed(self):
        return self.cell_row is not None

    @property
    def n_batches(self):
        if self.cell_row is not None:
            return len(self.cell_row)
        return int(self.group_windows.sum())

    @cached_property
    def _group_first(self):
        """`[groups]` first batch of each group."""
        return np.cumsum(self.group_windows) - self.group_windows

    @property
    def batch_group(self):
        """`[batches]` group of each batch (made on demand)."""
        return np.repeat(np.arange(len(self.group_windows)), self.group_windows)

    @property
    def batch_window(self):
        """`[batches]` window of each batch within its group (made on demand)."""
        return np.arange(self.n_batches) - np.repeat(self._group_first, self.group_windows)

    def batch_cells(self, batch):
        """`(rows, windows)` of batch `batch`: the one way to read a batch.

        Grouped layouts: a slice of rows and one window (a slice keeps views
        views); packed layouts: two int arrays `[batch_size]`.
        """
        if self.cell_row is not None:
            return self.cell_row[batch], self.cell_window[batch]
        group = int(np.searchsorted(self._group_first, batch, side="right")) - 1
        return self.group_rows(group), batch - int(self._group_first[group])

    def sample_cells(self):
        """`(rows, windows)` int arrays `[samples]` of every sample, in plan order."""
        if self.cell_row is not None:
            return self.cell_row.ravel(), self.cell_window.ravel()
        first_row = self.batch_group * self.batch_size
        sizes = np.minimum(self.batch_size, len(self.row_series) - first_row)
        within = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        return np.repeat(first_row, sizes) + within, np.repeat(self.batch_window, sizes)

    def resets(self):
        """bool `[batches]`: every row of the batch starts from a reset state."""
        if self.cell_row is not None:
            return (self.cell_window == 0).all(axis=1)
        resets = np.zeros(self.n_batches, dtype=bool)
        resets[self._group_first[self.group_windows > 0]] = True
        return resets

    def offset(self, rows, windows):
        """Offset from the row start of window `windows` of `rows`."""
        if self.window_offsets is None:
            return np.asarray(windows) * self.hop
        return self.window_offsets[rows, windows]

    def real_steps(self, rows, windows):
        """Real (unpadded) steps of window `windows` of `rows`, 0 to timesteps."""
        if self.window_lengths is None:
            left = self.row_length[rows] - np.asarray(windows) * self.hop
            return np.clip(left, 0, self.timesteps)
        return self.window_lengths[rows, windows]

    def group_rows(self, group):
        start = group * self.batch_size
        return slice(start, min(start + self.batch_size, len(self.row_series)))


def factors(n):
    """Divisors of `n` in increasing order."""
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _windows_needed(lengths, timesteps, hop, remainder):
    """Windows that cover each of `lengths`, per the remainder policy."""
    full = np.where(lengths >= timesteps, (lengths - timesteps) // hop + 1, 0)
    covered = np.where(full > 0, (full - 1) * hop + timesteps, 0)
    return full + ((covered < lengths) & (remainder == "pad"))


def _split_streams(starts, lengths, streams, timesteps, hop, remainder):
    """Cut each segment into `streams` contiguous segments."""
    out_start, out_length, dropped = [], [], 0
    for start, length in zip(starts, lengths):
        if remainder == "drop":
            per_stream = length // streams
            if per_stream >= timesteps:
                per_stream -= (per_stream - timesteps) % hop
            sizes = np.full(streams, per_stream)
            dropped += length - per_stream * streams
        else:
            # Streams differ by at most one step (np.array_split sizes).
            sizes = np.full(streams, length // streams)
            sizes[: length % streams] += 1
        offsets = start + np.concatenate([[0], np.cumsum(sizes)[:-1]])
        out_start.append(offsets)
        out_length.append(sizes)
    return np.concatenate(out_start), np.concatenate(out_length), dropped


def _remainder_error(lengths, timesteps, hop, streams):
    shown = sorted({int(n) for n in lengths})
    rows = "series" if streams == 1 else f"streams (each series cut in {streams})"
    if hop == timesteps:
        need = f"a length that is a multiple of timesteps={timesteps}"
        hint = "; ".join(f"{n} has factors {factors(n)}" for n in shown[:3])
    else:
        need = f"k2={timesteps} steps or more, plus a multiple of k1={hop}"
        hint = f"lengths of the form {timesteps} + m*{hop}"
    return ValueError(
        f"The {rows} do not split evenly: each needs {need}.\n"
        f"- Received lengths: {shown[:3]}{' ...' if len(shown) > 3 else ''} "
        f"({hint})\n"
        "Choose timesteps to fit the length, or pass remainder='pad' "
        "(zero-pad the last window, sample_weight 0) or remainder='drop' "
        "(drop the incomplete tail, with a warning)."
    )


def build_layout(
    segments,
    *,
    timesteps,
    hop=None,
    batch_size,
    stateful=True,
    streams=1,
    remainder="error",
    pack=False,
):
    """Compute the batch layout of `segments`.

    Args:
        segments: `(series, start, length)` arrays: the parts of the
            validated series to cut into rows (streams) and windows.
        pack: pack the rows into `batch_size` lanes (`_pack_rows`) instead
            of groups; needs `stateful`.
    """
    if pack and not stateful:
        raise ValueError("`pack=True` needs a stateful layout.")
    hop = timesteps if hop is None else hop
    series, starts, lengths = (np.asarray(a, dtype=np.int64) for a in segments)
    dropped = 0
    if streams > 1:
        origin = np.repeat(series, streams)
        starts, lengths, dropped = _split_streams(
            starts, lengths, streams, timesteps, hop, remainder
        )
        series = origin
        if (lengths == 0).any():
            raise ValueError(
                f"`streams`={streams} leaves empty streams: the shortest "
                f"segment has {int(lengths.min())} steps. Use fewer streams."
            )
    windows = _windows_needed(lengths, timesteps, hop, remainder).astype(np.int64)
    covered = np.where(windows > 0, (windows - 1) * hop + timesteps, 0)
    exact = covered == lengths
    if remainder == "error" and not exact.all():
        raise _remainder_error(lengths[~exact], timesteps, hop, streams)
    if remainder == "drop":
        if (windows == 0).any():
            raise ValueError(
                f"remainder='drop' would drop whole series: "
                f"{int((windows == 0).sum())} rows are shorter than "
                f"timesteps={timesteps}. Use remainder='pad' or a smaller "
                "timesteps."
            )
        dropped += int((lengths - covered).sum())
        lengths = np.minimum(lengths, covered)
        if dropped:
            warnings.warn(
                f"remainder='drop' dropped {dropped} trailing time steps that "
                f"do not fill a window of {timesteps} steps.",
                stacklevel=3,
            )
    n_rows = len(series)
    uniform = bool((covered == lengths).all() and len(set(lengths.tolist())) == 1)
    cell_row = cell_window = group_windows = None
    if pack:
        rows, cell_row, cell_window = _pack_rows(
            (series, starts, lengths, windows), batch_size
        )
    else:
        rows, group_windows = _group_rows(
            (series, starts, lengths, windows), batch_size, stateful
        )
    return _layout(
        rows,
        timesteps=timesteps,
        hop=hop,
        batch_size=batch_size,
        stateful=pack or stateful,  # packed lanes always carry state
        streams=streams,
        group_windows=group_windows,
        uniform_rows=uniform and len(rows[0]) == n_rows,
        cell_row=cell_row,
        cell_window=cell_window,
    )


def _layout(rows, **fields):
    """A `Layout` of `rows`, the `(series, start, length, windows)` arrays."""
    series, starts, lengths, windows = rows
    return Layout(
        row_series=series,
        row_start=starts,
        row_length=lengths,
        row_windows=windows,
        **fields,
    )


def _group_rows(rows, batch_size, stateful):
    """Complete the last group with filler rows; count each group's batches.

    `rows` is `(series, start, length, windows)`; filler rows have series
    -1, no steps and no windows (weight 0 everywhere).
    """
    series, starts, lengths, windows = rows
    if stateful and len(series) % batch_size:
        fill = batch_size - len(series) % batch_size
        series = np.concatenate([series, np.full(fill, -1)])
        starts = np.concatenate([starts, np.zeros(fill, np.int64)])
        lengths = np.concatenate([lengths, np.zeros(fill, np.int64)])
        windows = np.concatenate([windows, np.zeros(fill, np.int64)])
    n_groups = -(-len(series) // batch_size)
    per_group = np.maximum.reduceat(windows, np.arange(n_groups) * batch_size)
    return (series, starts, lengths, windows), per_group


def _pack_rows(rows, batch_size):
    """Pack rows into `batch_size` lanes; `(rows, cell_row, cell_window)`.

    Longest-processing-time greedy: rows sorted by windows, most first
    (stable), each to the lane with the fewest windows so far (ties: the
    lowest lane); inside a lane rows run back to back in that order. There
    are as many batches as the fullest lane has windows; the cells after a
    lane's last row point to one filler row (series -1, no windows),
    appended to `rows` when some lane needs it.
    """
    series, starts, lengths, windows = rows
    n_rows = len(series)
    lane_of = np.empty(n_rows, np.int64)
    first_batch = np.empty(n_rows, np.int64)
    loads = [(0, lane) for lane in range(batch_size)]  # a heap: (windows, lane)
    counts = windows.tolist()
    for row in np.argsort(-windows, kind="stable").tolist():
        used, lane = heapq.heappop(loads)
        lane_of[row], first_batch[row] = lane, used
        heapq.heappush(loads, (used + counts[row], lane))
    n_batches = max(used for used, _ in loads)
    filler = n_rows  # the index the filler row gets if some lane needs it
    cell_row = np.full((n_batches, batch_size), filler, np.int64)
    cell_window = np.zeros((n_batches, batch_size), np.int64)
    owner = np.repeat(np.arange(n_rows), windows)
    window = np.arange(len(owner)) - np.repeat(np.cumsum(windows) - windows, windows)
    cell_row[first_batch[owner] + window, lane_of[owner]] = owner
    cell_window[first_batch[owner] + window, lane_of[owner]] = window
    if len(owner) < cell_row.size:
        zero = np.zeros(1, np.int64)
        series, starts, lengths, windows = (
            np.concatenate([series, [-1]]),
            np.concatenate([starts, zero]),
            np.concatenate([lengths, zero]),
            np.concatenate([windows, zero]),
        )
    return (series, starts, lengths, windows), cell_row, cell_window


def build_window_layout(series, offsets, lengths, *, timesteps, batch_size):
    """A stateful layout of rows cut into windows of varying length.

    Row `i` is the whole of series `series[i]`; its window `j` covers the
    `lengths[i][j]` steps from step `offsets[i][j]` (each at most
    `timesteps`; zero padding fills the rest). Windows must tile the row in
    order. Grouping, filler rows and resets are those of `build_layout`.

    Args:
        series: `[rows]` series index of each row.
        offsets, lengths: one int array per row: where each window starts
            and how many real steps it has.
    """
    series = np.asarray(series, dtype=np.int64)
    windows = np.array([len(o) for o in offsets], dtype=np.int64)
    n_rows, most = len(series), int(windows.max())
    row_length = np.array([int(np.sum(n)) for n in lengths], dtype=np.int64)
    rows, group_windows = _group_rows(
        (series, np.zeros(n_rows, np.int64), row_length, windows),
        batch_size,
        stateful=True,
    )
    # Filler rows and missing windows keep offset 0 and 0 real steps.
    window_offsets = np.zeros((len(rows[0]), most), np.int64)
    window_lengths = np.zeros((len(rows[0]), most), np.int64)
    for i, (o, n) in enumerate(zip(offsets, lengths)):
        window_offsets[i, : len(o)] = o
        window_lengths[i, : len(n)] = n
    return _layout(
        rows,
        timesteps=timesteps,
        hop=timesteps,
        batch_size=batch_size,
        stateful=True,
        streams=1,
        group_windows=group_windows,
        uniform_rows=False,
        window_offsets=window_offsets,
        window_lengths=window_lengths,
    )


def split_by_time(segments, layout, fraction, per_sequence_targets):
    """The segments of `SplitPlan.validation_split(fraction)`: `(train,
    validation)`, each `(series, start, length)`; the last `fraction` of
    every segment, rounded to whole windows of every stream, is held out.

    Raises for a `fraction` outside (0, 1), per-sequence targets and a
    fraction that leaves no training steps; warns when rounding moves the
    held-out share far from `fraction`.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (float, int)) or not (
        0 < fraction < 1
    ):
        raise ValueError(
            "`fraction` must be a number strictly between 0 and 1. "
            f"Received: fraction={fraction!r}"
        )
    if per_sequence_targets:
        raise ValueError(
            "validation_split() splits every series by time, which leaves "
            "per-sequence targets without their series end. Split the "
            "series themselves into training and validation sets instead."
        )
    series, start, length = segments
    unit = layout.hop * layout.streams
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
            + (f" ({layout.streams} streams of {layout.hop})"
               if layout.streams > 1 else "")
            + f" in series of {int(length.min())}"
            + (f" to {int(length.max())}" if length.max() != length.min() else "")
            + " steps. Choose a fraction near a multiple of "
            f"{unit / length.mean():.3g}, or shorter windows.",
            stacklevel=3,  # the caller of SplitPlan.validation_split
        )
    return (series, start, length - held), (series, start + length - held, held)
