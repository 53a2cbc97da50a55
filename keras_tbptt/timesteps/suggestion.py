"""`TimestepsSuggestion`: what `suggest_timesteps` found, and its figure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import pandas as pd

from keras_tbptt.timesteps.horizon import GradientHorizon

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
        horizon: the `GradientHorizon` passed to `suggest_timesteps`
            (`horizon=`), or `None`. With one, `horizon_k2` is its
            suggested k2, `table` has an `input_gradient_norm` column (per
            lag, NaN past the lags it measured), `candidates` end with the
            k2, and `plot()` marks it: the model's reach next to the data's.
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
    horizon: GradientHorizon | None = None

    @property
    def horizon_k2(self) -> int | None:
        """The k2 the model's gradient suggests (`horizon.suggested`), or
        `None` without a horizon."""
        return None if self.horizon is None else self.horizon.suggested

    def __repr__(self) -> str:
        k2 = "" if self.horizon is None else f", horizon_k2={self.horizon_k2}"
        return (
            f"TimestepsSuggestion(timesteps={self.timesteps}, period={self.period}, "
            f"ar_order={self.ar_order}, detrend={self.detrend!r}{k2}, rule={self.rule!r})"
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
        if self.horizon is not None:
            lines.insert(1, f"gradient k2:         {self.horizon_k2} (gradient_horizon: "
                            f"{self.horizon.rule}; peak lag {self.horizon.peak_lag})")
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
            if self.horizon is not None:
                ax.axvline(
                    self.horizon_k2, color="tab:purple", linestyle="-.",
                    label=f"gradient k2={self.horizon_k2}",
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
