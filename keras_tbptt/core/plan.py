"""`SplitPlan`: the one object every splitting scheme returns."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from keras_tbptt.core.batches import PlanBatches
from keras_tbptt.core.layout import split_by_time
from keras_tbptt.core.moving_cuts import moved_batch
from keras_tbptt.core.unsplit import sample_positions, unsplit
from keras_tbptt.core.validation import check_int

if TYPE_CHECKING:  # the Keras side is imported by dataset() and callbacks() only
    from numpy.typing import ArrayLike

    from keras_tbptt.core.inputs import Panel
    from keras_tbptt.core.layout import Layout
    from keras_tbptt.core.targets import Targets
    from keras_tbptt.training.callbacks import ResetStates
    from keras_tbptt.training.dataset import PlanDataset


class SplitPlan:
    """Arrays, batches, reset schedule and the way back for one split.

    Get a plan from a scheme function (`naive_split`, `one_step`, `as_is`,
    `decoupled_split`, `domain_split`, `sentence_split`, `truncate`,
    `random_windows`) or from `validation_split`: the constructor is
    internal, not part of the API. A plan holds views of your data and
    produces batches on demand; `len(plan)` is the number of batches.

    Batch `j + 1` row `i` continues batch `j` row `i` for stateful plans;
    states must be reset before the batches flagged in `resets` (the
    callbacks from `callbacks()` do that).

    Attributes:
        scheme: name of the scheme that built the plan.
        batch_size: rows per batch (the model's static batch size for
            stateful plans).
        timesteps: steps per sample (the LSTM's input length, k1 or the
            window length).
        n_series: number of series in the data.
        n_samples: number of samples (rows of `x`), filler rows included.
        stateful: whether batches continue each other (`False` for
            `as_is`, `truncate` and `random_windows`).
        resets: bool array, one per batch: reset states before this batch
            (for a packed plan: batches where every lane starts anew).
        per_sequence_targets: whether the targets are one row per series
            (`False` for per-step targets and for a plan without targets).
        packed: whether the plan was built with `pack=True` (lanes run
            through several series back to back; see `reset_flags`).
        fill_ratio: real steps in the windows over all steps of all samples
            (1.0: no padding, no filler).
        positions: int array `[samples, 2]`: series index and first step
            (in the original series) of each sample; `-1` for filler rows.
        layer_kwargs: arguments the recurrent layer needs for this plan
            (`truncate_gradient`, `state_step`), e.g.
            `TBPTTLSTM(64, stateful=True, **plan.layer_kwargs)`.
        suggestion (TimestepsSuggestion | None): for a `domain_split`
            plan, the `TimestepsSuggestion` that chose `timesteps`; else
            `None`.
        timesteps_from: for a `domain_split` plan, a few words on why
            `timesteps` has this length; else `None`.
        offsets: `"random"` for cuts that move each training epoch
            (`naive_split(offsets="random")`, see `dataset`), else `"fixed"`.
        seed: the seed of the moving cuts' offsets (`None`: unseeded).

    Example:

    >>> import numpy as np
    >>> import keras_tbptt
    >>> plan = keras_tbptt.naive_split(np.zeros((4, 60, 1)), 20, batch_size=2)
    >>> plan
    SplitPlan(scheme='naive_split', x=(12, 20, 1), batch_size=2, batches=6, resets=2/6, stateful=True)
    >>> plan.resets.tolist()
    [True, False, False, True, False, False]
    >>> plan.positions[:4].tolist()  # (series, start) of the first 4 samples
    [[0, 0], [1, 0], [0, 20], [1, 20]]
    """

    # Set by schemes that read `timesteps` from the data (`domain_split`):
    # the `TimestepsSuggestion`, and a few words on why this length.
    suggestion = None
    timesteps_from: str | None = None

    def __init__(
        self,
        panel: Panel,
        targets: Targets | None,
        layout: Layout,
        *,
        scheme: str,
        segments: tuple[np.ndarray, np.ndarray, np.ndarray],
        rebuild: Callable[[tuple[np.ndarray, np.ndarray, np.ndarray], float], SplitPlan],
        layer_kwargs: dict[str, int] | None = None,
        offsets: str = "fixed",
        seed: int | None = None,
    ) -> None:
        self._panel = panel
        self._targets = targets
        self._layout = layout
        self._segments = segments
        self._rebuild = rebuild
        self.scheme: str = scheme
        self.layer_kwargs: dict[str, int] = dict(layer_kwargs or {})
        self.offsets, self.seed = offsets, seed
        self._batches = PlanBatches(panel, targets, layout)

    # -- Layout facts (documented in the class docstring) ---------------
    batch_size = property(lambda self: self._layout.batch_size)
    timesteps = property(lambda self: self._layout.timesteps)
    stateful = property(lambda self: self._layout.stateful)
    n_series = property(lambda self: self._panel.n_series)

    @property
    def n_features(self) -> int | None:
        """Features per step; `None` when `x` has no feature axis (token ids)."""
        if self._panel.arrays[0].ndim == 1:
            return None
        return self._panel.n_features

    per_sequence_targets = property(
        lambda self: self._targets is not None and not self._targets.per_step
    )
    resets = property(lambda self: self._layout.resets())

    @property
    def packed(self) -> bool:
        """Whether lanes run through several series back to back (`pack=True`).

        Each row of a batch (a lane) then starts a new series where
        `reset_flags` is 1, not only at the first batch: train it with the
        in-graph resets (`dataset()` sends the flags).
        """
        return self._layout.packed

    @property
    def fill_ratio(self) -> float:
        """Real steps in the windows / all steps of all samples
        (`samples * timesteps`), as a float in (0, 1].

        Padding and filler rows (or filler at lane ends) are what is
        missing; a packed plan of a ragged panel fills more.
        """
        return self._batches.fill_ratio()

    @property
    def reset_flags(self) -> np.ndarray:
        """float32 `[samples]`, in plan order (as `x`): 1 where that row's
        state must start from zeros before its sample (a new series, or a
        new stream of one), else 0.

        The per-row schedule that `dataset(reset_flags=True)` sends along
        with each batch, for models wrapped by `keras_tbptt.with_reset_flags`
        (the resets then run inside the graph). `plan.resets` is the
        per-batch schedule of the callback path.

        Example: series of 3, 2 and 1 chunks packed in 2 lanes; lane 1
        starts series 2 in batch 2.

        >>> import numpy as np, keras_tbptt
        >>> panel = [np.ones((n, 1)) for n in (30, 20, 10)]
        >>> plan = keras_tbptt.naive_split(panel, 10, batch_size=2, pack=True)
        >>> plan.reset_flags.reshape(len(plan), plan.batch_size).tolist()
        [[1.0, 1.0], [0.0, 0.0], [0.0, 1.0]]
        >>> plan.positions.tolist()  # (series, first step) of each sample
        [[0, 0], [1, 0], [0, 10], [1, 10], [0, 20], [2, 0]]
        """
        return self._batches.reset_flags()

    def __len__(self) -> int:
        return self._layout.n_batches

    n_samples = property(lambda self: len(self._sample_rows()[0]))

    def _sample_rows(self):  # row and window of every sample, in plan order
        return self._batches.sample_cells

    def __repr__(self) -> str:
        shape = (self.n_samples, self.timesteps) + self._panel.arrays[0].shape[1:]
        return (
            f"SplitPlan(scheme={self.scheme!r}, x={shape}, "
            f"batch_size={self.batch_size}, batches={len(self)}, "
            f"resets={int(self.resets.sum())}/{len(self)}, "
            f"stateful={self.stateful}"
            + (f", packed=True, fill={self.fill_ratio:.2f}" if self.packed else "")
            + (f", timesteps_from={self.timesteps_from!r}" if self.timesteps_from else "")
            + ")"
        )

    # -- Batches -------------------------------------------------------
    def batch(
        self, index: int, offset: int = 0
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Return batch `index` as `(x, y, sample_weight)` numpy arrays.

        `y` and `sample_weight` are `None` for a plan without targets. `x`
        (and `y`) are views of your data when the layout allows (equal
        lengths, no padding or filler rows), else fresh arrays. `offset`
        (`offsets="random"` plans, 0 to `timesteps - 1`): the batch of
        the layout whose series start `offset` steps into their first chunk
        (what a training epoch at that offset serves; its reset flags are
        `1 + offset` where `reset_flags` is 1).

        Example:

        >>> import numpy as np, keras_tbptt
        >>> series = np.arange(2 * 30, dtype="float32").reshape(2, 30, 1)
        >>> plan = keras_tbptt.naive_split(series, 10, series)
        >>> x, y, weight = plan.batch(1)  # the second chunk of both series
        >>> x.shape, x[:, 0, 0].tolist(), weight.shape
        ((2, 10, 1), [10.0, 40.0], (2, 10))
        """
        index = check_int(index, "index", minimum=0)
        if index >= len(self):
            raise IndexError(
                f"`index` must be < {len(self)} (the number of batches). "
                f"Received: index={index}"
            )
        return moved_batch(self._batches, index, offset, self.offsets)

    @cached_property
    def weight_scale(self) -> float:
        """The value of every nonzero sample weight (1.0 when nothing is
        left out): elements of the epoch / weighted elements.

        An element is a sample (per-sequence targets) or a step of a sample
        (per-step targets); the weighted ones are real steps of the
        windows that own them, with observed targets (per step), or the
        final window of each series (per sequence). Scaling the 0/1 weights
        by this makes Keras' default loss reduction
        (`"sum_over_batch_size"`) report, at the end of each epoch of `fit`
        and in `evaluate`, the mean loss over the weighted elements of the
        whole epoch (sum of weighted losses / sum of weights), however
        unevenly the weights fall on the batches: 12 chunks of which only
        the last carries a label report the loss of the labels, not a
        twelfth of it. It also makes each batch's gradient an unbiased
        estimate of that mean's gradient. Adam, RMSprop and the like do not
        depend on the scale; with plain SGD divide the learning rate by it
        to take the steps unscaled weights would take.

        Example:

        >>> import numpy as np, keras_tbptt
        >>> plan = keras_tbptt.naive_split(np.zeros((4, 120, 1)), 10, np.zeros(4))
        >>> plan.weight_scale  # 12 chunks per series, one labelled
        12.0
        >>> plan.sample_weight[:8].tolist()  # batches 0 and 1 carry no weight
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        """
        return self._batches.weight_scale

    def masked_loss_factors(self) -> np.ndarray:
        """float `[batches]`: what each batch's weights are multiplied by for
        a model whose per-step output carries a Keras mask.

        Keras' default reduction divides a masked loss by the batch's
        unmasked steps, not by all of them; multiplying batch `b`'s weights
        by (its real steps / all its steps) restores the mean over the
        weighted steps of the epoch. Assumes the mask is the padding
        (`Embedding(mask_zero=True)` on `sentence_split` ids, `Masking` on
        zero-padded steps). `plan.dataset()` applies it when the model it
        meets has such an output.

        Example: series of 25 steps in padded chunks of 10; the last batch
        holds 5 real steps of 10.

        >>> import numpy as np, keras_tbptt
        >>> plan = keras_tbptt.naive_split(np.ones((2, 25, 1)), 10, remainder="pad")
        >>> plan.masked_loss_factors().tolist()
        [1.0, 1.0, 0.5]
        """
        return self._batches.masked_loss_factors()

    @property
    def unweighted_batches(self) -> int:
        """Number of batches whose sample weights are all 0 (0 without targets).

        They only carry the state forward: per-sequence targets leave all
        but each series' last window unweighted. Wrap the optimizer in
        `keras_tbptt.SkipUnweightedBatches` so that they cost no update.

        Example: one label per series of 12 chunks.

        >>> import numpy as np, keras_tbptt
        >>> plan = keras_tbptt.naive_split(np.zeros((4, 120, 1)), 10, np.zeros(4))
        >>> plan.unweighted_batches, len(plan)
        (11, 12)
        """
        if self._targets is None:
            return 0
        return int((self._batches.unscaled_batch_weights == 0).sum())

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]:
        """Iterate over all batches in order, as `(x, y, sample_weight)` (see
        `batch`).

        Example: two series of 20 steps in chunks of 5; batch `j` holds chunk
        `j` of both.

        >>> import numpy as np, keras_tbptt
        >>> plan = keras_tbptt.naive_split(np.arange(40.0).reshape(2, 20, 1), 5)
        >>> [x[:, 0, 0].tolist() for x, _, _ in plan.batches()]  # first step of each row
        [[0.0, 20.0], [5.0, 25.0], [10.0, 30.0], [15.0, 35.0]]
        """
        return (self.batch(i) for i in range(len(self)))

    @property
    def x(self) -> np.ndarray:
        """Inputs `[samples, timesteps, features]` in plan order.

        A view when each row is one sample (e.g. `as_is`), otherwise a copy
        the size of the data: prefer `dataset()` or `batches()` for long
        series.

        Example: 4 series of 60 steps in chunks of 20, with per-step targets.

        >>> import numpy as np, keras_tbptt
        >>> data = np.zeros((4, 60, 1))
        >>> plan = keras_tbptt.naive_split(data, 20, data, batch_size=2)
        >>> plan.x.shape, plan.y.shape, plan.sample_weight.shape
        ((12, 20, 1), (12, 20, 1), (12, 20))
        """
        return self._batches.stack(0)

    @property
    def y(self) -> np.ndarray | None:
        """Targets in plan order: `[samples, timesteps, target_features]`
        (per step) or `[samples, target_features]` (per sequence)."""
        return self._batches.stack(1)

    @property
    def sample_weight(self) -> np.ndarray | None:
        """Weights in plan order: `[samples, timesteps]` (per step) or
        `[samples]` (per sequence).

        0 marks padding, filler rows, steps an earlier window already
        trained, missing (NaN) targets and, with per-sequence targets,
        every window but each series' last. The other weights all equal
        `weight_scale` (elements / weighted elements), so Keras' default
        loss reduction and weighted metrics report the mean over the
        weighted elements of the epoch: keep the default reduction
        (`"sum_over_batch_size"`), and pass metrics as `weighted_metrics`.
        """
        return self._batches.stack(2)

    positions = property(lambda self: sample_positions(self._batches))

    # -- Back to the original layout -----------------------------------
    def unsplit(
        self, outputs: ArrayLike
    ) -> np.ndarray | list[np.ndarray] | pd.DataFrame | pd.Series:
        """Map model outputs (in plan order) back to the original layout.

        Args:
            outputs: per-step outputs `[samples, timesteps, ...]` (from an
                LSTM with `return_sequences=True`) or per-sample outputs
                `[samples, ...]`, e.g. `model.predict(plan.dataset(), ...)`.

        Returns:
            Per-step outputs: one array per series of the original length
            (`[length, ...]`), in the input's layout: a single array for one
            series, `[n_series, length, ...]` for a 3-D input, a list for a
            list input, a DataFrame/Series with the original index for
            pandas input. Steps with no output (truncated, dropped NaN rows,
            never sampled) are NaN; padding and filler rows are dropped;
            overlapping windows (`random_windows`) are averaged. pandas
            rows come back in the caller's order, with the caller's index,
            even when the split sorted them by time (`time_col`, an
            unsorted DatetimeIndex).

            Per-sample outputs with per-sequence targets: `[n_series, ...]`,
            the output of each series' final window. Per-sample outputs with
            per-step targets land on the last step of each window.

        Example:

        >>> import numpy as np, keras_tbptt
        >>> series = np.arange(12.0)
        >>> plan = keras_tbptt.naive_split(series, 4, batch_size=1)
        >>> plan.unsplit(plan.x).ravel().tolist() == series.tolist()
        True
        """
        return unsplit(self._batches, outputs)

    # -- Train / validation by time ------------------------------------
    def validation_split(self, fraction: float) -> tuple[SplitPlan, SplitPlan]:
        """Split every series by time into a training and a validation plan.

        The validation plan holds the last `fraction` of every series (rounded
        to whole windows), the training plan the rest, both with this plan's
        settings. This is the stateful-safe replacement for
        `fit(validation_split=...)`, which takes the last samples of the
        batch order and so breaks the layout.

        Returns:
            `(train_plan, validation_plan)` (with `offsets="random"` the
            validation plan's are fixed: validation runs at offset 0).

        Example:

        >>> import numpy as np, keras_tbptt
        >>> plan = keras_tbptt.naive_split(np.zeros((2, 1000, 1)), 100)
        >>> train, val = plan.validation_split(0.2)
        >>> len(train), len(val)
        (8, 2)
        """
        train_segments, validation_segments = split_by_time(
            self._segments, self._layout, fraction, self.per_sequence_targets
        )
        train = self._rebuild(train_segments, 1 - fraction)
        # Validation runs at offset 0: no room to move (moving cuts only).
        fixed = {"moving": False} if self.offsets == "random" else {}
        validation = self._rebuild(validation_segments, fraction, **fixed)
        for part in (train, validation):  # keep why timesteps was chosen
            part.suggestion, part.timesteps_from = self.suggestion, self.timesteps_from
        return train, validation

    # -- Keras ---------------------------------------------------------
    def dataset(self, reset_flags: bool | None = None) -> PlanDataset:
        """A `keras.utils.PyDataset` yielding the batches lazily, in order.

        Args:
            reset_flags: `True` to send each batch's per-row reset flags
                with it (batches `((x, flags), y, sample_weight)`), for a
                model wrapped by `keras_tbptt.with_reset_flags`: resets then
                run inside the graph, with no callbacks, under
                `steps_per_execution > 1` too. `False`: batches
                `(x, y, sample_weight)`, reset by `callbacks()`. `None`
                (default): `True` for packed plans, else `False`.

        A stateful plan's dataset refuses `fit(shuffle=True)` (Keras'
        default for a finite dataset: pass `shuffle=False`) before Keras
        reads a batch; a stateless plan's batches are shuffled as Keras
        would shuffle them. With `offsets="random"` each training epoch
        moves the cuts (see `naive_split`); other reads serve offset 0.
        `fit`, `evaluate` and `predict` check the model
        and callbacks against the plan before any batch runs (see
        `keras_tbptt.PlanDataset`), warning when a stateful plan runs
        without `callbacks()`.

        Returns:
            A `keras_tbptt.PlanDataset` of `len(plan)` batches.

        Example:

        >>> import numpy as np, keras, keras_tbptt
        >>> plan = keras_tbptt.naive_split(np.zeros((4, 60, 1)), 20, np.zeros((4, 60, 1)))
        >>> data = plan.dataset()
        >>> len(data), [a.shape for a in data[0]]  # (x, y, sample_weight)
        (3, [(4, 20, 1), (4, 20, 1), (4, 20)])
        >>> model = keras.Sequential([
        ...     keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 1)),
        ...     keras_tbptt.TBPTTLSTM(2, stateful=True, return_sequences=True),
        ... ])
        >>> model.compile(loss="mse")
        >>> history = model.fit(data, callbacks=plan.callbacks(), shuffle=False, verbose=0)
        >>> (x, flags), y, weight = plan.dataset(reset_flags=True)[0]
        >>> flags.tolist()  # batch 0: every row starts from zero states
        [1.0, 1.0, 1.0, 1.0]
        """
        from keras_tbptt.training.dataset import PlanDataset

        return PlanDataset(self, reset_flags=reset_flags)

    def callbacks(self, validation: SplitPlan | None = None) -> list[ResetStates]:
        """The state-reset callbacks for `fit`, `evaluate` and `predict`.

        The callback also checks the model against this plan before any
        batch runs (targets for `fit`/`evaluate`, the batch size, the output
        shape, `layer_kwargs` on every stateful layer: see
        `keras_tbptt.ResetStates`), binding to the model of each Keras call.

        Args:
            validation: the validation plan passed as `validation_data` to
                `fit`, if any; its reset schedule is used during validation
                and `evaluate`.

        Returns:
            A list with one `keras_tbptt.ResetStates(plan=self,
            validation=validation)`.

        Example:

        >>> import numpy as np, keras_tbptt
        >>> plan = keras_tbptt.naive_split(np.zeros((4, 100, 1)), 10, np.zeros((4, 100, 1)))
        >>> train, val = plan.validation_split(0.2)
        >>> [callback] = train.callbacks(validation=val)
        >>> len(callback.resets), len(callback.test_resets)  # batches of each
        (8, 2)
        """
        from keras_tbptt.training.callbacks import reset_callbacks

        return reset_callbacks(self, validation)
