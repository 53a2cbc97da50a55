"""Scheme 6: decoupled forward (k1) and backward (k2) lengths."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

from keras_tbptt.core.build import check_timesteps, make_plan, validate_layout_args
from keras_tbptt.core.inputs import as_panel
from keras_tbptt.core.validation import check_int

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from keras_tbptt.core.plan import SplitPlan


def decoupled_split(
    series: np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame,
    k1: int,
    k2: int,
    targets: (
        np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame | str
        | Sequence[str] | None
    ) = None,
    *,
    batch_size: int | None = None,
    streams: int = 1,
    remainder: str = "error",
    pack: bool = False,
    id_col: Hashable | None = None,
    time_col: Hashable | None = None,
    time_format: str | None = None,
    nan: str = "error",
    wide: bool = False,
) -> SplitPlan:
    """TBPTT(k1, k2): every k1 steps, backpropagate k2 steps.

    Williams and Peng's truncated BPTT decouples how often the weights are
    updated (every k1 steps) from how far back the gradient flows (k2
    steps). Pair the plan with `keras_tbptt.TBPTTLSTM(...,
    **plan.layer_kwargs)`:

    - `k2 <= k1`: chunks of k1 steps (a `naive_split`); the layer gets
      `truncate_gradient=k2`, so the gradient flows back through the last
      k2 steps of each chunk only.
    - `k2 > k1`: windows of k2 steps that advance by k1 (they overlap by
      `k2 - k1`). The layer gets `state_step=k1`: the state carried to the
      next batch is the state after the first k1 steps of the window, where
      the next window starts. Only the last k1 outputs of a window carry
      loss weight (the first window: all k2), so each step is trained once,
      with a gradient that reaches k2 steps back, as in classic TBPTT(k1, k2).

    ```
    k1=2, k2=4:  steps 0 1 2 3 4 5 6 7
    window 0:         [0 1 2 3]            weight on 0..3, carry state at 2
    window 1:             [2 3 4 5]        weight on 4, 5, carry state at 4
    window 2:                 [4 5 6 7]    weight on 6, 7
    ```

    Args:
        series: as for `naive_split`. With `k2 > k1`, each series (or
            stream) needs `k2 + m * k1` steps for some integer m, unless
            `remainder` pads or drops.
        targets, batch_size, streams, remainder, id_col, time_col,
            time_format, nan, wide: as for `naive_split`.
        k1: forward steps per update (the update interval).
        k2: backward steps (how far the gradient reaches).
        pack: `True` to pack ragged series into `batch_size` lanes, as for
            `naive_split` (needs an explicit `batch_size`): series run back
            to back in each lane, longest first to the least loaded lane,
            and a lane's state is reset where its series changes
            (`plan.reset_flags`); with `k2 > k1` a lane's next window is
            the same series `k1` steps on, or the first window of the
            next series:

            ```
            k1=2, k2=4, 2 lanes     b0        b1        b2
                       lane 0    s0[0:4]   s0[2:6]   s0[4:8]
                       lane 1    s1[0:4]   s1[2:6] | s2[0:4]   (| : reset)
            ```

    Returns:
        A `SplitPlan` with `layer_kwargs` for `TBPTTLSTM`.

    Example:

    >>> import numpy as np, keras_tbptt
    >>> plan = keras_tbptt.decoupled_split(np.zeros((4, 1000, 1)), k1=100, k2=25)
    >>> plan.timesteps, plan.layer_kwargs
    (100, {'truncate_gradient': 25})
    >>> plan = keras_tbptt.decoupled_split(np.zeros((4, 1000, 1)), k1=100, k2=200)
    >>> plan.timesteps, plan.layer_kwargs, len(plan)
    (200, {'state_step': 100}, 9)

    Ragged series packed into 4 lanes fill more of each batch:

    >>> rng = np.random.default_rng(0)
    >>> panel = [np.ones((n, 1)) for n in rng.integers(20, 200, size=10)]
    >>> plan = keras_tbptt.decoupled_split(
    ...     panel, k1=10, k2=20, batch_size=4, remainder="pad"
    ... )
    >>> packed = keras_tbptt.decoupled_split(
    ...     panel, k1=10, k2=20, batch_size=4, remainder="pad", pack=True
    ... )
    >>> round(plan.fill_ratio, 2), round(packed.fill_ratio, 2), packed.packed
    (0.49, 0.94, True)
    """
    validate_layout_args(batch_size, streams, remainder, pack)
    k1, k2 = check_int(k1, "k1"), check_int(k2, "k2")
    panel, target_data = as_panel(
        series, targets, id_col=id_col, time_col=time_col,
        time_format=time_format, nan=nan,
        wide=wide,
    )
    # k2 <= k1: chunks of k1, truncated inside the layer. k2 > k1: windows
    # of k2 that advance by k1, carrying the state from step k1.
    name, timesteps = ("k1", k1) if k2 <= k1 else ("k2", k2)
    timesteps = check_timesteps(timesteps, panel, name=name, remainder=remainder)
    if k2 <= k1:
        layer_kwargs = {"truncate_gradient": k2 if k2 < k1 else None}
    else:
        layer_kwargs = {"state_step": k1}
    return make_plan(
        "decoupled_split",
        panel,
        target_data,
        timesteps=timesteps,
        hop=k1,
        batch_size=batch_size,
        streams=streams,
        remainder=remainder,
        layer_kwargs=layer_kwargs,
        pack=pack,
    )
