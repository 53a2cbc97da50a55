"""`GridSearchResult`: the table of a grid search and its statistics."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

RESULT_COLUMNS = ("repeat", "seed", "score", "train_loss", "epochs", "seconds")


class GridSearchResult:
    """The runs of `keras_tbptt.grid_search` and what they say.

    Attributes:
        results: tidy `pandas.DataFrame`, one row per run: the candidate
            (`timesteps`, or `k1` and `k2` for the decoupled scheme),
            `repeat`, `seed`, `score` (held-out loss or metric), `train_loss`
            (last epoch), `epochs` and `seconds` (build, fit and evaluate).
        keys: the columns naming a candidate: `("timesteps",)` or
            `("k1", "k2")`.
        metric: the name of the score (`"loss"` unless `metric=` was given).
        higher_is_better: whether larger scores are better.
        complete: `False` when the search was interrupted (Ctrl-C) before
            every run finished; re-run the same call with the same
            `checkpoint` to finish it.

    Example:

    >>> import pandas as pd
    >>> from keras_tbptt.timesteps.grid_result import GridSearchResult
    >>> table = pd.DataFrame({
    ...     "timesteps": [5, 5, 5, 10, 10, 10], "repeat": [0, 1, 2] * 2,
    ...     "seed": [0, 1, 2] * 2, "score": [0.9, 1.0, 1.1, 0.5, 0.62, 0.7],
    ...     "train_loss": 0.5, "epochs": 3, "seconds": 1.0})
    >>> result = GridSearchResult(table)
    >>> result.best
    10
    >>> result.summary()[["n", "mean", "median"]].round(3)
               n   mean  median
    timesteps
    5          3  1.000    1.00
    10         3  0.607    0.62
    >>> result.compare()["worse"].to_dict()  # 5 is significantly worse than 10
    {10: False, 5: True}
    """

    def __init__(
        self,
        results: pd.DataFrame,
        keys: Sequence[str] = ("timesteps",),
        metric: str = "loss",
        higher_is_better: bool = False,
        complete: bool = True,
    ) -> None:
        self.keys: tuple[str, ...] = tuple(keys)
        missing = [c for c in (*self.keys, *RESULT_COLUMNS) if c not in results.columns]
        if missing:
            raise ValueError(
                f"`results` lacks the columns {missing}. Received columns: "
                f"{list(results.columns)}"
            )
        self.results: pd.DataFrame = (
            results.sort_values([*self.keys, "repeat"]).reset_index(drop=True)
        )
        self.metric: str = metric
        self.higher_is_better: bool = bool(higher_is_better)
        self.complete: bool = bool(complete)

    def __repr__(self) -> str:
        candidates = self.results.groupby(list(self.keys)).ngroups
        best = self.best if len(self.results) else None
        return (
            f"GridSearchResult(runs={len(self.results)}, candidates={candidates}, "
            f"metric={self.metric!r}, best={best!r}, complete={self.complete})"
        )

    def _grouped(self):
        return self.results.groupby(list(self.keys) if len(self.keys) > 1 else self.keys[0])

    def summary(self, confidence: float = 0.95) -> pd.DataFrame:
        """Per candidate: `n`, `mean`, `std`, `sem`, a t-interval and `median`.

        Args:
            confidence: level of the t-interval for the mean (default 0.95):
                columns `ci_low` and `ci_high`, `mean -+ t * sem` with the
                Student t quantile for `n - 1` degrees of freedom (NaN for a
                candidate with one run).

        Returns:
            A DataFrame indexed by the candidate, sorted by it.
        """
        from scipy import stats

        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not (
            0 < confidence < 1
        ):
            raise ValueError(
                "`confidence` must be a number strictly between 0 and 1. "
                f"Received: confidence={confidence!r}"
            )
        scores = self._grouped()["score"]
        table = scores.agg(n="count", mean="mean", std="std", median="median")
        table["sem"] = table["std"] / np.sqrt(table["n"])
        with np.errstate(invalid="ignore"):
            quantile = stats.t.ppf(0.5 + confidence / 2, table["n"] - 1)
        table["ci_low"] = table["mean"] - quantile * table["sem"]
        table["ci_high"] = table["mean"] + quantile * table["sem"]
        table["n"] = table["n"].astype(int)
        return table[["n", "mean", "std", "sem", "ci_low", "ci_high", "median"]]

    @property
    def best(self) -> int | tuple[int, int] | None:
        """The candidate with the best mean score (ties: the shortest).

        An int (`timesteps`) or a `(k1, k2)` tuple; `None` without runs.
        """
        means = self._grouped()["score"].mean().dropna()
        if means.empty:
            return None
        best = means.max() if self.higher_is_better else means.min()
        label = means.index[means == best].min()
        return tuple(int(v) for v in label) if isinstance(label, tuple) else int(label)

    def compare(
        self, alpha: float = 0.05, test: str = "t", correction: str | None = "holm"
    ) -> pd.DataFrame:
        """Which candidates are significantly worse than the best, and p-values.

        Each candidate is paired with the best one run by run: repeat `r` of
        both used the same seed, so the difference of their scores is free
        of seed noise. A one-sided paired test asks whether the candidate is
        worse than the best (`test="t"`: `scipy.stats.ttest_rel`;
        `test="wilcoxon"`: `scipy.stats.wilcoxon`, which needs no normality
        but at least 5 pairs to reach p < 0.05). With several candidates,
        `correction="holm"` (default) adjusts the p-values for multiple
        comparisons (Holm-Bonferroni: controls the chance of calling any
        candidate worse by mistake); `correction=None` reports raw ones.

        The best candidate is chosen from the same data, so the comparison
        slightly favours it; with many candidates and few repeats, confirm a
        close call with fresh seeds (`seed=`).

        Args:
            alpha: significance level (default 0.05).
            test: `"t"` (default) or `"wilcoxon"`.
            correction: `"holm"` (default) or `None`.

        Returns:
            A DataFrame indexed by candidate (sorted by mean score, best
            first): `mean`, `difference` (mean of the paired differences,
            candidate minus best), `pairs`, `statistic`, `p_value`,
            `p_adjusted` and `worse` (`p_adjusted < alpha`). The best
            candidate has NaN statistics and `worse=False`; so does every
            candidate that is not worse in the data.
        """
        from scipy import stats

        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
            raise ValueError(
                f"`alpha` must be a number strictly between 0 and 1. Received: alpha={alpha!r}"
            )
        if test not in ("t", "wilcoxon"):
            raise ValueError(f"`test` must be 't' or 'wilcoxon'. Received: test={test!r}")
        if correction not in ("holm", None):
            raise ValueError(
                f"`correction` must be 'holm' or None. Received: correction={correction!r}"
            )
        best = self.best
        if best is None:
            raise ValueError("compare() needs at least one finished run.")
        sign = -1.0 if self.higher_is_better else 1.0  # positive difference = worse
        wide = self.results.pivot_table(
            index="repeat", columns=list(self.keys), values="score", aggfunc="first"
        )
        if len(self.keys) == 1:
            wide.columns = wide.columns.get_level_values(0)
        rows = {}
        for label in wide.columns:
            pairs = wide[[label, best]].dropna()
            difference = sign * (pairs[label] - pairs[best]).to_numpy()
            statistic = p_value = np.nan
            if label != best and len(difference) >= 2:
                if not np.any(difference):
                    statistic, p_value = 0.0, 1.0  # identical runs: not worse
                elif test == "t":
                    statistic, p_value = stats.ttest_rel(
                        difference, np.zeros_like(difference), alternative="greater"
                    )
                else:
                    statistic, p_value = stats.wilcoxon(difference, alternative="greater")
            rows[label] = {
                "mean": wide[label].mean(),
                "difference": sign * difference.mean() if len(difference) else np.nan,
                "pairs": len(difference),
                "statistic": float(statistic),
                "p_value": float(p_value),
            }
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index = (
            pd.MultiIndex.from_tuples(table.index, names=self.keys)
            if len(self.keys) > 1
            else pd.Index(table.index, name=self.keys[0])
        )
        table["p_adjusted"] = _holm(table["p_value"].to_numpy()) if correction else table["p_value"]
        table["worse"] = table["p_adjusted"] < alpha
        return table.sort_values("mean", ascending=not self.higher_is_better, kind="stable")

    def plot(self, ax: Axes | None = None, confidence: float = 0.95) -> Figure:
        """Box plot of the scores per candidate, with means and t-intervals.

        Args:
            ax: a matplotlib `Axes` to draw on (default: a new figure).
            confidence: level of the interval drawn around each mean.

        Returns:
            The matplotlib `Figure`.
        """
        import matplotlib.pyplot as plt

        summary = self.summary(confidence)
        if ax is None:
            fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(summary) + 2), 3.5))
        else:
            fig = ax.figure
        grouped = dict(list(self._grouped()["score"]))
        labels = list(summary.index)
        positions = np.arange(1, len(labels) + 1)
        ax.boxplot([grouped[label].dropna().to_numpy() for label in labels],
                   positions=positions, widths=0.5)
        ax.errorbar(
            positions, summary["mean"],
            yerr=[summary["mean"] - summary["ci_low"], summary["ci_high"] - summary["mean"]],
            fmt="o", color="tab:red", capsize=4,
            label=f"mean and {confidence:.0%} t-interval",
        )
        ax.set_xticks(positions)
        ax.set_xticklabels(
            ["/".join(map(str, label)) if isinstance(label, tuple) else str(label)
             for label in labels]
        )
        ax.set_xlabel("/".join(self.keys))
        ax.set_ylabel(f"held-out {self.metric}")
        ax.set_title(f"Grid search: {len(self.results)} runs, best {self.best}")
        ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        return fig

    def to_csv(self, path: str | os.PathLike[str], **kwargs: Any) -> None:
        """Write `results` to `path` (CSV, no index); `kwargs` go to pandas."""
        return self.results.to_csv(path, index=False, **kwargs)


def _holm(p_values):
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN, not counted)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted
