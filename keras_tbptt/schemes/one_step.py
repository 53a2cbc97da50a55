"""Scheme 5: TBPTT(1, 1), one step per sample."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

from keras_tbptt.core.build import make_plan, validate_layout_args
from keras_tbptt.core.inputs import as_panel

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from keras_tbptt.core.plan import SplitPlan


def one_step(
    series: np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame,
    targets: (
        np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame | str
        | Sequence[str] | None
    ) = None,
    *,
    batch_size: int | None = None,
    streams: int = 1,
    pack: bool = False,
    id_col: Hashable | None = None,
    time_col: Hashable | None = None,
    time_format: str | None = None,
    nan: str = "error",
    wide: bool = False,
) -> SplitPlan:
    """TBPTT(1, 1): one input step per sample, memory left to the state.

    Every step is its own sample `[1, features]`; a stateful LSTM carries
    everything it remembers in its state, which is reset when a series ends.
    The gradient never crosses a step boundary, so this suits memorisation
    more than outputs that are complex functions of the past.

    ```
    series 0: |0|1|2|...|49|    batch 0 = [s0[0], s1[0], ...]  reset
    series 1: |0|1|2|...|49|    batch 1 = [s0[1], s1[1], ...]
                                 ...
    ```

    Args:
        series, targets, batch_size, streams, id_col, time_col, time_format,
            nan, wide: as for `naive_split`.
        pack: `True` to pack ragged series into `batch_size` lanes (needs
            an explicit `batch_size`), as for `naive_split`: series run back
            to back in each lane, a lane's state reset where its series
            changes (`plan.reset_flags`), so only the last batches of the
            shorter lanes hold filler:

            ```
            lengths 3, 2, 2, 1   b0    b1    b2    b3
                     lane 0    s0[0] s0[1] s0[2]|s3[0]
                     lane 1    s1[0] s1[1]|s2[0] s2[1]   (| : reset)
            ```

    Returns:
        A `SplitPlan` with `timesteps=1`.

    Example: 100 series of 50 steps give 5,000 samples, 50 batches of 100,
    a reset every 50 batches.

    >>> import numpy as np, keras_tbptt
    >>> plan = keras_tbptt.one_step(np.zeros((100, 50, 1)))
    >>> plan.x.shape, len(plan), np.flatnonzero(plan.resets).tolist()
    ((5000, 1, 1), 50, [0])

    Ragged series of 3, 2, 2 and 1 steps: 8 real steps in 5 batches of 2,
    or packed in 4.

    >>> panel = [np.ones((n, 1)) for n in (3, 2, 2, 1)]
    >>> plan = keras_tbptt.one_step(panel, batch_size=2)
    >>> packed = keras_tbptt.one_step(panel, batch_size=2, pack=True)
    >>> len(plan), plan.fill_ratio, len(packed), packed.fill_ratio
    (5, 0.8, 4, 1.0)
    >>> packed.reset_flags.reshape(4, 2).tolist()  # lanes change series
    [[1.0, 1.0], [0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
    """
    validate_layout_args(batch_size, streams, "error", pack)
    panel, target_data = as_panel(
        series, targets, id_col=id_col, time_col=time_col,
        time_format=time_format, nan=nan,
        wide=wide,
    )
    return make_plan(
        "one_step", panel, target_data, timesteps=1, batch_size=batch_size,
        streams=streams, pack=pack,
    )
