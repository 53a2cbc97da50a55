"""`plot_layout`: draw where each sample of a plan comes from."""

import numpy as np


def plot_layout(plan, *, max_batches=24, max_rows=16):
    """Draw a plan's layout: samples in their series, and the batches.

    Left panel: every sample as a box on its series' time axis, labelled
    `b<batch>.r<row>`. Right panel: the grid of batches (columns) and rows
    Keras sees, each box naming `s<series>@<start step>` (grey: filler
    rows), with a dashed red line where states are reset.

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
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from keras_tbptt.core.plan import SplitPlan

    if not isinstance(plan, SplitPlan):
        raise TypeError(f"`plan` must be a SplitPlan. Received: {type(plan).__name__}")
    for name, value in (("max_batches", max_batches), ("max_rows", max_rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    positions, size = plan.positions, plan.batch_size
    n_batches, n_rows = min(len(plan), max_batches), min(size, max_rows)
    colors = plt.cm.tab10.colors
    series_shown = sorted({int(s) for s in positions[: n_batches * size, 0] if s >= 0})
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(12, 1.2 + 0.4 * max(len(series_shown), n_rows)),
        gridspec_kw={"width_ratios": [1.3, 1]},
    )
    for sample, (series, start) in enumerate(positions[: n_batches * size]):
        batch, row = divmod(sample, size)
        if row >= n_rows:
            continue
        if series >= 0:
            left.add_patch(Rectangle((start, series - 0.4), plan.timesteps, 0.8,
                                     fc=colors[batch % 10], ec="black", alpha=0.6))
            left.text(start + plan.timesteps / 2, series, f"b{batch}.r{row}",
                      ha="center", va="center", fontsize=7)
        right.add_patch(Rectangle((batch - 0.45, row - 0.4), 0.9, 0.8,
                                  fc="lightgrey" if series < 0 else colors[series % 10],
                                  ec="black", alpha=0.6))
        right.text(batch, row, "filler" if series < 0 else f"s{series}@{start}",
                   ha="center", va="center", fontsize=6)
    for batch in np.flatnonzero(plan.resets[:n_batches]):
        right.axvline(batch - 0.5, color="red", linestyle="--", linewidth=1.5)
    real = positions[: n_batches * size]
    real = real[real[:, 0] >= 0]
    left.set(xlim=(0, max(real[:, 1].max() + plan.timesteps, 1)),
             ylim=(max(series_shown, default=0) + 0.6, -0.6), yticks=series_shown,
             xlabel="time step", ylabel="series", title="samples in their series")
    right.set(xlim=(-0.6, n_batches - 0.4), ylim=(n_rows - 0.4, -0.6),
              xticks=range(n_batches), yticks=range(n_rows),
              xlabel="batch", ylabel="row", title="batches (dashed red: reset before)")
    figure.tight_layout()
    return figure
