"""The correlogram of `suggest_timesteps`: stationarity tests, detrending,
the pooled ACF/PACF with its bands, and the rules that read a window
length from it (AR order, ACF memory, cycles, candidates).

Numpy here; statsmodels and scipy are imported inside the functions so
that `import keras_tbptt` stays fast. No Keras.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from keras_tbptt.core.layout import factors
from keras_tbptt.schemes.as_is import PRACTICAL_BPTT_LIMIT
from keras_tbptt.timesteps.suggestion import Candidate

# Smallest window suggested: a few steps for the gradient to see; longer
# memory is the stateful LSTM's job, not the window's.
MIN_TIMESTEPS = 5
# The AR order is the last significant PACF lag before this many lags in a
# row fall inside the band (later isolated spikes are expected by chance).
PACF_GAP = 3
# Highest multiple of a cycle that the peak search traces back to the cycle.
MAX_HARMONIC = 6


def stationarity(values, alpha):
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


def detrend(values, how):
    if how == "difference":
        return [np.diff(x) for x in values]
    if how == "linear":
        from scipy.signal import detrend

        return [detrend(x, type="linear") for x in values]
    return values


def pooled_correlogram(values, max_lag):
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


def bands(r, n_steps, alpha):
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


def ljung_box(r, n_steps, lags):
    from scipy.stats import chi2

    k = np.arange(1, lags + 1)
    q = n_steps * (n_steps + 2) * np.sum(r[k] ** 2 / (n_steps - k))
    return float(chi2.sf(q, lags))


def ar_order(significant):
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


def acf_memory(r, acf_band):
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


def find_cycle(r, n_steps, alpha):
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


def k1_for(k2):
    """A forward length for decoupled_split: a divisor of k2 near a quarter of the limit."""
    divisors = [d for d in factors(k2) if 10 <= d <= PRACTICAL_BPTT_LIMIT // 4]
    return divisors[-1] if divisors else PRACTICAL_BPTT_LIMIT // 4


def candidates(timesteps, period, ar_order, memory, lengths, tolerance=0.25):
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
