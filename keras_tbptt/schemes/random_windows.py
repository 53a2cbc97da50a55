"""Baseline: sample fixed-size windows at random (stateless)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from keras_tbptt.core.build import check_timesteps, make_plan
from keras_tbptt.core.inputs import as_panel
from keras_tbptt.core.validation import check_int

if TYPE_CHECKING:
    import pandas as pd

    from keras_tbptt.core.plan import SplitPlan


def random_windows(
    series: np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame,
    timesteps: int,
    n: int,
    targets: (
        np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame | str
        | Sequence[str] | None
    ) = None,
    *,
    seed: int | None = None,
    batch_size: int = 32,
    id_col: Hashable | None = None,
    time_col: Hashable | None = None,
    time_format: str | None = None,
    nan: str = "error",
    wide: bool = False,
) -> SplitPlan:
    """Sample `n` windows of `timesteps` steps uniformly at random.

    Every window start in every series is equally likely; windows may
    overlap. No state is carried between samples, so the model need not be
    stateful. A common alternative to TBPTT for very long series.

    ```
    series 0: |....[ w3 ]......[ w0  ]....|
    series 1: |..[ w1 ]...[ w2 ]..........|
    ```

    Args:
        series: as for `naive_split`.
        targets: as for `naive_split`; per-sequence targets label every
            window of their series.
        id_col, time_col, time_format, nan, wide: as for `naive_split`.
        timesteps: window length.
        n: number of windows.
        seed: seed of the random generator (`None`: fresh randomness).
        batch_size: windows per batch (default 32).

    Returns:
        A stateless `SplitPlan`. `unsplit` averages overlapping windows and
        returns NaN for steps no window covers.

    Example:

    >>> import numpy as np, keras_tbptt
    >>> plan = keras_tbptt.random_windows(np.zeros((3, 1000, 1)), 50, n=64, seed=0)
    >>> plan.x.shape, len(plan)
    ((64, 50, 1), 2)
    """
    n = check_int(n, "n")
    check_int(batch_size, "batch_size")
    if seed is not None:
        check_int(seed, "seed", minimum=0)
    panel, target_data = as_panel(
        series, targets, id_col=id_col, time_col=time_col,
        time_format=time_format, nan=nan,
        wide=wide,
    )
    timesteps = check_timesteps(timesteps, panel)

    def sample(segments, share):
        series_index, starts, lengths = segments
        count = max(1, int(round(n * share)))
        choices = np.maximum(lengths - timesteps + 1, 0)
        if choices.sum() == 0:
            raise ValueError(
                f"No window of {timesteps} steps fits in segments of at most "
                f"{int(lengths.max())} steps."
            )
        draws = np.random.default_rng(seed).integers(0, choices.sum(), size=count)
        which = np.searchsorted(np.cumsum(choices), draws, side="right")
        offset = draws - (np.cumsum(choices) - choices)[which]
        return (
            series_index[which],
            starts[which] + offset,
            np.full(count, timesteps, dtype=np.int64),
        )

    return make_plan(
        "random_windows",
        panel,
        target_data,
        timesteps=timesteps,
        batch_size=batch_size,
        stateful=False,
        sample_segments=sample,
    )
