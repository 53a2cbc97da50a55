"""`PlanDataset`: a SplitPlan's batches as a `keras.utils.PyDataset`."""

import sys

import keras

from keras_tbptt.training.callbacks import check_data_in_call, keras_call


class PlanDataset(keras.utils.PyDataset):
    """Serve a plan's batches in order, and refuse any other order.

    Built by `SplitPlan.dataset()`. Stateful training needs batch `j + 1` to
    follow batch `j`; Keras shuffles the batches of a finite dataset when
    `fit(shuffle=True)` (its default), which would silently feed rows to the
    wrong states. This dataset raises instead. Reading a batch again
    yourself (`data[3]` twice, or the batch before the last one read) is
    harmless and allowed; Keras itself must read each epoch in order.

    When `fit`, `evaluate` or `predict` takes the dataset, before Keras
    reads any batch (and before Keras' own errors under JAX), it checks the
    call against the plan and raises a clear error when: `fit` or `evaluate`
    gets a plan without targets; the model's stateful layers have another
    batch size or lack `plan.layer_kwargs`; the model's output does not fit
    per-step or per-sequence targets; the call's `ResetStates` follow
    another schedule (another plan's callbacks, or validation data without
    `callbacks(validation=val)`). It warns when a stateful plan runs
    without any `ResetStates` (states would carry over from the last call).

    Stateless plans (`as_is`, `truncate`, `random_windows`) may be shuffled.
    Yields `(x, y, sample_weight)` for plans with targets and `(x,)`
    otherwise (for `predict`).

    Example:

    >>> import numpy as np, keras_tbptt
    >>> plan = keras_tbptt.naive_split(np.zeros((2, 40, 1)), 10, np.zeros((2, 40, 1)))
    >>> data = plan.dataset()
    >>> len(data), [a.shape for a in data[0]]
    (4, [(2, 10, 1), (2, 10, 1), (2, 10)])
    >>> first = data[1][0]
    >>> bool((data[1][0] == first).all())  # reading a batch again is fine
    True
    """

    def __init__(self, plan):
        super().__init__(workers=1, use_multiprocessing=False)
        self.plan = plan
        self._next = 0

    @property
    def num_batches(self):
        # Keras reads this when fit(), evaluate() or predict() wraps the
        # dataset, before it reads a batch or builds anything.
        call = keras_call()
        if call is not None:
            check_data_in_call(self.plan, call[0], call[1], self)
        return len(self.plan)

    def __len__(self):
        return len(self.plan)

    def __getitem__(self, index):
        if index >= len(self.plan):
            raise IndexError(f"batch {index} out of range ({len(self.plan)} batches)")
        if self.plan.stateful:
            self._check_order(index)
        x, y, weight = self.plan.batch(index)
        return (x,) if y is None else (x, y, weight)

    def _check_order(self, index):
        # Index 0 may come at any time: a new epoch, or Keras peeking at the
        # first batch to learn the shapes. Keras reads each batch once per
        # epoch, so a repeated index from Keras is a shuffled epoch; a
        # repeat from your own code is an inspection.
        if index in (0, self._next):
            self._next = index + 1
            return
        from_keras = sys._getframe(2).f_globals.get("__name__", "").startswith("keras.")
        if not from_keras and self._next - 2 <= index < self._next:
            return
        restart = " (or batch 0, to start over)" if self._next else ""
        raise ValueError(
            f"Batches of a stateful plan must be read in order, but batch {index} "
            f"was asked for where batch {self._next} was expected{restart}. "
            "Pass shuffle=False to fit() (Keras shuffles the batches of a "
            "finite dataset by default), and do not reorder the dataset."
        )
