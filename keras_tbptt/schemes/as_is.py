"""Scheme 1: use each series as one sample."""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

from keras_tbptt.core.build import make_plan
from keras_tbptt.core.inputs import as_panel
from keras_tbptt.core.validation import check_int

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from keras_tbptt.core.plan import SplitPlan

PRACTICAL_BPTT_LIMIT = 400


def as_is(
    series: np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame,
    targets: (
        np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame | str
        | Sequence[str] | None
    ) = None,
    *,
    batch_size: int = 32,
    pad: bool = False,
    id_col: Hashable | None = None,
    time_col: Hashable | None = None,
    time_format: str | None = None,
    nan: str = "error",
    wide: bool = False,
) -> SplitPlan:
    """Use every series whole: one sample per series, full BPTT.

    The right choice when series have tens to a few hundred steps. Each
    sample is a complete series, so no state is carried between batches
    and the model need not be stateful:

    ```
    series 0: |s0[0] ... s0[24]|  -> sample 0
    series 1: |s1[0] ... s1[24]|  -> sample 1      batch 0 = samples 0..31
    ...
    ```

    Warns when series are longer than 400 steps, about the practical limit
    of backpropagation through time (use `naive_split` then).

    Args:
        series, targets, id_col, time_col, time_format, nan, wide: as for
            `naive_split`.
        batch_size: samples per batch (default 32); the last batch may be
            smaller.
        pad: series of different lengths raise unless `pad=True`, which
            zero-pads them at the end to the longest (padding gets
            `sample_weight` 0; mask it in the model with `keras.layers.Masking`
            if the padding must not reach the state).

    Returns:
        A stateless `SplitPlan` (`plan.stateful` is False).

    Example: 100 series of 25 steps.

    >>> import numpy as np, keras_tbptt
    >>> plan = keras_tbptt.as_is(np.zeros((100, 25, 1)))
    >>> plan.x.shape, len(plan)
    ((100, 25, 1), 4)
    """
    check_int(batch_size, "batch_size")
    if not isinstance(pad, bool):
        raise TypeError(f"`pad` must be True or False. Received: pad={pad!r}")
    panel, target_data = as_panel(
        series, targets, id_col=id_col, time_col=time_col,
        time_format=time_format, nan=nan,
        wide=wide,
    )
    lengths = panel.lengths
    if len(set(lengths.tolist())) > 1 and not pad:
        raise ValueError(
            "as_is() needs series of one length; received lengths from "
            f"{int(lengths.min())} to {int(lengths.max())}. Pass pad=True to "
            "zero-pad them at the end (sample_weight 0), or use naive_split."
        )
    if lengths.max() > PRACTICAL_BPTT_LIMIT:
        warnings.warn(
            f"Series of {int(lengths.max())} steps are longer than the "
            f"practical limit of BPTT (about 200-{PRACTICAL_BPTT_LIMIT} steps): "
            "gradients may vanish or explode and training is slow. Consider "
            "naive_split or decoupled_split.",
            stacklevel=2,
        )
    return make_plan(
        "as_is",
        panel,
        target_data,
        timesteps=int(lengths.max()),
        batch_size=batch_size,
        remainder="pad",
        stateful=False,
    )
