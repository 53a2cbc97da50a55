"""`plot_layout`: draw where each sample of a plan comes from."""

import numpy as np

# Box labels are drawn only when there is room for them.
_MAX_LABELLED_BOXES_PER_LANE = 14
_MAX_LABELLED_BATCHES = 10


def plot_layout(plan, *, max_batches=24, max_rows=16):
    """Draw a plan's layout: samples in their series, and the batches.

    Left panel: every drawn sample on its series' time axis (dates when the
    series has a DatetimeIndex). The steps that carry `sample_weight` 1 are
    filled; the rest of a window (padding, or context that an earlier,
    overlapping window already trained) is a light box. Overlapping windows
    are stacked in sub-lanes. A red tick marks where a row of the layout
    (a series, or a stream of it) starts from a reset state. Right panel:
    the grid of batches (columns) and rows Keras sees, coloured by series,
    each box naming `s<series>@<start step>` when there is room (grey:
    filler rows), with a dashed red line where states are reset. A packed
    plan (`pack=True`) draws its lanes instead, with a red tick before each
    cell where that lane's series changes (`plan.reset_flags`). When the
    plan is larger than `max_batches` x `max_rows`, only its start is drawn
    and the figure title says how much.

    Args:
        plan: a `SplitPlan`.
        max_batches: draw at most this many batches (default 24).
        max_rows: draw at most this many rows per batch (default 16).

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
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    from keras_tbptt.core.plan import SplitPlan

    if not isinstance(plan, SplitPlan):
        raise TypeError(f"`plan` must be a SplitPlan. Received: {type(plan).__name__}")
    for name, value in (("max_batches", max_batches), ("max_rows", max_rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    layout, panel = plan._layout, plan._panel
    positions, size = plan.positions, plan.batch_size
    n_batches, n_rows = min(len(plan), max_batches), min(size, max_rows)
    rows, windows = plan._sample_rows()
    owned = plan._step_mask(rows, windows)  # steps with weight 1
    real_steps = layout.real_steps(rows, windows)
    drawn = np.arange(n_batches * size)
    drawn = drawn[drawn % size < n_rows]
    colors = plt.cm.tab10.colors
    series_shown = sorted({int(s) for s in positions[drawn, 0] if s >= 0})
    lane = {s: i for i, s in enumerate(series_shown)}
    # Overlapping windows (hop < timesteps) are stacked in sub-lanes.
    depth = min(4, -(-layout.timesteps // layout.hop))
    lanes = max(len(series_shown), 1)
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(12, 1.6 + min(0.4 * max(lanes, n_rows), 9)),
        gridspec_kw={"width_ratios": [1.3, 1]},
    )
    per_lane = {}
    for sample in drawn:
        series = positions[sample, 0]
        if series >= 0:
            per_lane[series] = per_lane.get(series, 0) + 1
    label_left = max(per_lane.values(), default=0) <= _MAX_LABELLED_BOXES_PER_LANE and lanes <= 24
    label_right = n_batches <= _MAX_LABELLED_BATCHES and n_rows <= 16
    height = 0.8 / depth
    for sample in drawn:
        batch, row = divmod(int(sample), size)
        series, start = (int(v) for v in positions[sample])
        color = "lightgrey" if series < 0 else colors[series % 10]
        right.add_patch(Rectangle((batch - 0.45, row - 0.4), 0.9, 0.8,
                                  fc=color, ec="black", lw=0.5, alpha=0.7))
        if label_right:
            right.text(batch, row, "filler" if series < 0 else f"s{series}@{start}",
                       ha="center", va="center", fontsize=6)
        if series < 0:
            continue
        top = lane[series] - 0.4 + (windows[sample] % depth) * height
        span = max(int(real_steps[sample]), 1)
        left.add_patch(Rectangle((start, top), span, height, fc=colors[batch % 10],
                                 ec="black", lw=0.5, alpha=0.25))
        weighted = np.flatnonzero(owned[sample])
        if len(weighted):  # the steps trained by this window
            left.add_patch(Rectangle((start + weighted[0], top), len(weighted), height,
                                     fc=colors[batch % 10], ec="black", lw=0.5,
                                     alpha=0.8, gid="weighted"))
        if label_left:
            left.text(start + span / 2, top + height / 2, f"b{batch}.r{row}",
                      ha="center", va="center", fontsize=6 if depth == 1 else 5)
    # Where each row of the layout (a series or a stream) starts: reset state.
    first_rows = np.array([r for r in np.unique(rows[drawn]) if layout.row_series[r] in lane],
                          dtype=np.int64)
    starts = zip(layout.row_series[first_rows].tolist(),
                 plan._original_steps(first_rows, layout.row_start[first_rows]).tolist())
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
    figure.text(0.01, 0.995, _coverage(plan, n_batches, n_rows, series_shown),
                ha="left", va="top", fontsize=8)
    figure.text(0.99, 0.995, "left: filled = steps with sample_weight 1, light = "
                "padding or context of overlapping windows (weight 0), red tick = "
                "row starts from a reset state", ha="right", va="top", fontsize=7)
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    return figure


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
