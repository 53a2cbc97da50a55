"""Missing and infinite values: the `nan` policies and the NaN/inf scans."""

import numpy as np
import pandas as pd

from keras_tbptt.core.arrays import SeriesViews
from keras_tbptt.core.labels import label_text

NAN_POLICIES = ("error", "ffill", "interpolate", "drop")

# The exact NaN/inf checks scan the data in blocks of about this many bytes,
# so that a large (memory-mapped) array is never copied or mirrored whole.
SCAN_BYTES = 1 << 20


def handle_nan(panel, targets, nan, name):
    """Apply the NaN policy to the inputs; never fill targets.

    NaN inputs: refused (`nan="error"`), filled (`"ffill"`,
    `"interpolate"`) or their steps dropped with their targets (`"drop"`).
    NaN per-step targets are never filled or dropped: the step keeps its
    (possibly filled) inputs, the target becomes 0 and the step gets
    `sample_weight` 0 (`Targets.observed`). Under `nan="error"` they are
    refused like NaN inputs.
    """
    data = [panel.arrays] if panel.stacked is None else [[panel.stacked]]
    if targets is not None:
        data.append(_target_arrays(targets) if targets.stacked is None else [targets.stacked])
    if all(_all_finite(arrays) for arrays in data):
        return panel, targets
    target_columns = None if targets is None else targets.columns
    for label, arrays, columns in (
        (name, panel.arrays, panel.columns),
        ("targets", _target_arrays(targets), target_columns),
    ):
        infinite = _row_masks(arrays, np.isinf)
        if any(m.any() for m in infinite):
            total, first = _nan_report(infinite, panel if label == name else None)
            raise ValueError(
                f"`{label}` contains {total} infinite values ({first}). "
                "Replace or clip them before splitting."
            )
    step_nan = _row_masks(panel.arrays, np.isnan)
    target_nan = _row_masks(_target_arrays(targets), np.isnan)
    if targets is not None and not targets.per_step and any(m.any() for m in target_nan):
        # One row per series: the rows with NaN name the series.
        bad = np.flatnonzero(target_nan[0])
        who = bad.tolist() if panel.ids is None else [panel.ids[i] for i in bad]
        shown = ", ".join(map(repr, list(who)[:5])) + (", ..." if len(bad) > 5 else "")
        raise ValueError(
            f"Per-sequence `targets` contain {len(bad)} NaN values (series "
            f"[{shown}]); drop those series or fill their targets first."
        )
    if targets is None or not targets.per_step:
        target_nan = [_clean(len(m)) for m in step_nan]
    if nan == "error" and any(m.any() for m in step_nan):
        total, first = _nan_report(step_nan, panel, panel.arrays, panel.columns)
        raise ValueError(
            f"`{name}` contains NaN at {total} time steps ({first}). Pass "
            "nan='ffill', 'interpolate' or 'drop' to handle them, or clean the "
            "data first."
        )
    if nan == "error" and any(m.any() for m in target_nan):
        total, first = _nan_report(
            target_nan,
            panel if len(targets.arrays) == panel.n_series else None,
            targets.arrays, targets.columns,
        )
        raise ValueError(
            f"`targets` contains NaN at {total} time steps ({first}), e.g. the "
            "last rows of a shifted column. Pass nan='ffill', 'interpolate' or "
            "'drop': NaN targets are never filled; their steps keep their "
            "inputs and get target 0 and sample_weight 0. Or drop those rows "
            "first."
        )
    if targets is not None and any(m.any() for m in target_nan):
        # Series without NaN targets share a read-only view of ones.
        targets.observed = [
            (~m).astype(np.float32)[:, None] if m.any()
            else np.broadcast_to(np.float32(1), (len(m), 1))
            for m in target_nan
        ]
        targets.arrays = [
            np.where(m[:, None], 0, a).astype(a.dtype, copy=False) if m.any() else a
            for a, m in zip(targets.arrays, target_nan)
        ]
        targets.stacked = None
    if not any(m.any() for m in step_nan):
        return panel, targets
    if nan == "drop":
        keep = [~m for m in step_nan]
        if not all(k.any() for k in keep):
            raise ValueError(f"nan='drop' would leave an empty series in `{name}`.")
        panel.steps = [np.flatnonzero(k) for k in keep]

        def cut(arrays):  # series without NaN stay views (a[k] copies)
            return [a[k] if m.any() else a for a, m, k in zip(arrays, step_nan, keep)]

        panel.arrays = cut(panel.arrays)
        panel.stacked = None
        if targets is not None and targets.per_step:
            targets.arrays = cut(targets.arrays)
            if targets.observed is not None:
                targets.observed = cut(targets.observed)
            targets.stacked = None
        return panel, targets
    fill = (lambda f: f.ffill()) if nan == "ffill" else (
        lambda f: f.interpolate(limit_direction="both")
    )
    # Only the series with NaN are filled (copied); the others stay views.
    panel.arrays = [
        _fill(a, fill, name, i, nan) if m.any() else a
        for i, (a, m) in enumerate(zip(panel.arrays, step_nan))
    ]
    panel.stacked = None
    return panel, targets


def _nan_report(mask_per_series, panel=None, arrays=None, columns=None):
    """Count NaN rows and describe the first ones.

    For pandas input the description names the series id, the index labels
    (dates) and the columns holding NaN; otherwise positions.
    """
    bad = [(i, np.flatnonzero(m)) for i, m in enumerate(mask_per_series) if m.any()]
    total = sum(len(steps) for _, steps in bad)
    parts = []
    for i, steps in bad[:3]:
        more = "..." if len(steps) > 5 else ""
        if panel is not None and panel.index is not None:
            who = "" if panel.ids is None else f"series {panel.ids[i]!r} "
            labels = ", ".join(label_text(label) for label in panel.index[i][steps[:5]])
            part = f"{who}at index [{labels}{more}]"
        else:
            part = f"series {i} steps {steps[:5].tolist()}{more}"
        if columns is not None and arrays is not None:
            with np.errstate(invalid="ignore"):
                bad_columns = ~np.isfinite(arrays[i][steps]).all(axis=0)
            part += f" in columns {[columns[j] for j in np.flatnonzero(bad_columns)]}"
        parts.append(part)
    return total, "; ".join(parts)


def _all_finite(arrays):
    """True when no array holds NaN or inf (a fast screen, exact when True).

    One pass and no data-sized temporaries: NaN and inf propagate into the
    dot product of the values with themselves. A finite overflow only sends
    the data to the slower exact check.
    """
    for a in arrays:
        if not np.issubdtype(a.dtype, np.floating):
            continue
        if a.flags.c_contiguous:
            flat = a.reshape(-1)
            with np.errstate(over="ignore", invalid="ignore"):
                if not np.isfinite(np.dot(flat, flat)):
                    return False
        elif not (np.isfinite(a.min()) and np.isfinite(a.max())):
            return False
    return True


def _fill(array, fill, name, i, nan):
    filled = fill(pd.DataFrame(array)).to_numpy(dtype=array.dtype)
    if _row_mask(filled, np.isnan).any():
        raise ValueError(
            f"`{name}` series {i} still has NaN after nan={nan!r} (leading NaN "
            "or a column that is all NaN); use nan='interpolate' or 'drop'."
        )
    return filled


def _clean(length):
    """An all-False row mask: a read-only view that costs no memory."""
    return np.broadcast_to(False, (length,))


def _blocks(length, row_bytes):
    """Slices of `length` rows of `row_bytes` each, about SCAN_BYTES a slice."""
    step = max(1, SCAN_BYTES // max(1, row_bytes))
    return [slice(start, start + step) for start in range(0, length, step)]


def _row_mask(array, test):
    """bool `[len(array)]`: rows of `array` where `test` holds for any value.

    Scanned in blocks of about `SCAN_BYTES`, so the temporaries stay small
    whatever the size of `array`; an array with no hit gets `_clean` (no
    memory). `test` is `np.isnan` or `np.isinf`: false for integers.
    """
    if not np.issubdtype(array.dtype, np.floating) and test is np.isnan:
        return _clean(len(array))
    row_bytes = array.itemsize * int(np.prod(array.shape[1:]))
    mask = None
    for block in _blocks(len(array), row_bytes):
        part = test(array[block])
        hits = part.reshape(len(part), -1).any(axis=1)
        if hits.any():
            if mask is None:
                mask = np.zeros(len(array), dtype=bool)
            mask[block] = hits
    return _clean(len(array)) if mask is None else mask


def _row_masks(arrays, test):
    """`_row_mask` of every series; for a stacked panel of short series, in
    blocks of whole series rather than one call per series."""
    if not isinstance(arrays, SeriesViews) or arrays.stacked[:1].nbytes > SCAN_BYTES:
        return [_row_mask(a, test) for a in arrays]
    stacked = arrays.stacked
    n, length = stacked.shape[:2]
    if not np.issubdtype(stacked.dtype, np.floating) and test is np.isnan:
        return [_clean(length)] * n
    masks = [_clean(length)] * n
    for block in _blocks(n, stacked[:1].nbytes):
        part = test(stacked[block])
        hits = part.reshape(part.shape[0], length, -1).any(axis=2)
        for i in np.flatnonzero(hits.any(axis=1)):
            masks[block.start + i] = hits[i].copy()
    return masks


def _target_arrays(targets):
    if targets is None:
        return []
    return targets.arrays if targets.per_step else [targets.per_sequence]
