"""`PlanDataset`: a SplitPlan's batches as a `keras.utils.PyDataset`."""

import keras


class PlanDataset(keras.utils.PyDataset):
    """Serve a plan's batches in order, and refuse any other order.

    Built by `SplitPlan.dataset()`. Stateful training needs batch `j + 1` to
    follow batch `j`; Keras shuffles the batches of a finite dataset when
    `fit(shuffle=True)` (its default), which would silently feed rows to the
    wrong states. This dataset raises instead.

    Stateless plans (`as_is`, `truncate`, `random_windows`) may be shuffled.
    Yields `(x, y, sample_weight)` for plans with targets and `(x,)`
    otherwise (for `predict`).

    Example:

    >>> import numpy as np, keras_tbptt
    >>> plan = keras_tbptt.naive_split(np.zeros((2, 40, 1)), 10, np.zeros((2, 40, 1)))
    >>> data = plan.dataset()
    >>> len(data), [a.shape for a in data[0]]
    (4, [(2, 10, 1), (2, 10, 1), (2, 10)])
    """

    def __init__(self, plan):
        super().__init__(workers=1, use_multiprocessing=False)
        self.plan = plan
        self._next = 0

    def __len__(self):
        return len(self.plan)

    def __getitem__(self, index):
        # Index 0 may come at any time: a new epoch, or Keras peeking at the
        # first batch to learn the shapes.
        if self.plan.stateful and index not in (0, self._next):
            raise ValueError(
                "Batches of a stateful plan must be read in order, but Keras "
                f"asked for batch {index} after batch {self._next - 1}. "
                "Pass shuffle=False to fit() (Keras shuffles the batches of "
                "a finite dataset by default), and do not reorder the dataset."
            )
        if index >= len(self.plan):
            raise IndexError(f"batch {index} out of range ({len(self.plan)} batches)")
        self._next = index + 1
        x, y, weight = self.plan.batch(index)
        return (x,) if y is None else (x, y, weight)
