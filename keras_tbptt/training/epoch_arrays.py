"""`epoch_arrays`: a whole epoch of a plan gathered at once, for `PlanDataset`.

The same values as `plan.x`, `plan.y`, `plan.sample_weight` and
`plan.reset_flags` (the arrays `fit` would take instead), gathered with
numpy in one go rather than batch by batch; refused (`None`) for series
that must stay where they are (memory-mapped) or an epoch too large.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from keras_tbptt.core.arrays import is_memory_mapped
from keras_tbptt.core.batches import batches_of, end_to_end

if TYPE_CHECKING:
    from keras_tbptt.core.plan import SplitPlan


def in_memory(arrays, stacked) -> int | None:
    """Bytes of the series, or `None` when memory-mapped (they stay on disk)."""
    if stacked is not None:
        return None if is_memory_mapped(stacked) else stacked.nbytes
    if any(is_memory_mapped(array) for array in arrays):
        return None
    return sum(array.nbytes for array in arrays)


def epoch_arrays(
    plan: SplitPlan, reset_flags: bool, weight_factors: np.ndarray | None, max_bytes: int
) -> tuple | None:
    """`(x, y, sample_weight, flags)` of every sample of the epoch, in plan
    order (`y`, `sample_weight`, `flags`: `None` where the batches have
    none), built at once; `None` when the series must stay where they are
    (memory-mapped) or the epoch would take more than `max_bytes`.

    Args:
        plan: the plan.
        reset_flags: whether the batches carry the per-row reset flags.
        weight_factors: per-batch factors on the weights (a masked
            output, `SplitPlan.masked_loss_factors`), or `None`.
        max_bytes: the most the epoch may take.
    """
    batches = batches_of(plan)
    layout, panel, targets = batches.layout, batches.panel, batches.targets
    per_step = targets is not None and targets.per_step
    parts = {"x": (panel.arrays, panel.stacked)}
    if per_step:
        parts["y"] = (targets.arrays, targets.stacked)
        if targets.observed is not None:
            parts["observed"] = (targets.observed, None)
    if any(in_memory(*part) is None for part in parts.values()):
        return None
    rows, windows = batches.sample_cells
    steps = layout.timesteps
    per_sample = panel.arrays[0][:1].nbytes * steps + 4 * steps  # x, weights
    if targets is not None:
        per_sample += targets.arrays[0][:1].nbytes * steps if per_step else targets.per_sequence[:1].nbytes
    if len(rows) * per_sample > max_bytes:
        return None
    sources = [end_to_end(panel.arrays, panel.stacked)]
    if per_step:
        sources.append(end_to_end(targets.arrays, targets.stacked))
    x, *y_steps = batches.gather_samples(sources, rows, windows)
    flags = plan.reset_flags if reset_flags else None
    if targets is None:
        return x, None, None, flags
    weight = batches.sample_weights(rows, windows) * batches.weight_scale
    if weight_factors is not None:
        per_row = np.repeat(weight_factors, batches.batch_rows())
        weight *= per_row.astype(np.float32)[:, None]
    if per_step:
        return x, y_steps[0], weight, flags
    return x, batches.sequence_targets(rows), weight, flags
