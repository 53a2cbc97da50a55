"""`GradientHorizonLog`: the gradient horizon recorded during training."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_tbptt.core.plan import SplitPlan
from keras_tbptt.core.validation import check_int
from keras_tbptt.timesteps.horizon import GradientHorizon
from keras_tbptt.training import gradient_horizon as measuring


class GradientHorizonLog(keras.callbacks.Callback):
    """Record `gradient_horizon` before training and every `every` epochs.

    The horizon grows as a model learns long dependencies: this callback
    shows when (and whether) it does. Each record is `(epoch, horizon)`,
    `epoch` the number of epochs finished (0: before the first), in
    `history`, which every `fit` starts afresh (as Keras' `History`).

    Training is not disturbed: the measurement runs in inference mode (no
    random draws) and puts back the weights, tracked states, optimizer and
    metric variables it touched, so a fit with this callback ends with the
    same weights as one without it.

    Args:
        x, y, sample_weight: the data to measure on, as for
            `gradient_horizon` (a `SplitPlan` as `x`, or arrays).
        every: measure after every `every` epochs (>= 1).
        at_start: also measure before the first epoch (default True).
        **horizon_options: `candidates`, `threshold`, `batches`,
            `batch_size`, `output_steps` of `gradient_horizon`.

    Example:

    >>> import numpy as np, keras, keras_tbptt as kt
    >>> x = np.random.default_rng(0).normal(size=(8, 12, 1)).astype("float32")
    >>> model = keras.Sequential([keras.Input((12, 1)),
    ...                           kt.TBPTTLSTM(4, return_sequences=True),
    ...                           keras.layers.Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> log = kt.GradientHorizonLog(x, np.roll(x, 2, axis=1), every=2, candidates=[4, 12])
    >>> _ = model.fit(x, np.roll(x, 2, axis=1), epochs=4, verbose=0, callbacks=[log])
    >>> [epoch for epoch, _ in log.history]
    [0, 2, 4]
    >>> log.suggested
    {0: ..., 2: ..., 4: ...}
    """

    def __init__(
        self,
        x: np.ndarray | SplitPlan,
        y: np.ndarray | None = None,
        *,
        sample_weight: np.ndarray | None = None,
        every: int = 5,
        at_start: bool = True,
        **horizon_options: Any,
    ) -> None:
        super().__init__()
        self.every = check_int(every, "every")
        if not isinstance(at_start, bool):
            raise TypeError(f"`at_start` must be True or False. Received: at_start={at_start!r}")
        self.at_start = at_start
        allowed = {"candidates", "threshold", "batches", "batch_size", "output_steps"}
        unknown = sorted(set(horizon_options) - allowed)
        if unknown:
            raise TypeError(
                f"`GradientHorizonLog` got unknown arguments {unknown}; it takes "
                f"{sorted(allowed)} of `gradient_horizon`. Received: {unknown}")
        # Checked now, not at the first epoch: a fit must not fail late.
        if horizon_options.get("candidates") is not None:
            measuring._check_candidates(horizon_options["candidates"], 1)
        measuring._check_threshold(horizon_options.get("threshold", 0.95))
        for name in ("batches", "output_steps"):
            if name in horizon_options:
                check_int(horizon_options[name], name)
        check_int(horizon_options.get("batch_size"), "batch_size", allow_none=True)
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.horizon_options = horizon_options
        self.history: list[tuple[int, GradientHorizon]] = []

    @property
    def suggested(self) -> dict[int, int]:
        """The suggested k2 of each record, by epoch."""
        return {epoch: horizon.suggested for epoch, horizon in self.history}

    def _record(self, epoch: int) -> None:
        horizon = measuring.gradient_horizon(
            self.model, self.x, self.y, sample_weight=self.sample_weight,
            **self.horizon_options)
        self.history.append((epoch, horizon))

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.history = []
        if self.at_start:
            self._record(0)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every == 0:
            self._record(epoch + 1)

