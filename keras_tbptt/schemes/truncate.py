"""Baseline: keep only the start or the end of every series."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from keras_tbptt.core.build import check_timesteps, make_plan
from keras_tbptt.core.inputs import as_panel
from keras_tbptt.core.validation import check_choice, check_int

if TYPE_CHECKING:
    import pandas as pd

    from keras_tbptt.core.plan import SplitPlan


def truncate(
    series: np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame,
    length: int,
    targets: (
        np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame | str
        | Sequence[str] | None
    ) = None,
    *,
    side: str = "start",
    batch_size: int = 32,
    id_col: Hashable | None = None,
    time_col: Hashable | None = None,
    time_format: str | None = None,
    nan: str = "error",
    wide: bool = False,
) -> SplitPlan:
    """Keep the first or last `length` steps of every series, one sample each.

    The simplest answer to "too long": throw the rest away. Useful as a
    baseline for the splitting schemes.

    ```
    side="start":  |kept ...... |- - - - - dropped - - -|
    side="end":    |- - - dropped - - - -|...... kept   |
    ```

    Args:
        series, targets, id_col, time_col, time_format, nan, wide: as for
            `naive_split`.
        length: steps to keep; every series must have at least this many.
        side: `"start"` (default) or `"end"`.
        batch_size: samples per batch (default 32).

    Returns:
        A stateless `SplitPlan`; `unsplit` returns NaN for the dropped steps.

    Example:

    >>> import numpy as np, keras_tbptt
    >>> plan = keras_tbptt.truncate(np.arange(10.0), 4, side="end")
    >>> plan.x[0, :, 0].tolist()
    [6.0, 7.0, 8.0, 9.0]
    """
    check_int(batch_size, "batch_size")
    check_choice(side, "side", ("start", "end"))
    panel, target_data = as_panel(
        series, targets, id_col=id_col, time_col=time_col,
        time_format=time_format, nan=nan,
        wide=wide,
    )
    length = check_timesteps(length, panel, name="length")
    lengths = panel.lengths
    starts = np.zeros_like(lengths) if side == "start" else lengths - length
    return make_plan(
        "truncate",
        panel,
        target_data,
        timesteps=length,
        batch_size=batch_size,
        stateful=False,
        remainder="drop",
        segments=(np.arange(panel.n_series), starts, np.full_like(lengths, length)),
    )
