"""`plot_layout`: draw where each sample of a plan comes from."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from keras_tbptt.core.batches import batches_of
from keras_tbptt.core.unsplit import original_steps

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from keras_tbptt.core.plan import SplitPlan

# Alpha of a fully weighted step and of an unweighted step of a partly
# weighted chunk (a chunk is shaded between them by its weighted share).
_FILLED, _LIGHT = 0.8, 0.1
_HATCH = "////"
# Box labels are drawn only when there is room for them.
_MAX_LABELLED_BOXES_PER_LANE = 14
_MAX_LABELLED_BATCHES = 10


# Below this width (inches) the key and the legend go on lines of their own.
_NARROW = 10.0


def plot_layout(
    plan: SplitPlan, *, max_batches: int = 24, max_rows: int = 16, width: float = 12.0
) -> Figure:
    """Draw a plan's layout: samples in their series, and the batches.

    Left panel: every drawn sample on its series' time axis (dates when the
    series has a DatetimeIndex), its weights drawn as they are:

    - filled: steps with `sample_weight` > 0 (whatever the value: only
      whether a step counts is drawn); without targets, the steps each
      window owns (those targets would weigh);
    - shaded: a partly weighted chunk (padding, context that an earlier,
      overlapping window already trained, NaN targets), lighter the fewer
      of its steps are weighted, the share written in its label when
      there is room;
    - hatched, unfilled: a chunk with no weight at all (per-sequence
      targets weigh only the last chunk of each series).

    The legend at the bottom says so. Overlapping windows are stacked in
    sub-lanes. A red tick marks where a row of the layout (a series, or a
    stream of it) starts from a reset state. Right panel: the grid of
    batches (columns) and rows Keras sees, coloured by series (hatched:
    weight 0), each box naming `s<series>@<start step>` when there is room
    (grey: filler rows), with a dashed red line where states are reset. A
    packed plan (`pack=True`) draws its lanes instead, with a red tick
    before each cell where that lane's series changes (`plan.reset_flags`).
    When the plan is larger than `max_batches` x `max_rows`, only its start
    is drawn and the figure title says how much.

    Args:
        plan: a `SplitPlan`.
        max_batches: draw at most this many batches (default 24).
        max_rows: draw at most this many rows per batch (default 16).
        width: the figure's width in inches (default 12; at least 5). Below
            10 inches, e.g. `width=7` for a notebook or a page column, the
            key and the legend are stacked on lines of their own.

    Returns:
        The matplotlib `Figure`.

    Example:

    >>> import numpy as np, keras_tbptt
    >>> plan = keras_tbptt.naive_split(np.zeros((3, 60, 1)), 20, batch_size=2)
    >>> figure = keras_tbptt.plot_layout(plan)
    >>> [axis.get_title() for axis in figure.axes]
    ['samples in their series', 'batches (dashed red: reset before)']
    >>> figure.texts[0].get_text()  # the whole plan fits: nothing left out
    'naive_split: 6 batches of 2 rows, all drawn'
    >>> [t.get_text().split(":")[0] for t in figure.legends[0].get_texts()]
    ['weighted steps', 'partly weighted chunk', 'weight 0']
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    from keras_tbptt.core.plan import SplitPlan

    if not isinstance(plan, SplitPlan):
        raise TypeError(f"`plan` must be a SplitPlan. Received: {type(plan).__name__}")
    for name, value in (("max_batches", max_batches), ("max_rows", max_rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width >= 5:
        raise ValueError(f"`width` must be a number of inches >= 5. Received: width={width!r}")
    narrow = width < _NARROW
    batches = batches_of(plan)
    layout, panel = batches.layout, batches.panel
    positions, size = plan.positions, plan.batch_size
    n_batches, n_rows = min(len(plan), max_batches), min(size, max_rows)
    rows, windows = batches.sample_cells
    real_steps = layout.real_steps(rows, windows)
    drawn = np.arange(n_batches * size)
    # A plan that is not stateful may end with a smaller batch.
    drawn = drawn[(drawn % size < n_rows) & (drawn < len(rows))]
    weighted, share = _weighted_steps(plan, n_batches, rows, windows, real_steps)
    colors = plt.cm.tab10.colors
    series_shown = sorted({int(s) for s in positions[drawn, 0] if s >= 0})
    lane = {s: i for i, s in enumerate(series_shown)}
    # Overlapping windows (hop < timesteps) are stacked in sub-lanes.
    depth = min(4, -(-layout.timesteps // layout.hop))
    lanes = max(len(series_shown), 1)
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(width, (2.4 if narrow else 1.6) + min(0.4 * max(lanes, n_rows), 9)),
        gridspec_kw={"width_ratios": [1.3, 1]},
    )
    per_lane = {}
    for sample in drawn:
        series = positions[sample, 0]
        if series >= 0:
            per_lane[series] = per_lane.get(series, 0) + 1
    label_left = max(per_lane.values(), default=0) <= _MAX_LABELLED_BOXES_PER_LANE and lanes <= 24
    label_right = n_batches <= _MAX_LABELLED_BATCHES * width / 12 and n_rows <= 16
    height = 0.8 / depth
    for sample in drawn:
        batch, row = divmod(int(sample), size)
        series, start = (int(v) for v in positions[sample])
        color = "lightgrey" if series < 0 else colors[series % 10]
        unweighted = series >= 0 and share[sample] == 0
        right.add_patch(Rectangle((batch - 0.45, row - 0.4), 0.9, 0.8,
                                  fc=color, ec="black", lw=0.5,
                                  alpha=0.35 if unweighted else 0.7,
                                  hatch=_HATCH if unweighted else None))
        if label_right:
            right.text(batch, row, "filler" if series < 0 else f"s{series}@{start}",
                       ha="center", va="center", fontsize=6)
        if series < 0:
            continue
        top = lane[series] - 0.4 + (windows[sample] % depth) * height
        span = max(int(real_steps[sample]), 1)
        color = colors[batch % 10]
        if share[sample] == 0:  # no weight at all: hatched, unfilled
            left.add_patch(Rectangle((start, top), span, height, fc="none", ec=color,
                                     lw=0.8, hatch=_HATCH))
        else:  # shaded by the share of weighted steps
            left.add_patch(Rectangle((start, top), span, height, fc=color, ec="black",
                                     lw=0.5, alpha=_LIGHT + (_FILLED - _LIGHT) * share[sample]))
        for first, stop in _runs(weighted[sample]):  # the steps that count
            left.add_patch(Rectangle((start + first, top), stop - first, height, fc=color,
                                     ec="black", lw=0.5, alpha=_FILLED, gid="weighted"))
        if label_left:
            partial = f" {share[sample]:.0%}" if 0 < share[sample] < 1 else ""
            left.text(start + span / 2, top + height / 2, f"b{batch}.r{row}{partial}",
                      ha="center", va="center", fontsize=6 if depth == 1 else 5)
    # Where each row of the layout (a series or a stream) starts: reset state.
    first_rows = np.array([r for r in np.unique(rows[drawn]) if layout.row_series[r] in lane],
                          dtype=np.int64)
    starts = zip(layout.row_series[first_rows].tolist(),
                 original_steps(panel, layout, first_rows, layout.row_start[first_rows]).tolist())
    for series, start in starts:
        left.plot([start, start], [lane[series] - 0.48, lane[series] + 0.48],
                  color="red", linewidth=1.5, gid="reset")
    if plan.packed:  # lanes reset one by one: a tick where a lane's series changes
        flags = plan.reset_flags
        for sample in drawn:
            if flags[sample] and positions[sample, 0] >= 0:
                batch, row = divmod(int(sample), size)
                right.plot([batch - 0.5, batch - 0.5], [row - 0.45, row + 0.45],
                           color="red", linewidth=2, gid="lane_reset")
    else:
        for batch in np.flatnonzero(plan.resets[:n_batches]):
            right.axvline(batch - 0.5, color="red", linestyle="--", linewidth=1.5)
    real = positions[drawn]
    real = real[real[:, 0] >= 0]
    left.set(xlim=(0, max(real[:, 1].max() + plan.timesteps, 1) if len(real) else 1),
             ylim=(lanes - 0.4, -0.6), yticks=range(len(series_shown)),
             yticklabels=[_series_label(panel, s) for s in series_shown],
             xlabel="time step", ylabel="series", title="samples in their series")
    dates = _shared_dates(panel, series_shown)
    if dates is not None:
        left.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        left.xaxis.set_major_formatter(FuncFormatter(
            lambda value, _: str(dates[int(value)].date()) if 0 <= value < len(dates) else ""))
        left.set_xlabel("time")
    title = ("packed lanes (red: lane resets before)" if plan.packed
             else "batches (dashed red: reset before)")
    right.set(xlim=(-0.6, n_batches - 0.4), ylim=(n_rows - 0.4, -0.6), xlabel="batch",
              ylabel="lane" if plan.packed else "row", title=title)
    for axis in (right.xaxis, right.yaxis):
        axis.set_major_locator(MaxNLocator(12, integer=True))
    for axis in (left, right):
        axis.tick_params(labelsize=7)
        if narrow:
            axis.title.set_fontsize(9)
            axis.xaxis.label.set_fontsize(8)
            axis.yaxis.label.set_fontsize(8)
    what = "sample_weight > 0" if batches.targets is not None else "owned by the window, no targets"
    figure.legend(handles=[
        Patch(fc="tab:blue", ec="black", lw=0.5, alpha=_FILLED, label=f"weighted steps: {what}"),
        Patch(fc="tab:blue", ec="black", lw=0.5, alpha=_LIGHT + (_FILLED - _LIGHT) / 2,
              label="partly weighted chunk: shaded by its weighted share"),
        Patch(fc="none", ec="tab:blue", hatch=_HATCH, label="weight 0: hatched, chunk not trained"),
    ], loc="lower left", bbox_to_anchor=(0.01, 0.0), ncol=1 if narrow else 3, fontsize=7,
        frameon=False)
    figure.text(0.01, 0.995, _coverage(plan, n_batches, n_rows, series_shown),
                ha="left", va="top", fontsize=8)
    key = ("left: filled = weighted steps, shaded = partly weighted chunk, hatched = "
           "weight 0, red tick = row starts from a reset state")
    inches = figure.get_figheight()
    if narrow:  # under the coverage line, wrapped to the width
        figure.text(0.01, 1 - 0.22 / inches, key.replace(", hatched", ",\nhatched"),
                    ha="left", va="top", fontsize=7)
    else:
        figure.text(0.99, 0.995, key, ha="right", va="top", fontsize=7)
    # Room for the legend at the bottom (one line, or three stacked) and the
    # key at the top, in inches whatever the figure's height.
    bottom, top = (0.6, 0.65) if narrow else (0.3, 0.04 * inches)
    figure.tight_layout(rect=(0, bottom / inches, 1, 1 - top / inches))
    return figure


def _weighted_steps(plan, n_batches, rows, windows, real_steps):
    """Which steps of every sample carry weight, and each sample's share.

    Returns `(weighted, share)`: bool `[samples, timesteps]` and float
    `[samples]`, filled for the first `n_batches` batches. A step carries
    weight when its `sample_weight` is > 0 (the value may be scaled);
    per-sequence targets weigh the whole window of a weighted sample;
    without targets, the steps each window owns. The share is the weighted
    steps over the window's `timesteps` (padding counts as unweighted); 1
    or 0 for per-sequence targets.
    """
    timesteps = plan.timesteps
    if batches_of(plan).targets is None:
        weighted = np.asarray(batches_of(plan).step_mask(rows, windows), dtype=bool)
        return weighted, weighted.mean(axis=1)
    drawn = min(len(rows), n_batches * plan.batch_size)
    weighted = np.zeros((len(rows), timesteps), dtype=bool)
    weights = batches_of(plan).sample_weights(rows[:drawn], windows[:drawn]) > 0
    if plan.per_sequence_targets:  # the window's real steps
        weighted[:drawn] = weights[:, None] & (np.arange(timesteps) < real_steps[:drawn, None])
        return weighted, weighted.any(axis=1).astype(float)
    weighted[:drawn] = weights
    return weighted, weighted.mean(axis=1)


def _runs(flags):
    """`(start, stop)` of each run of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _coverage(plan, n_batches, n_rows, series_shown):
    """What part of the plan the figure shows, and the key to the drawing."""
    text = f"{plan.scheme}: {len(plan)} batches of {plan.batch_size} rows"
    if plan.packed:
        text += f" (packed lanes, fill {plan.fill_ratio:.0%})"
    partial = []
    if n_batches < len(plan):
        partial.append(f"first {n_batches} of {len(plan)} batches")
    if n_rows < plan.batch_size:
        partial.append(f"first {n_rows} of {plan.batch_size} rows")
    if len(series_shown) < plan.n_series:
        partial.append(f"{len(series_shown)} of {plan.n_series} series")
    text += (", drawn: " + ", ".join(partial)) if partial else ", all drawn"
    return text


def _series_label(panel, series):
    if panel.ids is not None:
        label = str(panel.ids[series])
        return label if len(label) <= 12 else label[:11] + "…"
    return str(series)


def _shared_dates(panel, series_shown):
    """The DatetimeIndex shared by the drawn series, or None."""
    import pandas as pd

    if panel.index is None or not series_shown:
        return None
    first = panel.index[series_shown[0]]
    if not isinstance(first, pd.DatetimeIndex):
        return None
    if all(panel.index[s] is first or panel.index[s].equals(first) for s in series_shown[1:20]):
        return first
    return None
