"""Shared plumbing of the schemes: validate, lay out, wrap in a SplitPlan."""

import warnings

import numpy as np

from keras_tbptt.core.layout import build_layout
from keras_tbptt.core.moving_cuts import check_offsets, with_room
from keras_tbptt.core.plan import SplitPlan
from keras_tbptt.core.validation import check_choice, check_int

REMAINDERS = ("error", "pad", "drop")
# Warn when more than this share of the rows of a stateful plan are filler.
FILLER_SHARE_LIMIT = 0.5


def _warn_filler(layout, real):
    """Filler rows cost compute and dilute the loss: warn when they dominate."""
    if layout.packed:
        _warn_filler_lanes(layout, real)
        return
    rows, fillers = len(real), int((~real).sum())
    if not layout.stateful or fillers / rows <= FILLER_SHARE_LIMIT:
        return
    n_real = rows - fillers
    series = len(set(layout.row_series[real].tolist()))
    streams = max(1, layout.batch_size // series)
    warnings.warn(
        f"{fillers} of {rows} rows ({fillers / rows:.0%}) are filler rows "
        f"(zeros, sample_weight 0): batch_size={layout.batch_size} with only "
        f"{n_real} real rows ({series} series x {layout.streams} streams). "
        f"Pass streams={streams} to cut each series into {streams} contiguous "
        "streams that fill the batch, or a smaller batch_size.",
        stacklevel=5,
    )


def _warn_filler_lanes(layout, real):
    """A packed layout has filler at lane ends only: warn when it dominates."""
    cells = layout.cell_row.size
    fillers = int((~real[layout.cell_row]).sum())
    if fillers / cells <= FILLER_SHARE_LIMIT:
        return
    n_real = int(real.sum())
    warnings.warn(
        f"{fillers} of {cells} cells ({fillers / cells:.0%}) of the packed "
        f"batches are filler (zeros, sample_weight 0): batch_size="
        f"{layout.batch_size} lanes for {n_real} rows that cannot be spread "
        "more evenly (a row stays in one lane). Pass a smaller batch_size"
        + (" or more streams." if layout.streams == 1 else "."),
        stacklevel=5,
    )


def validate_layout_args(batch_size, streams, remainder, pack=False):
    check_int(batch_size, "batch_size", allow_none=True)
    check_int(streams, "streams")
    check_choice(remainder, "remainder", REMAINDERS)
    check_pack(pack, batch_size)


def check_pack(pack, batch_size, stateful=True):
    """`pack=True` needs a stateful plan and an explicit number of lanes."""
    if not isinstance(pack, bool):
        raise TypeError(f"`pack` must be True or False. Received: pack={pack!r}")
    if not pack:
        return
    if not stateful:
        raise ValueError(
            "`pack=True` needs a stateful plan (lanes carry their state from "
            "batch to batch), but this scheme builds independent samples. "
            "Use naive_split, decoupled_split or one_step with pack=True, or "
            "pack=False."
        )
    if batch_size is None:
        raise ValueError(
            "`pack=True` needs an explicit `batch_size`: the number of lanes "
            "(rows of every batch) the series are packed into. Received: "
            "batch_size=None. Pass e.g. batch_size=16, the model's static "
            "batch size."
        )


def check_timesteps(timesteps, panel, name="timesteps", remainder="error"):
    """`timesteps` must fit the longest series (every series, unless padding)."""
    timesteps = check_int(timesteps, name)
    lengths = panel.lengths
    limit = lengths.max() if remainder == "pad" else lengths.min()
    if timesteps > limit:
        hint = ""
        if panel.kind == "2d" and panel.n_features > lengths[0]:
            hint = (
                f" A 2-D array is one series [length, features]; for "
                f"{int(lengths[0])} univariate series of {panel.n_features} "
                "steps pass series[..., None] ([n_series, length, 1])."
            )
        elif panel.kind == "3d" and panel.n_series > lengths[0]:
            hint = (
                f" A 3-D array is [n_series, length, features]: here "
                f"{panel.n_series} series of {int(lengths[0])} steps; if it is "
                "[length, n_series, features], pass np.swapaxes(series, 0, 1)."
            )
        raise ValueError(
            f"`{name}` must be <= the series length "
            f"({'longest' if remainder == 'pad' else 'shortest'}: {int(limit)} "
            f"steps). Received: {name}={timesteps}.{hint}"
        )
    return timesteps


def make_plan(
    scheme,
    panel,
    targets,
    *,
    timesteps,
    hop=None,
    batch_size=None,
    streams=1,
    remainder="error",
    stateful=True,
    layer_kwargs=None,
    segments=None,
    sample_segments=None,
    pack=False,
    offsets="fixed",
    seed=None,
):
    """Build a SplitPlan; `sample_segments(segments, share)` resamples rows
    (random windows) when the plan is split for validation; `pack` packs the
    rows into `batch_size` lanes (`validation_split` keeps it); `offsets`
    `"random"` gives every row room to move (`core/moving_cuts.py`; the
    validation part of `validation_split` is fixed: it runs at offset 0)."""
    check_pack(pack, batch_size, stateful)
    check_offsets(
        offsets, seed, pack=pack,
        per_sequence=targets is not None and not targets.per_step,
    )
    if streams > 1 and targets is not None and not targets.per_step:
        raise ValueError(
            f"`streams`={streams} cannot be combined with per-sequence targets: "
            "every stream but the first starts mid-series from a reset state, "
            "so it cannot predict a whole-series target. Use streams=1."
        )
    if segments is None:
        n = panel.n_series
        segments = (np.arange(n), np.zeros(n, np.int64), panel.lengths)

    def rebuild(new_segments, share, moving=offsets == "random"):
        rows = new_segments
        if sample_segments is not None:
            rows = sample_segments(new_segments, share)
        n_rows = len(rows[0]) * streams
        layout = build_layout(
            rows,
            timesteps=timesteps,
            hop=hop,
            batch_size=batch_size or n_rows,
            stateful=stateful,
            streams=streams,
            remainder=remainder,
            pack=pack,
        )
        real = layout.row_series >= 0
        _warn_filler(layout, real)
        if moving:
            layout = with_room(layout)
        covered = (layout.row_windows - 1) * layout.hop + layout.timesteps
        if targets is not None and not targets.per_step and (
            covered[real] > layout.row_length[real]
        ).any():
            warnings.warn(
                "Zero padding follows the end of some series, and with "
                "per-sequence targets the prediction comes after it. Put "
                "keras.layers.Masking(mask_value=0.0) before the recurrent layer "
                "so padded steps leave the state unchanged, or choose a "
                "timesteps that divides every length.",
                stacklevel=3,
            )
        return SplitPlan(
            panel,
            targets,
            layout,
            scheme=scheme,
            segments=new_segments,
            rebuild=rebuild,
            layer_kwargs=layer_kwargs,
            offsets="random" if moving else "fixed",
            seed=seed if moving else None,
        )

    return rebuild(segments, 1.0)

