"""`MovingCuts`: the training epochs of a `PlanDataset` whose cuts move.

For a plan of `naive_split(offsets="random")` (`core/moving_cuts.py`).
Each training epoch serves the layout moved by its own offset, drawn from
`numpy.random.default_rng(plan.seed)`: one draw when the dataset is made
(epoch 0's), then one each time a training epoch's last batch is served.
Counting served epochs, not Keras' epoch hooks, keeps the offsets in step
on every backend: Keras reads a first batch to build the model (JAX, torch)
and TensorFlow opens the next epoch's iterator early, neither of which
serves a whole epoch. Everything else that reads the dataset (`evaluate`,
`predict`, validation) reads offset 0, the plan's own batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from keras_tbptt.core.moving_cuts import moved_epoch, moved_flags
from keras_tbptt.layers.stateful import stateful_layers
from keras_tbptt.layers.truncation import TruncatedRNN
from keras_tbptt.training.epoch_arrays import epoch_arrays
from keras_tbptt.training.tf_pipelines import lazy_tf_dataset

if TYPE_CHECKING:
    from keras_tbptt.core.plan import SplitPlan


def moving_cuts(plan: SplitPlan, reset_flags: bool, max_bytes: int) -> MovingCuts | None:
    """The `MovingCuts` of a dataset of `plan` (`None` for fixed cuts);
    refuses a dataset without reset flags, which cannot hold a row."""
    if getattr(plan, "offsets", "fixed") != "random":
        return None
    if not reset_flags:
        raise ValueError(
            "`offsets`='random' moves the cuts each epoch, and the front "
            "padding it adds must hold each row at its reset state, which only "
            "the per-row reset flags can ask for. Use "
            "plan.dataset(reset_flags=True) (the default for such a plan) with "
            "a model wrapped by keras_tbptt.with_reset_flags(model), or "
            "naive_split(offsets='fixed'). Received: reset_flags=False"
        )
    return MovingCuts(plan, max_bytes)


class MovingCuts:
    """The offsets of a dataset's training epochs, and their batches.

    Args:
        plan: a plan with `offsets="random"`.
        max_bytes: the most a whole epoch gathered at once may take (else
            batches are moved one by one).

    Attributes:
        offsets: list of int: `offsets[e]` is training epoch `e`'s; the last
            is the offset of the epoch being (or next) served.
    """

    def __init__(self, plan: SplitPlan, max_bytes: int) -> None:
        self.plan = plan
        self._max_bytes = max_bytes
        self._rng = np.random.default_rng(plan.seed)
        self.offsets = [self._draw()]
        self._fixed = None  # the epoch at offset 0 (`epoch_arrays`), or False
        self._moved = None  # (offset, the epoch at that offset)

    def _draw(self) -> int:
        return int(self._rng.integers(self.plan.timesteps))

    def _epoch(self, offset):
        """`(x, y, sample_weight, flags)` of the epoch at `offset`, or `None`
        (series too large or memory-mapped: batch by batch)."""
        if self._fixed is None:
            self._fixed = epoch_arrays(self.plan, True, None, self._max_bytes) or False
        if self._fixed is False:
            return None
        if self._moved is None or self._moved[0] != offset:
            x, y, weight, flags = self._fixed
            resets, size = self.plan.resets, self.plan.batch_size
            moved = [
                None if a is None else moved_epoch(a, resets, size, offset)
                for a in (x, y, weight)
            ]
            self._moved = offset, (*moved, moved_flags(flags, offset))
        return self._moved[1]

    def batch(self, index: int, offset: int) -> tuple[Any, ...]:
        """Batch `index` at `offset`: `((x, flags), y, sample_weight)`."""
        size = self.plan.batch_size
        rows = slice(index * size, (index + 1) * size)
        epoch = self._epoch(offset)
        if epoch is None:
            x, y, weight = self.plan.batch(index, offset=offset)
            flags = moved_flags(self.plan.reset_flags[rows], offset)
        else:
            x, y, weight, flags = (None if a is None else a[rows] for a in epoch)
        return ((x, flags),) if y is None else ((x, flags), y, weight)

    def read(self, index: int) -> tuple[Any, ...]:
        """Batch `index` of the training epoch being served; serving its
        last batch draws the next epoch's offset."""
        batch = self.batch(index, self.offsets[-1])
        if index == len(self.plan) - 1:
            self.offsets.append(self._draw())
        return batch

    def in_order(self):
        """One training epoch, in order (JAX, torch, NumPy)."""
        for index in range(len(self.plan)):
            yield self.read(index)

    def tf_dataset(self, tf):
        """One training epoch per iterator, each batch read by Python (so
        that each epoch reads its own offset)."""
        return lazy_tf_dataset(
            tf, lambda index, _: self.read(index), len(self.plan), self.plan.batch_size
        )

    def check_call(self, local: dict, dataset, masked: bool) -> None:
        """Refuse what moving cuts cannot serve, when `fit` (`local`: its
        arguments) takes the dataset."""
        if local.get("x") is dataset and local.get("validation_data") is dataset:
            raise ValueError(
                "`offsets`='random': the same dataset is the training and the "
                "validation data, and validation must read offset 0. Pass "
                "validation_data=plan.dataset() (another dataset of the plan) "
                "or a validation plan's dataset."
            )
        unheld = [
            layer.name for layer in stateful_layers(local["self"])
            if isinstance(layer, TruncatedRNN) and not layer.can_hold(layer.states)
        ]
        if unheld:
            raise ValueError(
                f"`offsets`='random' cannot train layers {unheld} under JAX: "
                "Keras' JAX loop cannot mask their states of more than (batch, "
                "units), so their front padding cannot be held. Use the "
                "TensorFlow or torch backend, or naive_split(offsets='fixed')."
            )
        if masked:
            raise ValueError(
                "`offsets`='random' cannot train a model whose per-step output "
                "carries a Keras mask (Masking, Embedding(mask_zero=True)): its "
                "loss factors follow the fixed cuts. Remove the mask (the "
                "front padding is held by the reset flags), or use "
                "naive_split(offsets='fixed')."
            )
