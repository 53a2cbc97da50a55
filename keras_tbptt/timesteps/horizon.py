"""`GradientHorizon`: how far back a model's gradient reaches, as measured
by `keras_tbptt.gradient_horizon`.

Plain numpy and pandas (matplotlib inside `plot`): the measurement needs
Keras, its result does not, so it can be stored, compared and handed to
the data side (`candidates_around()` gives lengths for `grid_search`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def excess(input_gradient_norm: np.ndarray) -> np.ndarray:
    """The input-gradient norm above the level of an evenly spread one
    (its mean over the lags), per lag: the part that says where the
    gradient looks, without the diffuse floor every lag carries."""
    norms = np.asarray(input_gradient_norm, dtype=float)
    return np.maximum(norms - norms.mean(), 0.0) if len(norms) else norms


def coverage(input_gradient_norm: np.ndarray, candidates: Sequence[int]) -> np.ndarray:
    """Per candidate k2, the share of the `excess` input-gradient mass at
    lags below it.

    `truncate_gradient=k2` lets the loss at a step reach at most the inputs
    of lags `0 .. k2 - 1`, so this is the part that k2 keeps.
    """
    cumulative = np.concatenate([[0.0], np.cumsum(excess(input_gradient_norm))])
    total = cumulative[-1]
    reach = np.minimum(np.asarray(candidates), len(input_gradient_norm))
    return cumulative[reach] / total if total > 0 else np.full(len(reach), np.nan)


def smallest_covering(
    input_gradient_norm: np.ndarray, candidates: Sequence[int], threshold: float
) -> int:
    """The smallest candidate whose `coverage` reaches `threshold`, else the
    largest candidate (the rule of `gradient_horizon`)."""
    covered = coverage(input_gradient_norm, candidates)
    reaching = [k2 for k2, share in zip(candidates, covered, strict=True)
                if not np.isnan(share) and share >= threshold - 1e-12]
    return int(reaching[0]) if reaching else int(candidates[-1])


class GradientHorizon:
    """What `keras_tbptt.gradient_horizon` measured: gradient agreement per
    candidate k2, input-gradient mass per lag, and the suggested k2.

    Attributes:
        candidates: the k2 values compared, ascending (tuple of int).
        cosine: per candidate, the cosine similarity of the truncated
            gradient to the full-BPTT one, over all trainable weights.
        relative_error: per candidate, `||g_k2 - g_full|| / ||g_full||`
            over all trainable weights.
        recurrent_cosine, recurrent_relative_error: the same over the
            weights of the `TruncatedRNN` layers only (the layers above them
            get the same gradient whatever k2 is, so they pull `cosine`
            towards 1).
        lags: `0 .. timesteps - 1`.
        input_gradient_norm: per lag, the norm of the gradient of the loss
            at a step with respect to the input that many steps before it,
            averaged over the sampled steps and batches and normalised to
            sum to 1 (a distribution over lags, comparable across models).
        coverage: per candidate, the share of the input-gradient mass above
            the uniform level (`input_gradient_norm - 1 / timesteps`,
            clipped at 0) at lags below it: what `truncate_gradient=k2`
            keeps of the lags the gradient singles out (NaN when the
            curve is flat).
        suggested: the smallest candidate whose `coverage` reaches
            `threshold` (the largest candidate if none does, or if the curve
            is flat).
        threshold: the coverage asked of the suggestion.
        timesteps: the length of the sequences measured.
        batches: the number of batches the gradients were averaged over.
        rule: one sentence: why `suggested` was chosen.

    Example: an input-gradient mass above the uniform level (1/6) on lags
    0-1 only; 2 of 6 steps keep all of it.

    >>> import numpy as np
    >>> from keras_tbptt.timesteps.horizon import GradientHorizon
    >>> horizon = GradientHorizon(
    ...     candidates=[1, 2, 4, 6], cosine=[0.5, 0.8, 1.0, 1.0],
    ...     relative_error=[0.9, 0.6, 0.0, 0.0],
    ...     recurrent_cosine=[0.2, 0.6, 1.0, 1.0],
    ...     recurrent_relative_error=[1.0, 0.8, 0.0, 0.0],
    ...     input_gradient_norm=[0.6, 0.4, 0.0, 0.0, 0.0, 0.0],
    ...     threshold=0.95, batches=1)
    >>> horizon
    GradientHorizon(suggested=2, timesteps=6, candidates=(1, 2, 4, 6), threshold=0.95, rule='...')
    >>> horizon.coverage.round(2).tolist()
    [0.65, 1.0, 1.0, 1.0]
    >>> horizon.candidates_around()
    (1, 2, 4)
    >>> horizon.candidates_around(k1=3)  # windows advancing by 3 need k2 >= 4
    (2, 4, 6)
    """

    def __init__(
        self,
        candidates: Sequence[int],
        cosine: Sequence[float],
        relative_error: Sequence[float],
        recurrent_cosine: Sequence[float],
        recurrent_relative_error: Sequence[float],
        input_gradient_norm: Sequence[float],
        threshold: float,
        batches: int,
    ) -> None:
        self.candidates: tuple[int, ...] = tuple(int(k2) for k2 in candidates)
        self.cosine: np.ndarray = np.asarray(cosine, dtype=float)
        self.relative_error: np.ndarray = np.asarray(relative_error, dtype=float)
        self.recurrent_cosine: np.ndarray = np.asarray(recurrent_cosine, dtype=float)
        self.recurrent_relative_error: np.ndarray = np.asarray(
            recurrent_relative_error, dtype=float)
        self.input_gradient_norm: np.ndarray = np.asarray(input_gradient_norm, dtype=float)
        self.timesteps: int = len(self.input_gradient_norm)
        self.lags: np.ndarray = np.arange(self.timesteps)
        self.threshold: float = float(threshold)
        self.batches: int = int(batches)
        lengths = {len(self.candidates), len(self.cosine), len(self.relative_error),
                   len(self.recurrent_cosine), len(self.recurrent_relative_error)}
        if len(lengths) != 1:
            raise ValueError(
                "`candidates`, `cosine`, `relative_error`, `recurrent_cosine` and "
                "`recurrent_relative_error` must have one value per candidate. "
                f"Received lengths: {sorted(lengths)}"
            )
        self.coverage: np.ndarray = coverage(self.input_gradient_norm, self.candidates)
        self.suggested: int = smallest_covering(
            self.input_gradient_norm, self.candidates, self.threshold)
        self.rule: str = self._rule()

    def _rule(self) -> str:
        share = self.coverage[self.candidates.index(self.suggested)]
        if not np.isnan(share) and share >= self.threshold - 1e-12:
            return (f"smallest k2 keeping {self.threshold:.0%} of the input-gradient "
                    f"mass above the uniform level (lags 0-{self.suggested - 1} hold "
                    f"{share:.1%})")
        return (f"no candidate keeps {self.threshold:.0%} of the input-gradient mass "
                f"above the uniform level: the largest, {self.suggested}, "
                + ("(the curve is flat)" if np.isnan(share) else f"keeps {share:.1%}"))

    @property
    def peak_lag(self) -> int:
        """The lag with the largest input-gradient norm."""
        return int(np.argmax(self.input_gradient_norm))

    @property
    def table(self) -> pd.DataFrame:
        """One row per candidate `k2`: `cosine`, `relative_error`,
        `recurrent_cosine`, `recurrent_relative_error`, `coverage`."""
        return pd.DataFrame({
            "cosine": self.cosine, "relative_error": self.relative_error,
            "recurrent_cosine": self.recurrent_cosine,
            "recurrent_relative_error": self.recurrent_relative_error,
            "coverage": self.coverage,
        }, index=pd.Index(self.candidates, name="k2"))

    def candidates_around(self, spread: int = 1, k1: int = 1) -> tuple[int, ...]:
        """The candidate that keeps the suggested lags, and its `spread`
        neighbours on each side among `candidates`: lengths to check with a
        grid search (`grid_search(..., timesteps=horizon)` calls it).

        The suggestion counts lags back from every output. Windows of k2
        steps that advance by `k1` (TBPTT(k1, k2), `decoupled_split`) train
        their last `k1` outputs, and the first of them reaches only
        `k2 - k1 + 1` lags back, so every trained output keeps the suggested
        lags from `k2 >= suggested + k1 - 1` on: the centre is the smallest
        candidate that long. `k1=1` (default) centres on the suggestion
        itself: chunk lengths for the naive scheme, or TBPTT(1, k2).

        ```
        suggested 16, k1 4:  window of k2 = 19   [. . . . . . . . . . . . . . . o o o o]
                             the first trained output (o) reaches 16 lags back
        ```

        Args:
            spread: neighbours taken on each side (>= 0).
            k1: the steps a window advances by (>= 1).

        Returns:
            Ascending k2 values.

        Raises:
            ValueError: if no candidate reaches `suggested + k1 - 1`.
        """
        if isinstance(spread, bool) or not isinstance(spread, (int, np.integer)) or spread < 0:
            raise ValueError(f"`spread` must be an integer >= 0. Received: spread={spread!r}")
        if isinstance(k1, bool) or not isinstance(k1, (int, np.integer)) or k1 < 1:
            raise ValueError(f"`k1` must be an integer >= 1. Received: k1={k1!r}")
        needed = self.suggested + k1 - 1
        long_enough = [at for at, k2 in enumerate(self.candidates) if k2 >= needed]
        if not long_enough:
            raise ValueError(
                f"Windows that advance by k1={k1} steps need k2 >= suggested + k1 - 1 "
                f"= {needed} for every trained output to reach the suggested "
                f"{self.suggested} lags, but the longest candidate is "
                f"{self.candidates[-1]}. Pass a smaller `k1`, or measure longer "
                "candidates (`gradient_horizon(..., candidates=[...])`)."
            )
        at = long_enough[0]
        return self.candidates[max(0, at - spread): at + spread + 1]

    def __repr__(self) -> str:
        return (
            f"GradientHorizon(suggested={self.suggested}, timesteps={self.timesteps}, "
            f"candidates={self.candidates}, threshold={self.threshold:g}, "
            f"rule={self.rule!r})"
        )

    def __str__(self) -> str:
        lines = [
            f"suggested k2: {self.suggested}",
            f"rule:         {self.rule}",
            f"peak lag:     {self.peak_lag} (largest input-gradient norm)",
            f"data:         {self.batches} batch(es) of {self.timesteps} steps",
            "candidates:   k2 / cosine (recurrent) / coverage",
        ]
        lines += [
            f"  {k2:>5}  {cos:.3f} ({rec:.3f})  {share:.1%}"
            for k2, cos, rec, share in zip(self.candidates, self.cosine,
                                           self.recurrent_cosine, self.coverage, strict=True)
        ]
        return "\n".join(lines)

    def plot(self, figsize: tuple[float, float] = (7, 5)) -> Figure:
        """Both curves: the gradient cosine per candidate k2 (all weights and
        the recurrent ones) with the coverage and its threshold, and the
        input-gradient norm per lag; the suggestion marked on both.

        Builds a `matplotlib.figure.Figure` directly (no pyplot state, no
        window); works headless.

        Args:
            figsize: width and height in inches (the width at most 7, the
                page's).

        Returns:
            A `matplotlib.figure.Figure` with two axes.

        Example:

        >>> from keras_tbptt.timesteps.horizon import GradientHorizon
        >>> horizon = GradientHorizon([1, 2, 3], [0.5, 0.9, 1.0], [0.8, 0.4, 0.0],
        ...                           [0.3, 0.8, 1.0], [0.9, 0.6, 0.0],
        ...                           [0.6, 0.4, 0.0], threshold=0.95, batches=1)
        >>> fig = horizon.plot()
        >>> [ax.get_xlabel() for ax in fig.axes]
        ['k2 (truncate_gradient)', 'lag (steps back)']
        >>> # fig.savefig("horizon.png")
        """
        from matplotlib.figure import Figure

        width, _height = figsize
        if width > 7:
            raise ValueError(
                f"`figsize` must be at most 7 inches wide. Received: figsize={figsize!r}")
        fig = Figure(figsize=figsize, layout="constrained")
        top, bottom = fig.subplots(2, 1)
        top.plot(self.candidates, self.cosine, "o-", label="cosine, all weights")
        top.plot(self.candidates, self.recurrent_cosine, "s-", label="cosine, recurrent")
        top.plot(self.candidates, self.coverage, "^-", color="tab:green",
                 label="input-gradient coverage")
        top.axhline(self.threshold, color="tab:green", linestyle=":",
                    label=f"threshold={self.threshold:g}")
        top.axvline(self.suggested, color="tab:red", linestyle="--",
                    label=f"suggested={self.suggested}")
        top.set_xscale("log", base=2)
        top.set_xticks(self.candidates, [str(k2) for k2 in self.candidates])
        top.set_xlabel("k2 (truncate_gradient)")
        top.set_ylabel("agreement")
        top.legend(fontsize=7, loc="lower right")
        bottom.bar(self.lags, self.input_gradient_norm, width=1.0, color="tab:blue")
        if self.timesteps:
            bottom.axhline(1 / self.timesteps, color="gray", linestyle=":",
                           label="uniform level 1/T")
        bottom.axvline(self.suggested - 0.5, color="tab:red", linestyle="--",
                       label=f"k2={self.suggested} keeps lags < {self.suggested}")
        bottom.set_xlabel("lag (steps back)")
        bottom.set_ylabel("input-gradient norm")
        bottom.legend(fontsize=7, loc="upper right")
        return fig
