"""The stateful batch layout shared by every scheme (numpy only).

A plan is made of *rows*: contiguous segments `(series, start, length)` of
the validated series. A row is cut into windows of `timesteps` steps that
start every `hop` steps (`hop == timesteps` for plain chunks). Rows are taken
in groups of `batch_size`; batch `j` of a group holds window `j` of each row
of the group, so row `i` of batch `j + 1` continues row `i` of batch `j`, and
states are reset when a group starts. Windows may also vary in length
(`build_window_layout`: one sentence each), zero-padded to `timesteps`.
"""

import warnings
from dataclasses import dataclass

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
    batch_group: np.ndarray  # [batches]
    batch_window: np.ndarray  # [batches]
    uniform_rows: bool  # rows tile a [rows, length] block with no padding
    # Windows of varying length (sentences): offset from the row start and
    # real steps of window j of row i, [rows, most windows]; None when
    # windows start every `hop` steps.
    window_offsets: np.ndarray = None
    window_lengths: np.ndarray = None

    @property
    def n_batches(self):
        return len(self.batch_group)

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
):
    """Compute the batch layout of `segments`.

    Args:
        segments: `(series, start, length)` arrays: the parts of the
            validated series to cut into rows (streams) and windows.
    """
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
    rows, batch_group, batch_window = _group_rows(
        (series, starts, lengths, windows), batch_size, stateful
    )
    return Layout(
        timesteps=timesteps,
        hop=hop,
        batch_size=batch_size,
        stateful=stateful,
        streams=streams,
        row_series=rows[0],
        row_start=rows[1],
        row_length=rows[2],
        row_windows=rows[3],
        batch_group=batch_group,
        batch_window=batch_window,
        uniform_rows=uniform and len(rows[0]) == n_rows,
    )


def _group_rows(rows, batch_size, stateful):
    """Complete the last group with filler rows; batch -> (group, window).

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
    batch_group = np.repeat(np.arange(n_groups), per_group)
    batch_window = np.concatenate([np.arange(c) for c in per_group])
    return (series, starts, lengths, windows), batch_group, batch_window


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
    rows, batch_group, batch_window = _group_rows(
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
    return Layout(
        timesteps=timesteps,
        hop=timesteps,
        batch_size=batch_size,
        stateful=True,
        streams=1,
        row_series=rows[0],
        row_start=rows[1],
        row_length=rows[2],
        row_windows=rows[3],
        batch_group=batch_group,
        batch_window=batch_window,
        uniform_rows=False,
        window_offsets=window_offsets,
        window_lengths=window_lengths,
    )
