"""Scheme 3 for regression series: `timesteps` from the ACF and PACF."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

from keras_tbptt.core.build import REMAINDERS, make_plan, validate_layout_args
from keras_tbptt.core.inputs import as_panel
from keras_tbptt.core.layout import factors
from keras_tbptt.core.validation import check_choice
from keras_tbptt.timesteps.suggest import (
    feature_columns,
    select_feature,
    check_suggest_args,
    suggest_from_panel,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from keras_tbptt.core.plan import SplitPlan

# A divisor of the length within this fraction of the suggestion replaces it.
DEFAULT_TOLERANCE = 0.2


def _check_tolerance(tolerance):
    if isinstance(tolerance, bool) or not isinstance(tolerance, (float, int)):
        raise TypeError(
            "`tolerance` must be a number between 0 and 1 (a fraction of the "
            f"suggestion). Received: tolerance={tolerance!r} of type "
            f"{type(tolerance).__name__}"
        )
    if not 0 <= tolerance < 1:
        raise ValueError(
            "`tolerance` must be between 0 (inclusive) and 1 (a fraction of the "
            f"suggestion). Received: tolerance={tolerance}"
        )
    return float(tolerance)


def _row_lengths(lengths, streams):
    """Lengths of the rows the layout cuts (each series in `streams` parts)."""
    rows = set()
    for length in lengths:
        size, extra = divmod(int(length), streams)
        rows.add(size)
        if extra:
            rows.add(size + 1)
    return sorted(rows)


def _fit_to_lengths(suggested, row_lengths, tolerance):
    """`(timesteps, how)`: a divisor of every row length near `suggested`.

    Prefers the smallest common divisor in `[s, s * (1 + tolerance)]` (the
    window still covers what the suggestion asked for), then the largest in
    `[s * (1 - tolerance), s)`; `None` when no divisor is that close.
    """
    common = row_lengths[0]
    for length in row_lengths[1:]:
        common = _gcd(common, length)
    shown = common if len(row_lengths) == 1 else f"the common divisor {common} of the lengths"
    divisors = factors(common)
    above = [d for d in divisors if suggested <= d <= suggested * (1 + tolerance)]
    below = [d for d in divisors if suggested * (1 - tolerance) <= d < suggested]
    if above and above[0] == suggested:
        return suggested, f"{suggested} divides {shown}"
    if above:
        return above[0], f"rounded up from {suggested} to {above[0]}, which divides {shown}"
    if below:
        return below[-1], f"rounded down from {suggested} to {below[-1]}, which divides {shown}"
    return None, None


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def domain_split(
    series: np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame,
    targets: (
        np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame | str
        | Sequence[str] | None
    ) = None,
    *,
    method: str = "auto",
    batch_size: int | None = None,
    streams: int = 1,
    pack: bool = False,
    remainder: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    max_lag: int | None = None,
    alpha: float = 0.05,
    detrend: str = "auto",
    feature: int | str | None = None,
    id_col: Hashable | None = None,
    time_col: Hashable | None = None,
    time_format: str | None = None,
    nan: str = "error",
) -> SplitPlan:
    """Naive split with `timesteps` read from the series' ACF and PACF.

    Scheme 3 (domain-specific split) for regression series:
    `keras_tbptt.suggest_timesteps` reads the correlogram (a cycle makes
    the window cover one period; otherwise the AR order from the PACF),
    then the series are cut as by `naive_split` with a length they accept:

    ```
    suggestion: period 11        length 308 = 28 x 11
    series: |    11    |    11    | ... |    11    |    -> 28 chunks, no padding
    length 309, no divisor near 11: 28 chunks + |1 real step, 10 padding (weight 0)|
    ```

    - A divisor of the length (of every length, for a panel; of every
      stream with `streams > 1`) within `tolerance` of the suggestion
      replaces it: the smallest at or above the suggestion, else the
      largest below.
    - Otherwise the suggestion is kept and the last chunk is zero-padded
      with `sample_weight` 0 (`remainder="pad"`).
    - An explicit `remainder` wins: a divisor is still preferred, but when
      none is near, that policy applies (`"error"` raises, `"drop"` drops
      the tail).

    The plan carries the suggestion (`plan.suggestion`, with its table,
    candidates and `plot()`), and its `repr` ends with `timesteps_from=...`:
    why that length was chosen. `plan.validation_split` keeps both.

    Args:
        series: as for `naive_split`. The statistics read the series
            only, never the targets.
        targets, batch_size, streams, pack, id_col, time_col,
            time_format: as for `naive_split`.
        method, max_lag, alpha, detrend, feature: as for
            `suggest_timesteps`.
        remainder: `None` (default: pad only when no divisor is near),
            `"error"`, `"pad"` or `"drop"`.
        tolerance: how far (a fraction of the suggestion) a divisor of the
            length may be from it (default 0.2).
        nan: `"error"` (default), `"ffill"` or `"interpolate"`; `"drop"`
            is refused (the statistics need evenly spaced steps: call
            `suggest_timesteps(..., nan="interpolate")` and
            `naive_split(..., nan="drop")` yourself).

    Returns:
        A `SplitPlan` with `plan.suggestion` (a `TimestepsSuggestion`).

    Example: one-step-ahead sunspots. The ACF finds the 11-year cycle, and
    11 divides the 308 input years.

    >>> import statsmodels.api as sm, keras_tbptt
    >>> sunspots = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
    >>> plan = keras_tbptt.domain_split(sunspots[:-1], sunspots[1:])
    >>> plan.x.shape, plan.suggestion.period
    ((28, 11, 1), 11)
    >>> plan.timesteps_from[:45]
    'cycle of 11 steps in the ACF; 11 divides 308'
    """
    validate_layout_args(batch_size, streams, "error", pack)
    if remainder is not None:
        check_choice(remainder, "remainder", REMAINDERS)
    tolerance = _check_tolerance(tolerance)
    check_suggest_args(method, max_lag, alpha, detrend, nan, feature)
    panel, target_data = as_panel(
        series, targets, id_col=id_col, time_col=time_col,
        time_format=time_format, nan=nan,
    )
    target_cols = (
        [targets] if isinstance(targets, str)
        else list(targets) if isinstance(targets, (list, tuple))
        and targets and all(isinstance(t, str) for t in targets)
        else []
    )
    index = select_feature(
        panel, feature, feature_columns(series, id_col, time_col, target_cols)
    )
    suggestion = suggest_from_panel(
        panel, method=method, max_lag=max_lag, alpha=alpha, detrend=detrend,
        feature_index=index,
    )
    suggested = suggestion.timesteps
    row_lengths = _row_lengths(panel.lengths, streams)
    if suggested > row_lengths[0]:
        raise ValueError(
            f"`streams`={streams} cuts the series into streams of "
            f"{row_lengths[0]} steps, shorter than the suggested timesteps="
            f"{suggested}. Use fewer streams (or set timesteps yourself with "
            "naive_split)."
        )
    timesteps, how = _fit_to_lengths(suggested, row_lengths, tolerance)
    if timesteps is None:
        timesteps = suggested
        policy = remainder or "pad"
        how = {
            "pad": f"no divisor of the length within {tolerance:.0%}, last chunk padded",
            "drop": f"no divisor of the length within {tolerance:.0%}, tail dropped",
            "error": f"no divisor of the length within {tolerance:.0%}",
        }[policy]
    else:
        policy = remainder or "error"
    plan = make_plan(
        "domain_split",
        panel,
        target_data,
        timesteps=timesteps,
        batch_size=batch_size,
        streams=streams,
        remainder=policy,
        pack=pack,
    )
    plan.suggestion = suggestion
    plan.timesteps_from = f"{_short_rule(suggestion)}; {how}"
    return plan


def _short_rule(suggestion):
    """A few words for the plan's repr; the full sentence is `suggestion.rule`."""
    head = suggestion.rule.split(":")[0]
    if head == "cycle":
        return f"cycle of {suggestion.period} steps in the ACF"
    if head == "no structure":
        return "no structure in the ACF (white noise), short window"
    if head.startswith("ACF memory"):
        return f"ACF memory, {suggestion.timesteps} steps"
    return f"PACF significant to lag {suggestion.ar_order}"
