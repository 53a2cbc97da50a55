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
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from keras_tbptt.core.inputs import as_panel
from keras_tbptt.core.layout import factors
from keras_tbptt.core.validation import check_choice, check_int
from keras_tbptt.schemes.as_is import PRACTICAL_BPTT_LIMIT

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METHODS = ("auto", "period", "pacf", "acf")
DETRENDS = ("auto", "difference", "linear", "none")
NAN_POLICIES = ("error", "ffill", "interpolate")
# Smallest window suggested: a few steps for the gradient to see; longer
# memory is the stateful LSTM's job, not the window's.
MIN_TIMESTEPS = 5
# The AR order is the last significant PACF lag before this many lags in a
# row fall inside the band (later isolated spikes are expected by chance).
PACF_GAP = 3
# Lags searched by default: a quarter of the shortest series (room for two
# cycles of half its length), at least 40, at most twice the BPTT limit.
DEFAULT_MIN_LAGS = 40
# Ljung-Box test over this many lags (or max_lag, if smaller).
LJUNG_BOX_LAGS = 10
MIN_LENGTH = 10
# Highest multiple of a cycle that the peak search traces back to the cycle.
MAX_HARMONIC = 6


class Candidate(NamedTuple):
    """A window length worth trying and why."""

    timesteps: int
    reason: str

    def __str__(self) -> str:
        return f"{self.timesteps} ({self.reason})"


@dataclass(frozen=True, eq=False)
class TimestepsSuggestion:
    """What `suggest_timesteps` found: the length, the rule and the evidence.

    Attributes:
        timesteps: the suggested window length (int).
        rule: one sentence: which rule chose `timesteps` and why.
        period: the dominant cycle in steps, or `None` when the ACF shows
            no significant cycle.
        ar_order: the last significant PACF lag (0 when none).
        table: pandas DataFrame, one row per lag 1..`max_lag`: `lag`, `acf`,
            `acf_band` (Bartlett band of the ACF), `acf_significant`,
            `pacf`, `band` (the PACF band, z / sqrt(steps)) and
            `significant` (|pacf| > band).
        candidates: short ranked tuple of `Candidate(timesteps, reason)`:
            the suggestion, nearby divisors of the length, one and two
            periods, the AR order.
        method: the method asked for.
        detrend: what was done to the series before the statistics:
            `"none"`, `"difference"` or `"linear"`.
        stationarity: for `detrend="auto"`, a DataFrame with the ADF and
            KPSS p-values of every series and whether it was differenced;
            otherwise `None`.
        ljung_box_pvalue: p-value of the Ljung-Box test of no
            autocorrelation (pooled ACF, first 10 lags).
        lengths: length of every series (after NaN handling).
        max_lag: the lags examined.
        alpha: significance level of the bands and tests.
    """

    timesteps: int
    rule: str
    period: int | None
    ar_order: int
    table: pd.DataFrame
    candidates: tuple[Candidate, ...]
    method: str
    detrend: str
    stationarity: pd.DataFrame | None
    ljung_box_pvalue: float
    lengths: tuple[int, ...]
    max_lag: int
    alpha: float

    def __repr__(self) -> str:
        return (
            f"TimestepsSuggestion(timesteps={self.timesteps}, period={self.period}, "
            f"ar_order={self.ar_order}, detrend={self.detrend!r}, rule={self.rule!r})"
        )

    def __str__(self) -> str:
        n = len(self.lengths)
        data = (
            f"1 series of {self.lengths[0]} steps"
            if n == 1
            else f"{n} series of {min(self.lengths)}"
            + (f"-{max(self.lengths)}" if max(self.lengths) > min(self.lengths) else "")
            + " steps, pooled"
        )
        lines = [
            f"suggested timesteps: {self.timesteps}",
            f"rule:       {self.rule}",
            f"period:     {self.period if self.period is not None else 'none found'}",
            f"AR order:   {self.ar_order} (last significant PACF lag)",
            f"detrend:    {self.detrend}",
            f"Ljung-Box:  p={self.ljung_box_pvalue:.3g} (no-autocorrelation test)",
            f"data:       {data}; lags 1-{self.max_lag}, alpha={self.alpha}",
            "candidates: " + ", ".join(map(str, self.candidates)),
        ]
        return "\n".join(lines)

    def plot(self, figsize: tuple[float, float] = (8, 5)) -> Figure:
        """ACF and PACF stems with their bands, the chosen lag and the period.

        Builds a `matplotlib.figure.Figure` directly (no pyplot state, no
        window): save it with `fig.savefig("acf.png")` or show it in a
        notebook. Works headless.

        Returns:
            A `matplotlib.figure.Figure` with two axes (ACF, PACF).

        Example:

        >>> import numpy as np, keras_tbptt
        >>> steps = np.arange(240)
        >>> cycle = np.sin(2 * np.pi * steps / 12) + np.random.default_rng(0).normal(size=240)
        >>> suggestion = keras_tbptt.suggest_timesteps(cycle)
        >>> suggestion.timesteps, suggestion.period
        (12, 12)
        >>> fig = suggestion.plot()
        >>> [ax.get_ylabel() for ax in fig.axes]
        ['ACF', 'PACF']
        >>> # fig.savefig("acf_pacf.png")
        """
        from matplotlib.figure import Figure

        table = self.table
        lags = table["lag"].to_numpy()
        fig = Figure(figsize=figsize, layout="constrained")
        axes = fig.subplots(2, 1, sharex=True)
        panels = (
            (axes[0], "acf", "acf_band", "ACF"),
            (axes[1], "pacf", "band", "PACF"),
        )
        for ax, column, band, label in panels:
            values = table[column].to_numpy()
            ax.fill_between(
                lags, -table[band], table[band], color="tab:blue", alpha=0.2,
                linewidth=0, label=f"{100 * (1 - self.alpha):g}% band",
            )
            ax.vlines(lags, 0, values, color="tab:blue", linewidth=1)
            ax.plot(lags, values, "o", color="tab:blue", markersize=2.5)
            ax.axhline(0, color="black", linewidth=0.6)
            ax.axvline(
                self.timesteps, color="tab:red", linestyle="--",
                label=f"timesteps={self.timesteps}",
            )
            if self.period is not None and self.period != self.timesteps:
                ax.axvline(
                    self.period, color="tab:green", linestyle=":",
                    label=f"period={self.period}",
                )
            ax.set_ylabel(label)
        axes[1].set_xlabel("lag (steps)")
        axes[0].legend(loc="upper right", fontsize="small")
        detrend = "" if self.detrend == "none" else f" ({self.detrend})"
        axes[0].set_title(
            f"ACF and PACF{detrend}: suggested timesteps={self.timesteps}",
            fontsize="medium",
        )
        return fig


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


def _feature_columns(series, id_col, time_col, target_cols=()):
    """The feature columns `as_panel` keeps for a DataFrame, else None."""
    if not isinstance(series, pd.DataFrame):
        return None
    return [c for c in series.columns if c not in (id_col, time_col, *target_cols)]


def _select_feature(panel, feature, columns):
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


def _stationarity(values, alpha):
    """ADF and KPSS p-values; difference when both say 'not stationary'."""
    from statsmodels.tsa.stattools import adfuller, kpss

    rows = []
    for x in values:
        with warnings.catch_warnings():
            # KPSS warns when its p-value is outside its table (0.01-0.1).
            warnings.simplefilter("ignore")
            adf_p = float(adfuller(x, autolag="AIC")[1])
            kpss_p = float(kpss(x, regression="c", nlags="auto")[1])
        rows.append((adf_p, kpss_p, adf_p >= alpha and kpss_p < alpha))
    return pd.DataFrame(rows, columns=["adf_pvalue", "kpss_pvalue", "difference"])


def _detrend(values, how):
    if how == "difference":
        return [np.diff(x) for x in values]
    if how == "linear":
        from scipy.signal import detrend

        return [detrend(x, type="linear") for x in values]
    return values


def _pooled_correlogram(values, max_lag):
    """Length-weighted ACF and PACF (lags 0..max_lag) of every series."""
    from statsmodels.tsa.stattools import acf, pacf

    weights = np.array([len(x) for x in values], dtype=np.float64)
    weights /= weights.sum()
    r = np.zeros(max_lag + 1)
    p = np.zeros(max_lag + 1)
    for w, x in zip(weights, values):
        if np.ptp(x) == 0:
            raise ValueError(
                "`series` has a constant series (after detrending): its "
                "autocorrelation is undefined. Remove it or pass detrend='none'."
            )
        r += w * acf(x, nlags=max_lag, fft=True)
        # Levinson-Durbin on the biased autocovariance: the same values as
        # method="ywm" (Yule-Walker MLE), in O(lags^2) instead of O(lags^4).
        p += w * pacf(x, nlags=max_lag, method="ldb")
    return r, p


def _bands(r, n_steps, alpha):
    """Bartlett band of the ACF and the white-noise band of the PACF.

    The formulas of `statsmodels.tsa.stattools.acf(alpha=...)` and
    `pacf(alpha=...)`, applied to the pooled estimate with all steps of the
    panel as the sample size (one series: identical to statsmodels).
    """
    from scipy.stats import norm

    z = norm.ppf(1 - alpha / 2)
    var = np.full(len(r), 1.0 / n_steps)
    var[0] = 0
    var[2:] *= 1 + 2 * np.cumsum(r[1:-1] ** 2)
    return z * np.sqrt(var), np.full(len(r), z / np.sqrt(n_steps))


def _ljung_box(r, n_steps, lags):
    from scipy.stats import chi2

    k = np.arange(1, lags + 1)
    q = n_steps * (n_steps + 2) * np.sum(r[k] ** 2 / (n_steps - k))
    return float(chi2.sf(q, lags))


def _ar_order(significant):
    """Last significant PACF lag before `PACF_GAP` insignificant lags in a row."""
    last, run = 0, 0
    for lag, flag in enumerate(significant[1:], start=1):
        if flag:
            last, run = lag, 0
        else:
            run += 1
            if run >= PACF_GAP:
                break
    return last


def _acf_memory(r, acf_band):
    """Lags for which the ACF stays outside its band, from lag 1."""
    inside = np.flatnonzero(np.abs(r[1:]) <= acf_band[1:])
    return int(inside[0]) if len(inside) else len(r) - 1


def _spectral_period(r, lag):
    """Refine an ACF peak at `lag` with the correlogram spectrum near it.

    Blackman-Tukey estimate from the (pooled) ACF with a Tukey-Hanning
    window: averages over every lag, so it is less noisy than one ACF
    value and gives the cycle to a fraction of a step.
    """
    max_lag = len(r) - 1
    k = np.arange(1, max_lag + 1)
    window = 0.5 * (1 + np.cos(np.pi * k / (max_lag + 1)))
    periods = np.linspace(0.8 * lag, 1.25 * lag, 400)
    power = 1 + 2 * (window * r[1:]) @ np.cos(2 * np.pi * np.outer(k, 1 / periods))
    best = int(np.argmax(power))
    if best in (0, len(periods) - 1):  # no interior maximum: keep the ACF lag
        return float(lag)
    return float(periods[best])


def _find_cycle(r, n_steps, alpha):
    """The dominant cycle of the ACF, or None.

    A cycle is a local maximum of the ACF after its first zero crossing (a
    cycle swings below its mean within half a period) that is too high for
    the short-range memory alone: the threshold is Bartlett's band for a
    process whose correlations end at the first zero crossing, widened for
    the number of lags searched (Bonferroni), so neither white nor red
    noise produces cycles by chance. The highest such peak wins, unless a
    peak near a whole fraction of its lag is nearly as high (then that is
    the fundamental and the higher one a multiple).
    """
    from scipy.stats import norm

    max_lag = len(r) - 1
    below = np.flatnonzero(r[1:] < 0)
    if not len(below):
        return None
    crossing = int(below[0]) + 1  # first lag with a negative ACF
    memory = 1 + 2 * np.sum(r[1:crossing] ** 2)
    threshold = norm.ppf(1 - alpha / (2 * max_lag)) * np.sqrt(memory / n_steps)
    peaks = [
        k
        for k in range(max(crossing + 1, 2), max_lag)
        if r[k] >= r[k - 1] and r[k] >= r[k + 1] and r[k] > threshold
    ]
    if not peaks:
        return None
    highest = max(peaks, key=lambda k: r[k])
    lag = highest
    # The highest peak may be the 2nd..6th multiple of the cycle (noise or
    # a slowly decaying ACF); prefer the shortest such fundamental.
    for divisor in range(min(MAX_HARMONIC, highest // 2), 1, -1):
        target = highest / divisor
        near = [
            k for k in peaks
            if abs(k - target) <= max(1.0, 0.1 * target) and r[k] >= 0.5 * r[highest]
        ]
        if near:
            lag = max(near, key=lambda k: r[k])
            break
    spectral = _spectral_period(r, lag)
    return {
        "lag": lag,
        "acf": float(r[lag]),
        "threshold": float(threshold),
        "spectral": spectral,
        "period": max(2, int(round(spectral))),
    }


def _k1_for(k2):
    """A forward length for decoupled_split: a divisor of k2 near a quarter of the limit."""
    divisors = [d for d in factors(k2) if 10 <= d <= PRACTICAL_BPTT_LIMIT // 4]
    return divisors[-1] if divisors else PRACTICAL_BPTT_LIMIT // 4


def _candidates(timesteps, period, ar_order, memory, lengths, tolerance=0.25):
    common = int(np.gcd.reduce(np.asarray(lengths, dtype=np.int64)))
    divisors = [
        d for d in factors(common)
        if d > 1 and abs(d - timesteps) <= tolerance * timesteps and d != timesteps
    ]
    divisors.sort(key=lambda d: (abs(d - timesteps), -d))
    ranked = [Candidate(timesteps, "suggested")]
    ranked += [Candidate(d, f"divides the length {common}") for d in divisors[:2]]
    if period is not None:
        ranked += [Candidate(period, "one period"), Candidate(2 * period, "two periods")]
    ranked += [
        Candidate(max(ar_order, MIN_TIMESTEPS), f"PACF order {ar_order}"),
        Candidate(max(memory, MIN_TIMESTEPS), f"ACF memory {memory}"),
    ]
    seen, out = set(), []
    for candidate in ranked:
        if candidate.timesteps not in seen and candidate.timesteps <= min(lengths):
            seen.add(candidate.timesteps)
            out.append(candidate)
    return tuple(out[:6])


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


def suggest_from_panel(panel, *, method, max_lag, alpha, detrend, feature_index):
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
        stationarity = _stationarity(values, alpha)
        share = np.average(stationarity["difference"], weights=lengths)
        applied = "difference" if share > 0.5 else "none"
    values = _detrend(values, applied)
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
    r, p = _pooled_correlogram(values, max_lag)
    acf_band, band = _bands(r, n_steps, alpha)
    significant = np.abs(p) > band
    ar_order = _ar_order(significant)
    memory = _acf_memory(r, acf_band)
    lb_lags = min(LJUNG_BOX_LAGS, max_lag)
    ljung_box = _ljung_box(r, n_steps, lb_lags)
    cycle = _find_cycle(r, n_steps, alpha)  # reported whatever the method
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
        k1 = _k1_for(timesteps)
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
    return TimestepsSuggestion(
        timesteps=int(timesteps),
        rule=rule,
        period=period,
        ar_order=int(ar_order),
        table=table,
        candidates=_candidates(timesteps, period, ar_order, memory, lengths),
        method=method,
        detrend=applied,
        stationarity=stationarity,
        ljung_box_pvalue=ljung_box,
        lengths=lengths,
        max_lag=int(max_lag),
        alpha=float(alpha),
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
    panel, _ = as_panel(
        series, id_col=id_col, time_col=time_col, time_format=time_format, nan=nan
    )
    index = _select_feature(panel, feature, _feature_columns(series, id_col, time_col))
    return suggest_from_panel(
        panel, method=method, max_lag=max_lag, alpha=alpha, detrend=detrend,
        feature_index=index,
    )
