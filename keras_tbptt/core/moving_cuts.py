"""Cut points that move between epochs (`naive_split(offsets="random")`).

A fixed split always cuts at the same steps, so a dependency across a chunk
edge is never learned with a gradient. With moving cuts every training
epoch serves the layout whose series start `offset` steps into their first
chunk (0 <= offset < timesteps): `offset` steps of front padding (zeros,
weight 0), the series, then end padding (weight 0) to fill the last chunk.

The plan itself describes offset 0 with room to move: the fixed chunks
plus one more (all padding) per row (`with_room`), so every offset has the
same number of batches. Batch `j` of a group at offset `p` is then the last
`p` steps of fixed batch `j - 1` (zeros for the group's first batch)
followed by the first `timesteps - p` steps of fixed batch `j`
(`moved_steps`): nothing is dropped but padding, and resets stay where
the fixed plan has them. The state must not move over the front padding:
the batch's reset flags become `1 + p` where they were 1 (`moved_flags`),
and a keras_tbptt layer holds a row flagged `1 + p` at its reset state over
the batch's first `p` steps.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from keras_tbptt.core.validation import check_choice, check_int

if TYPE_CHECKING:
    from keras_tbptt.core.batches import PlanBatches
    from keras_tbptt.core.layout import Layout

OFFSETS = ("fixed", "random")


def check_offsets(offsets, seed, *, pack, per_sequence):
    """Validate `offsets` and `seed` of a scheme; raise where moving cuts
    cannot work."""
    check_choice(offsets, "offsets", OFFSETS)
    check_int(seed, "seed", minimum=0, allow_none=True)
    if offsets == "fixed":
        if seed is not None:
            raise ValueError(
                "`seed` draws the offsets of offsets='random'; with "
                "offsets='fixed' it would be ignored. Pass offsets='random' "
                f"or drop seed. Received: offsets='fixed', seed={seed!r}"
            )
        return
    if pack:
        raise ValueError(
            "`offsets`='random' cannot be combined with pack=True: a lane "
            "changes series inside a batch once its cuts move, and reset "
            "flags reset a row only before a batch. Use pack=False, or "
            "offsets='fixed'. Received: offsets='random', pack=True"
        )
    if per_sequence:
        raise ValueError(
            "`offsets`='random' cannot be combined with per-sequence "
            "targets: the chunk that ends each series moves with the cuts, "
            "and its output would be read after a different amount of end "
            "padding each epoch. Use per-step targets (e.g. the label on "
            "the last step, weight 0 elsewhere), or offsets='fixed'. "
            "Received: offsets='random' with one target per series"
        )


def with_room(layout: Layout) -> Layout:
    """`layout` with one more window (all padding) on every real row, so
    that a row moved by any offset below `timesteps` fits in it."""
    real = layout.row_series >= 0
    return dataclasses.replace(
        layout,
        row_windows=layout.row_windows + real,
        group_windows=layout.group_windows + 1,
        uniform_rows=False,
    )


def moved_steps(previous: np.ndarray | None, current: np.ndarray, offset: int) -> np.ndarray:
    """Steps `[-offset, timesteps - offset)` of a batch, along axis 1:
    the last `offset` steps of `previous` (the batch before it in its
    group; `None`: zeros) and the first `timesteps - offset` of `current`."""
    if offset == 0:
        return current
    steps = current.shape[1]
    head = (
        np.zeros_like(current[:, :offset])
        if previous is None
        else previous[:, steps - offset:]
    )
    return np.concatenate([head, current[:, : steps - offset]], axis=1)


def moved_flags(flags: np.ndarray, offset: int) -> np.ndarray:
    """Reset flags of the layout moved by `offset`: `1 + offset` where a
    row resets (the steps to hold it at its reset state, plus one)."""
    return np.where(flags != 0, np.float32(1 + offset), np.float32(0)).astype(np.float32)


def moved_epoch(array: np.ndarray, resets: np.ndarray, batch_size: int, offset: int) -> np.ndarray:
    """`moved_steps` for every batch of an epoch at once.

    Args:
        array: `[batches * batch_size, timesteps, ...]` in plan order (per-step
            inputs, targets or weights).
        resets: bool `[batches]`: the batches that start a group.
        batch_size: rows per batch.
        offset: the offset.
    """
    if offset == 0:
        return array
    batches = array.reshape((len(resets), batch_size) + array.shape[1:])
    previous = np.concatenate([np.zeros_like(batches[:1]), batches[:-1]])
    previous[resets] = 0
    steps = array.shape[1]
    moved = np.concatenate(
        [previous[:, :, steps - offset:], batches[:, :, : steps - offset]], axis=2
    )
    return moved.reshape(array.shape)


def moved_batch(batches: PlanBatches, index: int, offset: int, offsets: str = "random"):
    """`(x, y, sample_weight)` of batch `index` of the layout moved by
    `offset` (`SplitPlan.batch(index, offset=...)`; a plan of fixed
    `offsets` has offset 0 only)."""
    top = batches.layout.timesteps - 1 if offsets == "random" else 0
    if check_int(offset, "offset", minimum=0) > top:
        raise ValueError(
            f"`offset` must be between 0 and {top} (offsets={offsets!r}, "
            f"timesteps={batches.layout.timesteps}). Received: offset={offset}"
        )
    x = batches.batch_x(index)
    y, weight = batches.batch_targets(index)
    if offset == 0:
        return x, y, weight
    first = bool(batches.layout.resets()[index])
    before = None if first else index - 1
    x = moved_steps(None if first else batches.batch_x(before), x, offset)
    if y is None:
        return x, None, None
    y_before, weight_before = (None, None) if first else batches.batch_targets(before)
    return x, moved_steps(y_before, y, offset), moved_steps(weight_before, weight, offset)
