"""Suggest `timesteps` from the autocorrelation (ACF) and partial
autocorrelation (PACF) of a series, with statsmodels.

The data side of scheme 3 (domain-specific split): read the correlogram the
way a forecaster would and turn it into a window length. No Keras here;
statsmodels, scipy and matplotlib are imported inside the functions so that
`import keras_tbptt` stays fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from keras_tbptt.core.inputs import as_panel
from keras_tbptt.core.validation import check_choice, check_int
from keras_tbptt.schemes.as_is import PRACTICAL_BPTT_LIMIT
from keras_tbptt.timesteps import correlogram
from keras_tbptt.timesteps.correlogram import MIN_TIMESTEPS
from keras_tbptt.timesteps.horizon import GradientHorizon
from keras_tbptt.timesteps.suggestion import Candidate, TimestepsSuggestion

METHODS = ("auto", "period", "pacf", "acf")
DETRENDS = ("auto", "difference", "linear", "none")
NAN_POLICIES = ("error", "ffill", "interpolate")
# Lags searched by default: a quarter of the shortest series (room for two
# cycles of half its length), at least 40, at most twice the BPTT limit.
DEFAULT_MIN_LAGS = 40
# Ljung-Box test over this many lags (or max_lag, if smaller).
LJUNG_BOX_LAGS = 10
MIN_LENGTH = 10


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, (float, int)):
        raise TypeError(
            "`alpha` must be a number strictly between 0 and 1 (e.g. 0.05). "
            f"Received: alpha={alpha!r} of type {type(alpha).__name__}"
        )
    if not 0 < alpha < 1:
        raise ValueError(
            f"`alpha` must be strictly between 0 and 1 (e.g. 0.05). Received: alpha={alpha}"
        )
    return float(alpha)


def _check_nan(nan):
    if nan == "drop":
        raise ValueError(
            "`nan` must be 'error', 'ffill' or 'interpolate' for the "
            "autocorrelation statistics. Received: nan='drop', which removes "
            "steps and so shifts every lag after a gap; fill the gaps with "
            "nan='interpolate' instead (you can still split with nan='drop')."
        )
    return check_choice(nan, "nan", NAN_POLICIES)


def _check_feature(feature):
    if feature is not None and (
        isinstance(feature, bool) or not isinstance(feature, (int, np.integer, str))
    ):
        raise TypeError(
            "`feature` must be None, a feature position (int) or a column "
            f"name (str). Received: feature={feature!r} of type {type(feature).__name__}"
        )
    return feature


def check_suggest_args(method, max_lag, alpha, detrend, nan, feature):
    """Validate the suggestion arguments (shared with `domain_split`)."""
    check_choice(method, "method", METHODS)
    check_int(max_lag, "max_lag", minimum=1, allow_none=True)
    _check_alpha(alpha)
    check_choice(detrend, "detrend", DETRENDS)
    _check_nan(nan)
    _check_feature(feature)


def feature_columns(series, id_col, time_col, target_cols=()):
    """The feature columns `as_panel` keeps for a DataFrame, else None."""
    if not isinstance(series, pd.DataFrame):
        return None
    return [c for c in series.columns if c not in (id_col, time_col, *target_cols)]


def select_feature(panel, feature, columns):
    """Index of the analysed feature: the only one, or the one named."""
    n = panel.n_features
    labels = getattr(panel, "columns", None)  # pandas feature labels, when kept
    if panel.kind in ("frame", "long") and labels is not None and len(labels) == n:
        columns = list(labels)
    if feature is None:
        if n > 1:
            names = f" (columns {columns})" if columns else ""
            raise ValueError(
                f"`feature` must say which feature to analyse: `series` has {n} "
                f"features{names}. Pass feature=0..{n - 1}"
                + (" or a column name" if columns else "")
                + ", e.g. the target you forecast. Received: feature=None"
            )
        return 0
    if isinstance(feature, str):
        if not columns or feature not in columns:
            raise ValueError(
                "`feature` names a column that is not a feature of `series`. "
                f"Received: feature={feature!r}; feature columns are "
                f"{columns if columns else 'unnamed (not a DataFrame): pass a position'}"
            )
        return columns.index(feature)
    if not 0 <= feature < n:
        raise ValueError(
            f"`feature` must be a position between 0 and {n - 1} (`series` has "
            f"{n} features). Received: feature={feature}"
        )
    return int(feature)


def _refuse_constant(values, panel):
    """A constant series has no autocorrelation: refuse it before statsmodels
    fails on it with a message that names neither the series nor the fix."""
    for i, x in enumerate(values):
        if np.ptp(x) == 0:
            who = "`series`" if len(values) == 1 else (
                f"series {panel.ids[i]!r} of `series`" if panel.ids is not None
                else f"series {i} of `series`"
            )
            raise ValueError(
                f"{who} is constant (every value is {x[0]:g}): a constant "
                "series has no autocorrelation to read `timesteps` from. "
                "Drop it (or its feature), or choose `timesteps` yourself."
            )


def _check_horizon(horizon):
    if horizon is not None and not isinstance(horizon, GradientHorizon):
        raise TypeError(
            "`horizon` must be None or a GradientHorizon (the result of "
            "kt.gradient_horizon(model, x, y)). Received: horizon of type "
            f"{type(horizon).__name__}"
        )
    return horizon


def _with_horizon(table, candidates, horizon):
    """The correlogram table with the horizon's per-lag input-gradient norm,
    and the candidates with its k2 (the model's reach next to the data's)."""
    if horizon is None:
        return table, candidates
    norms = pd.Series(horizon.input_gradient_norm, index=horizon.lags)
    table = table.assign(input_gradient_norm=norms.reindex(table["lag"]).to_numpy())
    if horizon.suggested not in {c.timesteps for c in candidates}:
        candidates = (*candidates, Candidate(
            horizon.suggested, "k2 the model's gradient suggests (gradient_horizon)"))
    return table, candidates


def suggest_from_panel(panel, *, method, max_lag, alpha, detrend, feature_index,
                       horizon=None):
    """`suggest_timesteps` on a validated `Panel` (used by `domain_split`)."""
    values = [np.asarray(a[:, feature_index], dtype=np.float64) for a in panel.arrays]
    lengths = tuple(int(len(x)) for x in values)
    if min(lengths) < MIN_LENGTH:
        raise ValueError(
            f"`series` is too short for autocorrelation statistics: every series "
            f"needs at least {MIN_LENGTH} steps. Received lengths from "
            f"{min(lengths)} to {max(lengths)}."
        )
    _refuse_constant(values, panel)
    stationarity = None
    applied = detrend
    if detrend == "auto":
        stationarity = correlogram.stationarity(values, alpha)
        share = np.average(stationarity["difference"], weights=lengths)
        applied = "difference" if share > 0.5 else "none"
    values = correlogram.detrend(values, applied)
    shortest = min(len(x) for x in values)
    most = shortest // 2 - 1
    if max_lag is None:
        max_lag = min(most, max(DEFAULT_MIN_LAGS, min(shortest // 4, 2 * PRACTICAL_BPTT_LIMIT)))
    elif max_lag > most:
        raise ValueError(
            "`max_lag` must be less than half the shortest series (the PACF "
            "needs it).\n"
            f"- Expected: max_lag <= {most} (shortest series: {shortest} steps"
            f"{' after differencing' if applied == 'difference' else ''})\n"
            f"- Received: max_lag={max_lag}"
        )
    n_steps = sum(len(x) for x in values)
    r, p = correlogram.pooled_correlogram(values, max_lag)
    acf_band, band = correlogram.bands(r, n_steps, alpha)
    significant = np.abs(p) > band
    ar_order = correlogram.ar_order(significant)
    memory = correlogram.acf_memory(r, acf_band)
    lb_lags = min(LJUNG_BOX_LAGS, max_lag)
    ljung_box = correlogram.ljung_box(r, n_steps, lb_lags)
    cycle = correlogram.find_cycle(r, n_steps, alpha)  # reported whatever the method
    period = None if cycle is None else cycle["period"]
    what = {"none": "series", "difference": "differenced series",
            "linear": "linearly detrended series"}[applied]

    if cycle is not None and method in ("auto", "period"):
        timesteps = period
        rule = (
            f"cycle: the ACF of the {what} peaks at lag {cycle['lag']} "
            f"({cycle['acf']:.2f}, above the {cycle['threshold']:.2f} that short "
            f"memory and {max_lag} lags of chance allow) and the spectrum puts the cycle at "
            f"{cycle['spectral']:.1f} steps, so a window of {period} steps covers "
            "one full cycle."
        )
    elif method == "period":
        raise ValueError(
            f"method='period' found no significant cycle in the ACF of the {what} "
            f"(lags 1-{max_lag}). Use method='auto' (falls back to the PACF), "
            "method='pacf', or a larger `max_lag` if the cycle is longer."
        )
    elif method == "acf":
        timesteps = max(memory, MIN_TIMESTEPS)
        rule = (
            f"ACF memory: the ACF of the {what} stays outside its band for "
            f"{memory} lags, so the window covers that memory"
            + (f" (floor of {MIN_TIMESTEPS} steps)." if memory < MIN_TIMESTEPS else ".")
        )
    elif method == "auto" and ljung_box >= alpha:
        timesteps = MIN_TIMESTEPS
        rule = (
            f"no structure: the {what} looks like white noise (Ljung-Box p="
            f"{ljung_box:.2f} over {lb_lags} lags: no significant autocorrelation), "
            f"so the past barely helps; a short window of {MIN_TIMESTEPS} steps "
            "is enough."
        )
    else:
        timesteps = max(ar_order, MIN_TIMESTEPS)
        lead = "no cycle: " if method == "auto" else ""
        rule = (
            f"{lead}the PACF of the {what} is significant up to lag {ar_order} (the "
            f"AR order), so the window covers the lags that carry information"
            + (f" (floor of {MIN_TIMESTEPS} steps)." if ar_order < MIN_TIMESTEPS else ".")
        )
    timesteps = min(timesteps, min(lengths))
    if timesteps > PRACTICAL_BPTT_LIMIT:
        k1 = correlogram.k1_for(timesteps)
        advice = (
            f"{timesteps} steps is above the practical BPTT limit (about "
            f"{PRACTICAL_BPTT_LIMIT} steps): consider decoupled_split(series, "
            f"k1={k1}, k2={timesteps}), which backpropagates over the whole "
            f"window but updates every {k1} steps."
        )
        warnings.warn(advice, UserWarning, stacklevel=3)
        rule = f"{rule} {advice}"
    table = pd.DataFrame({
        "lag": np.arange(1, max_lag + 1),
        "acf": r[1:],
        "acf_band": acf_band[1:],
        "acf_significant": np.abs(r[1:]) > acf_band[1:],
        "pacf": p[1:],
        "band": band[1:],
        "significant": significant[1:],
    })
    table, candidates = _with_horizon(
        table, correlogram.candidates(timesteps, period, ar_order, memory, lengths), horizon)
    return TimestepsSuggestion(
        timesteps=int(timesteps),
        rule=rule,
        period=period,
        ar_order=int(ar_order),
        table=table,
        candidates=candidates,
        method=method,
        detrend=applied,
        stationarity=stationarity,
        ljung_box_pvalue=ljung_box,
        lengths=lengths,
        max_lag=int(max_lag),
        alpha=float(alpha),
        horizon=horizon,
    )


def suggest_timesteps(
    series: np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame,
    *,
    method: str = "auto",
    max_lag: int | None = None,
    alpha: float = 0.05,
    detrend: str = "auto",
    feature: int | str | None = None,
    id_col: Hashable | None = None,
    time_col: Hashable | None = None,
    time_format: str | None = None,
    nan: str = "error",
    horizon: GradientHorizon | None = None,
) -> TimestepsSuggestion:
    """Suggest `timesteps` for TBPTT from the ACF and PACF of the series.

    TBPTT backpropagates `timesteps` steps, so the window should reach the
    lags the series depends on. The ACF shows how long the series
    remembers itself and its cycles; the PACF shows which lags add
    information once the shorter ones are known (the AR order). statsmodels
    computes both, with their confidence bands. The differenced yearly
    sunspot numbers, lags 1 to 12 (bars reach the value, `.` is the band):

    ```
           lag:  1  2  3  4  5  6  7  8  9 10 11 12
    ACF   +0.50  #                          #  #      peaks again at lag 10,
          +0.25  #                       #  #  #  #   after the first zero
           band  .  .  .  .  .  .  .  .  .  .  .  .   crossing: a cycle
              0 -----------------------------------
          -0.25        #  #  #  #  #
          -0.50           #  #  #
    PACF  +0.50  #
          +0.25  #
           band  .  .  .  .  .  .  .  .  .  .  .  .   significant to lag 8,
              0 -----------------------------------   then quiet: AR order 8
          -0.25     #  #  #  #  #  #  #
    ```

    Rules (`method="auto"`), in order:

    1. **Cycle.** If the ACF has a significant peak after its first zero
       crossing (significant against Bartlett's band for the correlations
       before that crossing, widened for the number of lags searched), its
       lag, refined by the correlogram
       spectrum, is the period and `timesteps = period`: one window covers
       one full cycle. The highest peak wins unless a peak at a whole
       fraction of its lag is nearly as high (then that is the cycle).
    2. **No structure.** The Ljung-Box test (first 10 lags) does not
       reject white noise: `timesteps = 5`, with a rule that says so.
    3. **AR order.** Otherwise `timesteps = max(ar_order, 5)`: the last
       significant PACF lag before three insignificant lags in a row.

    `method="period"` requires rule 1 (raises when no cycle is found),
    `"pacf"` applies rule 3 only, `"acf"` uses how many lags the ACF stays
    outside its band; `period` is reported whatever the method. Above the practical BPTT limit (about 400 steps) the
    function warns and the rule suggests `decoupled_split` with `k2` =
    the period and a smaller `k1`.

    Detrending: a trending series (CO2) has an ACF that never decays, which
    hides its cycle. `detrend="auto"` runs the ADF test (null: unit root)
    and the KPSS test (null: stationary) on every series and takes first
    differences when both say "not stationary" (for a panel: when that
    holds for most of the steps). First differences keep a seasonal cycle
    in the ACF (seasonal differencing would remove it, so it is never
    applied). `"difference"`, `"linear"` (remove a least-squares line) and
    `"none"` force the choice.

    A panel (several series) gets one suggestion: the ACF and PACF of each
    series are averaged with weights proportional to their lengths, and
    the bands use all steps.

    Args:
        series: the data, in any layout the schemes accept (1-D, 2-D
            `[length, features]`, 3-D, a list of series, pandas, or a
            long-format DataFrame with `id_col`/`time_col`).
        method: `"auto"` (default), `"period"`, `"pacf"` or `"acf"`.
        max_lag: lags to examine; default a quarter of the shortest series,
            at least 40, at most 800, and always less than half of it.
        alpha: significance level of the bands and tests (default 0.05).
        detrend: `"auto"` (default), `"difference"`, `"linear"` or `"none"`.
        feature: which feature to analyse when the series have several
            (position or DataFrame column name); required then.
        id_col, time_col: long-format DataFrame columns (as for the schemes).
        time_format: the format of a `time_col` of text (as for the schemes).
        nan: `"error"` (default), `"ffill"` or `"interpolate"` (fill gaps
            before the statistics). `"drop"` is refused: it shifts the lags.
        horizon: optional `GradientHorizon` (`kt.gradient_horizon` on a model
            trained on this data): its suggested k2, how far back the
            model's gradient reaches, is reported next to the correlogram's
            length (`horizon_k2`, a line of `print`, a candidate, an
            `input_gradient_norm` column of `table`, a line in `plot()`).
            `timesteps` stays the data's suggestion.

    Returns:
        A `TimestepsSuggestion`: `timesteps`, `rule`, `period`, `ar_order`,
        `table` (the correlogram), `candidates`, and `plot()` for the
        ACF/PACF figure. `print(suggestion)` shows it all in one block.

    Example: the yearly sunspot numbers have an 11-year cycle.

    >>> import statsmodels.api as sm, keras_tbptt
    >>> sunspots = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"]
    >>> suggestion = keras_tbptt.suggest_timesteps(sunspots)
    >>> suggestion.timesteps, suggestion.period, suggestion.ar_order
    (11, 11, 8)
    >>> suggestion.rule[:52]
    'cycle: the ACF of the differenced series peaks at la'
    >>> suggestion.table.columns.tolist()
    ['lag', 'acf', 'acf_band', 'acf_significant', 'pacf', 'band', 'significant']
    """
    check_suggest_args(method, max_lag, alpha, detrend, nan, feature)
    _check_horizon(horizon)
    panel, _ = as_panel(
        series, id_col=id_col, time_col=time_col, time_format=time_format, nan=nan
    )
    index = select_feature(panel, feature, feature_columns(series, id_col, time_col))
    return suggest_from_panel(
        panel, method=method, max_lag=max_lag, alpha=alpha, detrend=detrend,
        feature_index=index, horizon=horizon,
    )
