"""`PlanDataset`: a SplitPlan's batches as a `keras.utils.PyDataset`.

Keras reads a `PyDataset` through its `PyDatasetAdapter`: Python code per
batch and, under TensorFlow, a `tf.data.Dataset.from_generator` (a Python
call per batch from the input pipeline's thread). For the small batches of
stateful training that is slower than numpy arrays. So the dataset is also
its own Keras data adapter (Keras uses a `DataAdapter` it is given as is):

- Under JAX (NumPy, torch), read in order: where every batch is a view of
  the series (equal lengths, no padding or filler) the batches are those
  views, read with the layout worked out once; otherwise, for series in
  memory, the whole epoch is gathered at once with numpy (the arrays `plan.x`,
  `plan.y`, `plan.sample_weight` hold, which `fit` would take instead) and
  sliced per batch; memory-mapped series are read batch by batch.
- Under TensorFlow: that epoch as tensors, sliced in the `tf.data` graph
  (what Keras does with arrays); memory-mapped series: a `tf.numpy_function`
  per batch.
- `predict` gets only the inputs; `fit(shuffle=True)` reads in random
  order, as Keras would: numpy's permutation under JAX, the batch indices
  permuted inside `tf.data` under TensorFlow. A stateful plan refuses it
  when Keras wraps the dataset, before any pipeline exists.

`DataAdapter` is private Keras API: without it the dataset is read as a
plain `PyDataset` (the same batches, more slowly).
"""

from __future__ import annotations

import random
import warnings
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from keras_tbptt.core.batches import batches_of
from keras_tbptt.core.validation import check_int
from keras_tbptt.layers.stateful import stateful_layers
from keras_tbptt.training.callbacks import ResetStates
from keras_tbptt.training.checks import (
    check_model_for_plan,
    check_reset_flags,
    check_trains_under_torch,
    output_masked,
)
from keras_tbptt.training.epoch_arrays import epoch_arrays
from keras_tbptt.training.moving_epochs import moving_cuts
from keras_tbptt.training.running_call import (
    epoch_iterator_arguments,
    keras_call,
    reading_epoch_iterator,
)
from keras_tbptt.training.tf_pipelines import epoch_tf_dataset, lazy_tf_dataset

if TYPE_CHECKING:
    import tensorflow as tf

    from keras_tbptt.core.plan import SplitPlan

try:  # Keras' (private) data adapter interface; see the module docstring.
    from keras.src.trainers.data_adapters.data_adapter import (
        DataAdapter as _DataAdapter,
    )

    _ADAPTER = (_DataAdapter,)
except ImportError:  # pragma: no cover - another Keras layout: the plain PyDataset path
    _ADAPTER = ()

# The whole epoch (inputs, targets and weights of every sample, as in plan.x,
# plan.y and plan.sample_weight) is gathered at once when it takes at most
# this; larger or memory-mapped series are read batch by batch. It also keeps
# TensorFlow's copy clear of its 2 GB limit on graph constants.
EPOCH_MAX_BYTES = 2**30


class PlanDataset(keras.utils.PyDataset, *_ADAPTER):
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
    `callbacks(validation=val)`); `fit` gets a `class_weight` (the batches
    carry sample weights). It warns when a stateful plan runs without any
    `ResetStates` (states would carry over from the last call).

    Stateless plans (`as_is`, `truncate`, `random_windows`) may be shuffled.
    Yields `(x, y, sample_weight)` for plans with targets and `(x,)`
    otherwise (for `predict`). With `reset_flags=True`, `x` is
    `(x, flags)`: the batch's per-row reset flags, `(batch_size,)`, for a
    model wrapped by `keras_tbptt.with_reset_flags` (no callbacks needed).
    A plan of moving cuts (`naive_split(offsets="random")`) serves each
    training epoch at its offset, `offsets[e]` (see `naive_split`).

    Keras reads it as fast as numpy arrays of the same batches (see
    `benchmarks/bench_dataset.py`). Under JAX, batches are views of your
    series where every batch can be one (as from `plan.batch`). Otherwise,
    and under TensorFlow, series in memory are gathered into the epoch's
    batches once per dataset (up to 1 GiB: the arrays `fit` would take
    instead); memory-mapped series stay on disk and are read batch by batch.

    Args:
        plan: the plan whose batches to serve.
        reset_flags: as for `SplitPlan.dataset`: `True` to send each
            batch's per-row reset flags with its inputs; `None` (default):
            `True` for packed plans.

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

    def __init__(self, plan: SplitPlan, reset_flags: bool | None = None) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        if reset_flags is None:  # the plans that need the flags get them
            reset_flags = bool(getattr(plan, "packed", False)) or plan.offsets == "random"
        if not isinstance(reset_flags, bool):
            raise TypeError(
                "`reset_flags` must be True, False or None. "
                f"Received: reset_flags={reset_flags!r}"
            )
        if reset_flags and not plan.stateful:
            raise ValueError(
                f"`reset_flags=True` needs a stateful plan; a {plan.scheme} "
                "plan's samples are independent and carry no state. "
                "Received: reset_flags=True"
            )
        if not reset_flags and getattr(plan, "packed", False):
            raise ValueError(
                "A packed plan resets each lane where its series changes, "
                "which only per-row reset flags can do. Use "
                "plan.dataset(reset_flags=True) with a model wrapped by "
                "keras_tbptt.with_reset_flags(model). Received: reset_flags=False"
            )
        self.plan = plan
        self._moving = moving_cuts(plan, reset_flags, EPOCH_MAX_BYTES)
        self._batches = batches_of(plan)  # the plan's batch assembly (core/batches.py)
        self.reset_flags = reset_flags
        self._flags = (
            plan.reset_flags.reshape(len(plan), plan.batch_size) if reset_flags else None
        )
        self._next = 0
        self._fast = None  # per-batch read plan, built on first read (`_prepare`)
        self._epoch = None  # `_epoch_arrays` for `_in_order`, once built (or False)
        self._tf_datasets = {}  # the tf.data pipelines, once built, by inputs_only
        self._tf_path = None  # which kind: "epoch" or "numpy_function"
        # Per-batch factors on the weights for a model with a masked output
        # (`SplitPlan.masked_loss_factors`), or None.
        self._weight_factors = None
        # `(shuffle, inputs_only)` of each Keras epoch iterator reading this
        # dataset (the training data and validation data may be one object).
        self._settings_for = weakref.WeakKeyDictionary()

    @property
    def num_batches(self) -> int:
        # Keras reads this when fit(), evaluate() or predict() wraps the
        # dataset, before it reads a batch or builds anything.
        call = keras_call()
        if call is not None:
            self._check_call(*call)
        self._note_iterator_settings(*(call or (None, {})))
        return len(self.plan)

    @property
    def offsets(self) -> list[int] | None:
        """Moving cuts: each training epoch's offset so far, then the next
        one's (`None`: fixed cuts)."""
        return None if self._moving is None else list(self._moving.offsets)

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        if index >= len(self.plan):
            raise IndexError(f"batch {index} out of range ({len(self.plan)} batches)")
        index = check_int(index, "index", minimum=0)
        if self.plan.stateful:
            self._check_order(index)
        return self._read(index)

    def _check_call(self, method, local):
        """Checks run when Keras' `method` wraps this dataset (see
        `keras_call`), before it reads a batch.

        Raises when the model does not fit the plan (see
        `check_model_for_plan`) or when the call's `ResetStates` follow
        another schedule than the plan's, for this data and for a
        `validation_data` dataset; warns when a stateful plan runs without
        any `ResetStates`.
        """
        plan = self.plan
        if method == "predict":
            role = "predict"
        elif method == "fit" and local.get("x") is self:
            role = "train"
        else:  # evaluate(), or validation during fit()
            role = "test"
        call = f"{method}()"
        model = local["self"]
        check_model_for_plan(model, plan, needs_targets=role != "predict", call=call)
        if role == "train":
            check_trains_under_torch(stateful_layers(model))
        resets = [c for c in _callback_list(local.get("callbacks")) if isinstance(c, ResetStates)]
        check_reset_flags(model, self, resets, call)
        masked = output_masked(model)
        if self._moving is not None and role == "train":
            self._moving.check_call(local, self, masked)
        self._for_masked_output(masked)
        if plan.stateful and not resets and not self.reset_flags:
            warnings.warn(
                f"{call} reads the dataset of a stateful plan without "
                "plan.callbacks(): the states are never reset, so the first batch "
                "starts from whatever state the model was left in by an earlier "
                "call, and each group of series continues the previous group's "
                f"states. Pass callbacks=plan.callbacks() to {method}().",
                UserWarning,
                stacklevel=2,
            )
        for callback in resets:
            callback.check_plan(plan, role, method)
        validation = local.get("validation_data") if role == "train" else None
        if isinstance(validation, PlanDataset):
            validation._for_masked_output(masked)
            check_model_for_plan(model, validation.plan, needs_targets=True, call=call)
            check_reset_flags(model, validation, resets, call)
            for callback in resets:
                callback.check_plan(validation.plan, "test", method)

    def _check_order(self, index):
        # Index 0 may come at any time: a new epoch, or a peek at the first
        # batch to learn the shapes. Reading one of the last two batches
        # again is an inspection (Keras reads them through the adapter
        # interface below, never by index, unless it lacks that interface).
        if index in (0, self._next):
            self._next = index + 1
            return
        if self._next - 2 <= index < self._next:
            return
        restart = " (or batch 0, to start over)" if self._next else ""
        raise ValueError(
            f"Batches of a stateful plan must be read in order, but batch {index} "
            f"was asked for where batch {self._next} was expected{restart}. "
            "Pass shuffle=False to fit() (Keras shuffles the batches of a "
            "finite dataset by default), and do not reorder the dataset."
        )

    # ------------------------------------------------------------------
    # Reading batches without the per-call checks (the hot path)
    def _prepare(self):
        """Work out once which batches are plain views, and their weights.

        A batch is *fast* when its rows are one full group of rows that all
        have its window in full (the view path of `SplitPlan.batch`), and,
        for per-step targets, when its sample weights are one of two
        patterns: all ones (first windows, or windows that do not overlap)
        or the last `hop` steps (later overlapping windows). Other batches
        (padding, filler rows, packed lanes, NaN targets) are read by the
        plan itself, or sliced from `_epoch_arrays` by `_in_order`.
        """
        plan, batches, layout = self.plan, self._batches, self._batches.layout
        n, size, steps = len(plan), layout.batch_size, layout.timesteps
        fast = np.zeros(n, bool)
        if batches.x_windows is not None and not layout.packed and n:
            group, window = layout.batch_group, layout.batch_window
            first = np.arange(0, len(layout.row_series), size)
            complete = first + size <= len(layout.row_series)
            fewest = np.minimum.reduceat(layout.row_windows, first)
            fast = complete[group] & (fewest[group] > window)
            targets = batches.targets
            if targets is not None and targets.per_step:
                shortest = np.minimum.reduceat(layout.row_length, first)
                fast &= (
                    (batches.y_windows is not None)
                    and targets.observed is None
                    and layout.window_lengths is None
                )
                fast &= shortest[group] - window * layout.hop >= steps
            self._first_row = group * size
            self._window = window
        owned = np.arange(steps) >= steps - layout.hop
        self._weights = (
            np.full((size, steps), plan.weight_scale, np.float32),
            np.where(owned, plan.weight_scale, 0).astype(np.float32)[None].repeat(size, 0),
        )
        self._fast = fast

    def _read(self, index, inputs_only=False):
        """Batch `index`, as `plan.batch(index)` (plus the flags), unchecked;
        `(x,)` alone with `inputs_only`."""
        if self._fast is None:
            self._prepare()
        plan, batches = self.plan, self._batches
        targets = None if inputs_only else batches.targets
        if self._fast[index]:
            window = self._window[index]
            rows = slice(self._first_row[index], self._first_row[index] + plan.batch_size)
            x = batches.x_windows[rows, window]
            if targets is None:
                y = weight = None
            elif targets.per_step:
                y = batches.y_windows[rows, window]
                weight = self._weights[bool(window)].copy()
            else:
                y, weight = batches.batch_targets(index)
        else:
            x = batches.batch_x(index)
            y, weight = (None, None) if targets is None else batches.batch_targets(index)
        if self._flags is not None:
            x = (x, self._flags[index])
        if y is not None and self._weight_factors is not None:
            weight = weight * np.float32(self._weight_factors[index])
        return (x,) if y is None else (x, y, weight)

    def _for_masked_output(self, masked):
        """Scale the weights for a model whose per-step output is masked
        (`masked=True`), or not; called by the checks when a Keras call takes
        the dataset, before any batch is read."""
        plan = self.plan
        targets = self._batches.targets
        masked = masked and targets is not None and targets.per_step
        factors = plan.masked_loss_factors() if masked else None
        if (factors is None) != (self._weight_factors is None) or (
            factors is not None and not np.array_equal(factors, self._weight_factors)
        ):
            self._weight_factors = factors
            self._epoch, self._tf_datasets = None, {}  # built with other weights

    def _in_order(self, inputs_only=False):
        """Every batch in order: views of the series where all batches are
        views, else slices of the epoch gathered at once (`_epoch_arrays`),
        else (memory-mapped series) batch by batch."""
        if self._fast is None:
            self._prepare()
        if self._epoch is None:
            self._epoch = False if self._fast.all() else self._epoch_arrays() or False
        if self._epoch is False:
            for index in range(len(self.plan)):
                yield self._read(index, inputs_only)
            return
        x, y, weight, flags = self._epoch
        y = None if inputs_only else y
        stops = np.cumsum(self._batches.batch_rows()).tolist()
        for start, stop in zip([0] + stops[:-1], stops):
            batch = x[start:stop] if flags is None else (x[start:stop], flags[start:stop])
            yield (batch,) if y is None else (batch, y[start:stop], weight[start:stop])

    def _epoch_arrays(self):
        """The whole epoch at once (`epoch_arrays`), or `None`; read at
        call time, `EPOCH_MAX_BYTES` bounds it."""
        return epoch_arrays(self.plan, self.reset_flags, self._weight_factors, EPOCH_MAX_BYTES)

    def _shuffled(self):
        # What Keras' PyDatasetAdapter does for fit(shuffle=True): a stateless
        # plan's batches in random order (a stateful plan's shuffle is
        # refused when Keras wraps the dataset, `_note_iterator_settings`).
        order = list(range(len(self.plan)))
        random.shuffle(order)
        for index in order:
            yield self._read(index)

    # ------------------------------------------------------------------
    # The Keras data adapter interface (see the module docstring)
    def _note_iterator_settings(self, method, call_locals):
        """Keep what the Keras epoch iterator that wraps this dataset needs.

        Keras gives a data adapter no arguments: `shuffle` and
        `class_weight` are those `EpochIterator.__init__` was given (see
        `epoch_iterator_arguments`); `predict()` (`method`) reads only the
        inputs, so only they are sent. `class_weight` is refused here, as
        Keras' PyDataset adapter refuses it with per-batch sample weights.
        """
        found = epoch_iterator_arguments(self)
        if found is None:
            return
        iterator, local = found
        if local["shuffle"] and self.plan.stateful:
            # Refused here, before Keras builds any pipeline or reads a batch.
            raise ValueError(
                "Batches of a stateful plan must be read in order, but Keras "
                "was asked to shuffle them (fit() shuffles a finite dataset "
                "by default), which would feed rows to the wrong states. Pass "
                "shuffle=False to fit(). Received: shuffle=True"
            )
        if local.get("class_weight") is not None:
            raise ValueError(
                "You cannot specify `class_weight` and `sample_weight` at the "
                "same time: a plan's batches carry sample weights (0 on "
                "padding, filler rows and steps an earlier window trained). "
                "Scale the targets' weights yourself, or drop class_weight. "
                f"Received: class_weight={local['class_weight']!r}"
            )
        distribution = keras.distribution.distribution()
        if getattr(distribution, "_is_multi_process", False) and getattr(
            distribution, "auto_shard_dataset", False
        ):
            raise ValueError(
                "When using a multi-worker distribution with auto-sharding "
                "enabled, the data must be provided as a `tf.data.Dataset` "
                f"instance. Received: type(x)={type(self)}. If the dataset is "
                "already sharded across workers, then set "
                "`distribution.auto_shard_dataset = False`."
            )
        training = method == "fit" and call_locals.get("x") is self
        self._settings_for[iterator] = (bool(local["shuffle"]), method == "predict", training)

    def _settings(self):
        """`(shuffle, inputs_only)` for the Keras epoch iterator calling; a
        third item: whether it reads `fit`'s training data."""
        iterator = reading_epoch_iterator(self)
        try:
            return self._settings_for.get(iterator, (False, False, False))
        except TypeError:  # not a Keras iterator (cannot be weakly referenced)
            return False, False, False

    def _iterate(self):
        shuffle, inputs_only, *training = self._settings()
        if training == [True] and self._moving is not None:
            return self._moving.in_order()
        return self._shuffled() if shuffle else self._in_order(inputs_only)

    def get_numpy_iterator(self) -> Iterator[tuple[Any, ...]]:
        return self._iterate()

    def get_jax_iterator(self) -> Iterator[tuple[Any, ...]]:
        # numpy arrays, which Keras passes to JAX as they are.
        return self._iterate()

    def get_torch_dataloader(self) -> Any:
        from keras.src.trainers.data_adapters import data_adapter_utils

        return data_adapter_utils.get_torch_dataloader(self._iterate())

    def get_tf_dataset(self) -> tf.data.Dataset:
        import tensorflow as tf

        # A shuffled epoch (stateless plans only: a stateful plan's shuffle
        # is refused when Keras wraps the dataset) permutes the batch
        # indices in the graph; no Python generator runs inside tf.data.
        shuffle, inputs_only, *training = self._settings()
        if training == [True] and self._moving is not None:
            return self._moving.tf_dataset(tf)
        key = (inputs_only, shuffle)
        if key not in self._tf_datasets:
            epoch = self._epoch_arrays()
            if epoch is not None:
                self._tf_path = "epoch"
                dataset = epoch_tf_dataset(
                    tf, epoch, self._batches.batch_rows(), self.plan.batch_size,
                    self.has_partial_batch, inputs_only, shuffle,
                )
            else:
                self._tf_path = "numpy_function"
                batch_axis = None if self.has_partial_batch else self.plan.batch_size
                dataset = lazy_tf_dataset(
                    tf, self._read, len(self.plan), batch_axis, inputs_only, shuffle
                )
            self._tf_datasets[key] = dataset
        return self._tf_datasets[key]

    batch_size = property(lambda self: self.plan.batch_size)
    has_partial_batch = property(lambda self: self.partial_batch_size is not None)

    @property
    def partial_batch_size(self) -> int | None:
        # Only stateless plans end with smaller batches (stateful ones fill
        # the last group with filler rows).
        rows = self._batches.batch_rows()
        return int(rows[-1]) if len(rows) and rows[-1] < self.plan.batch_size else None


def _callback_list(callbacks):
    """The callbacks of a Keras call's `callbacks` argument, as a list."""
    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return list(callbacks.callbacks)
    try:
        return list(callbacks)
    except TypeError:
        return [callbacks]
