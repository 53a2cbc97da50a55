"""Draw the figures of the documentation with matplotlib (no network, no Keras).

`mkdocs build` calls `draw_all()` through docs/hooks.py and serves the PNGs
under `img/`; nothing is stored in the repository. To look at them alone:

    .venv/bin/python docs/make_figures.py [output folder, default site_figures/]
"""

import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Rectangle  # noqa: E402

FORWARD, GRADIENT, STATE, RESET = "tab:blue", "tab:orange", "tab:green", "tab:red"


def _arrow(ax, start, end, y, color, style="-|>", lw=1.6, ls="-"):
    ax.add_patch(FancyArrowPatch((start, y), (end, y), arrowstyle=style, color=color,
                                 mutation_scale=12, lw=lw, linestyle=ls))


def _lane(ax, y, title, windows, length):
    """One training scheme on one series: boxes, forward and gradient arrows.

    `windows` holds (start, size, gradient steps, carried-state step) tuples.
    """
    ax.text(0, y + 0.8, title, ha="left", va="center", fontsize=10)
    for number, (start, size, k2, carry) in enumerate(windows):
        overlapping = carry is not None and carry < size  # stagger overlapping windows
        offset = 0.22 * (number % 2) if overlapping else 0
        top = y + 0.18 + offset
        ax.add_patch(Rectangle((start, top - 0.16), size, 0.32, fc="white", ec="black", lw=1))
        ax.add_patch(Rectangle((start + size - k2, top - 0.16), k2, 0.32,
                               fc=GRADIENT, alpha=0.35, lw=0))
        _arrow(ax, start + 0.2, start + size - 0.2, top + 0.05, FORWARD, lw=1.2)
        _arrow(ax, start + size - 0.2, start + size - k2 + 0.2, top - 0.07, GRADIENT, lw=1.2)
        if carry is not None and start + carry < length:
            ax.plot([start + carry] * 2, [top - 0.2, top + 0.2], color=STATE, lw=3)


def draw_k1_k2():
    """k1 (forward length) and k2 (backward length) in four schemes."""
    length = 48
    fig, ax = plt.subplots(figsize=(8, 5.2))
    lanes = [
        ("full BPTT: one pass over 48 steps", [(0, 48, 48, None)]),
        ("k1 = k2 = 12: naive_split + stateful LSTM", [(s, 12, 12, 12) for s in range(0, 48, 12)]),
        ("k1 = 12, k2 = 4: TBPTTLSTM(truncate_gradient=4)", [(s, 12, 4, 12) for s in range(0, 48, 12)]),
        ("k1 = 6, k2 = 12: decoupled_split (state_step=6)",
         [(0, 12, 12, 6)] + [(s, 12, 6, 6) for s in range(6, 37, 6)]),
    ]
    for number, (title, windows) in enumerate(lanes):
        _lane(ax, -1.7 * number, title, windows, length)
    ax.set(xlim=(-0.5, length + 0.5), ylim=(-5.5, 1.2), yticks=[])
    ax.set_xticks(range(0, length + 1, 6))
    ax.set_xlabel("time step of one long series")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    handles = [
        plt.Line2D([], [], color=FORWARD, marker=">", label="forward pass (k1 steps between updates)"),
        plt.Line2D([], [], color=GRADIENT, marker="<", label="gradient (k2 steps back)"),
        plt.Line2D([], [], color=STATE, lw=3, label="state carried to the next window"),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
              frameon=False, fontsize=9)
    ax.set_title("k1: how often the weights are updated; k2: how far back the gradient reaches",
                 fontsize=11)
    fig.tight_layout()
    return fig


def draw_stateful_layout():
    """The library's own drawing of a small naive split."""
    import keras_tbptt

    plan = keras_tbptt.naive_split(np.zeros((5, 12, 1)), 4, batch_size=2)
    return keras_tbptt.plot_layout(plan)  # titled by the library itself


def draw_resets():
    """What a stateful row sees: correct order, a missing reset, shuffled batches."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    chunks = ["s0@0", "s0@4", "s0@8", "s2@0", "s2@4", "s2@8"]
    lanes = [
        ("plan.dataset() + plan.callbacks()", chunks, {3}, set()),
        ("no reset: s2 starts from s0's state", chunks, set(), {3}),
        ("shuffle=True: chunks out of order", ["s0@8", "s2@4", "s0@0", "s2@8", "s0@4", "s2@0"],
         set(), {1, 2, 3, 4, 5}),
    ]
    for number, (title, labels, resets, wrong) in enumerate(lanes):
        y = -1.25 * number
        ax.text(-0.5, y + 0.5, title, ha="left", va="center", fontsize=10)
        for batch, label in enumerate(labels):
            color = "tab:blue" if label.startswith("s0") else "tab:purple"
            ax.add_patch(Rectangle((batch - 0.35, y - 0.25), 0.7, 0.5, fc=color, alpha=0.3, ec="black"))
            ax.text(batch, y, label, ha="center", va="center", fontsize=9)
            if batch == 0 or batch in resets:
                ax.plot([batch - 0.45] * 2, [y - 0.35, y + 0.35], color=RESET, lw=2.5, ls="--")
            if batch and batch not in resets:  # a reset carries nothing
                bad = batch in wrong
                _arrow(ax, batch - 0.65, batch - 0.35, y, RESET if bad else STATE,
                       lw=2 if bad else 1.4)
    ax.set(xlim=(-0.6, 5.5), ylim=(-3.0, 0.9), yticks=[])
    ax.set_xticks(range(6), [f"batch {b}" for b in range(6)])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    handles = [
        plt.Line2D([], [], color=RESET, ls="--", lw=2.5, label="reset before the batch"),
        plt.Line2D([], [], color=STATE, marker=">", label="state carried (right)"),
        plt.Line2D([], [], color=RESET, marker=">", label="state carried (wrong)"),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3,
              frameon=False, fontsize=9)
    ax.set_title("row 0 of a stateful batch: 3 chunks of series 0, then 3 of series 2", fontsize=11)
    fig.tight_layout()
    return fig


def draw_decoupled():
    """decoupled_split(k1=3, k2=6): overlapping windows and their sample weights."""
    import keras_tbptt

    steps = np.arange(18.0)
    plan = keras_tbptt.decoupled_split(steps, k1=3, k2=6, targets=steps)
    fig, ax = plt.subplots(figsize=(8, 3.0))
    for window, ((_, start), weight) in enumerate(zip(plan.positions, plan.sample_weight)):
        for offset, w in enumerate(weight):
            ax.add_patch(Rectangle((start + offset, window - 0.4), 1, 0.8,
                                   fc="tab:blue" if w else "lightsteelblue", ec="white"))
        if window < len(plan) - 1:
            ax.plot([start + 3] * 2, [window - 0.45, window + 0.45], color=STATE, lw=3)
    ax.set(xlim=(0, 18), ylim=(len(plan) - 0.5, -0.5), xticks=range(19),
           xlabel="time step", ylabel="window (= batch)")
    ax.set_title("decoupled_split(k1=3, k2=6): dark steps carry loss weight,\n"
                 "green: the state carried to the next window", fontsize=10)
    fig.tight_layout()
    return fig


FIGURES = {
    "k1_k2.png": draw_k1_k2,
    "stateful_layout.png": draw_stateful_layout,
    "resets.png": draw_resets,
    "decoupled.png": draw_decoupled,
}


def draw_all():
    """Every figure as PNG bytes, by file name."""
    pngs = {}
    for name, draw in FIGURES.items():
        fig = draw()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        plt.close(fig)
        pngs[name] = buffer.getvalue()
    return pngs


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "site_figures")
    folder.mkdir(parents=True, exist_ok=True)
    for name, png in draw_all().items():
        (folder / name).write_bytes(png)
        print(folder / name)
