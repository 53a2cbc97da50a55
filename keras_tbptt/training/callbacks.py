"""`ResetStates`: batch-aligned state resets for fit, evaluate and predict."""

import keras
import numpy as np

from keras_tbptt.core.inputs import check_int


def stateful_layers(model):
    """The stateful recurrent layers of `model`, nested ones included.

    Finds layers inside nested models, `Bidirectional` and `TimeDistributed`
    wrappers.
    """
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.RNN) and layer.stateful
    ]


def _schedule(resets, name):
    if resets is None:
        return None
    resets = np.asarray(resets)
    if resets.ndim != 1 or resets.dtype != bool or len(resets) == 0:
        raise ValueError(
            f"`{name}` must be a non-empty 1-D sequence of booleans, one per "
            f"batch. Received: array of shape {resets.shape}, dtype {resets.dtype}"
        )
    return resets


class ResetStates(keras.callbacks.Callback):
    """Reset every stateful layer of the model on a batch-aligned schedule.

    Resets the states of all stateful recurrent layers (nested models,
    `Bidirectional` and `TimeDistributed` included) before the batches
    flagged in the schedule, in training, evaluation and prediction, and at
    the start of each epoch, evaluation and prediction. Validation during
    `fit` starts from reset states and training resumes from reset states,
    so neither leaks into the other.

    It also guards against the classic traps, raising a clear error when:
    the model has no stateful layer; a stateful layer's batch size differs
    from `batch_size` (e.g. predicting with another batch size: see
    `keras_tbptt.rebatch`); the data has more batches than the schedule;
    `steps_per_execution` would skip a reset; under JAX, a layer's states
    are untracked and would silently be lost (Keras' own RNN layers: use
    `keras_tbptt.TBPTTLSTM`).

    Usually built by `SplitPlan.callbacks()`.

    Args:
        resets: one bool per batch of an epoch: reset before that batch.
            Either `resets` or `every` is required.
        every: reset every `every` batches (batches 0, every, 2*every, ...).
        test_resets: the schedule for `evaluate` and validation during
            `fit` (default: `resets`).
        predict_resets: the schedule for `predict` (default: `resets`).
        batch_size: the batch size the schedule was made for; checked
            against the model's stateful layers.

    Example:

    >>> import numpy as np, keras, keras_tbptt
    >>> plan = keras_tbptt.naive_split(np.zeros((4, 60, 1)), 20, np.zeros((4, 60, 1)))
    >>> model = keras.Sequential([
    ...     keras.Input(batch_shape=(4, 20, 1)),
    ...     keras_tbptt.TBPTTLSTM(3, stateful=True, return_sequences=True),
    ... ])
    >>> model.compile(loss="mse")
    >>> history = model.fit(plan.dataset(), shuffle=False, verbose=0,
    ...                     callbacks=[keras_tbptt.ResetStates(plan.resets, batch_size=4)])
    """

    def __init__(
        self,
        resets=None,
        *,
        every=None,
        test_resets=None,
        predict_resets=None,
        batch_size=None,
    ):
        super().__init__()
        if (resets is None) == (every is None):
            raise ValueError(
                "Pass exactly one of `resets` (one bool per batch) and `every` "
                f"(an integer). Received: resets={resets!r}, every={every!r}"
            )
        self.resets = _schedule(resets, "resets")
        self.every = check_int(every, "every", allow_none=True)
        self.test_resets = _schedule(test_resets, "test_resets")
        self.predict_resets = _schedule(predict_resets, "predict_resets")
        self.batch_size = check_int(batch_size, "batch_size", allow_none=True)
        self._in_fit = False
        self.reset_count = 0

    # -- helpers ---------------------------------------------------------
    def _check_model(self):
        model = self.model  # on JAX, this also syncs the live training state
        layers = stateful_layers(model)
        if not layers:
            raise ValueError(
                "ResetStates found no stateful recurrent layer in the model. "
                "Build the layers with stateful=True (and a fixed batch size), "
                "or drop the callback for a stateless plan."
            )
        for layer in layers:
            size = layer._expected_batch_size
            if self.batch_size is not None and size is not None and int(size) != self.batch_size:
                raise ValueError(
                    f"Stateful layer {layer.name!r} was built for another batch "
                    "size than the plan's.\n"
                    f"- Expected: batch_size={self.batch_size}\n"
                    f"- Received: a layer with batch size {int(size)}\n"
                    "Use keras_tbptt.rebatch(model, batch_size) to get a copy of "
                    "the model with the plan's batch size."
                )
        if keras.backend.backend() == "jax":
            tracked = {id(v) for v in model.non_trainable_variables}
            lost = [
                layer.name
                for layer in layers
                if layer.states is not None
                and not all(id(v) in tracked for v in layer.states)
            ]
            if lost:
                raise ValueError(
                    f"Under the JAX backend the states of {lost} are not tracked "
                    "variables, so fit(), evaluate() and predict() silently drop "
                    "them after every batch (a Keras limitation of its own RNN "
                    "layers). Use keras_tbptt.TBPTTLSTM(..., stateful=True) "
                    "instead of keras.layers.LSTM, or run on the TensorFlow "
                    "backend."
                )

    def _reset(self):
        for layer in stateful_layers(self.model):
            layer.reset_state()
        self.reset_count += 1

    def _due(self, schedule, batch):
        if self.every is not None and schedule is None:
            return batch % self.every == 0
        if batch >= len(schedule):
            raise ValueError(
                "The data has more batches than the reset schedule.\n"
                f"- Expected: at most {len(schedule)} batches per epoch\n"
                f"- Received: batch index {batch}\n"
                "Use the plan's own dataset() and callbacks() together."
            )
        return bool(schedule[batch])

    def _check_steps_per_execution(self, schedule):
        steps = int(getattr(self.model, "steps_per_execution", 1) or 1)
        if steps == 1:
            return
        due = [self.every] if schedule is None else np.flatnonzero(schedule)
        if any(position % steps for position in due):
            raise ValueError(
                f"steps_per_execution={steps} runs several batches between "
                "callbacks, so some resets would be skipped. Compile with "
                "steps_per_execution=1, or choose it to divide every reset "
                "position."
            )

    def _begin(self, schedule, check_steps=True):
        self._check_model()
        self._check_steps_per_execution(schedule)
        steps = (self.params or {}).get("steps")
        # Checked here, before any step runs: under JAX an error raised in
        # the middle of evaluate() or predict() leaves the model unsynced.
        if check_steps and schedule is not None and steps and steps > len(schedule):
            raise ValueError(
                "The data has more batches than the reset schedule.\n"
                f"- Expected: at most {len(schedule)} batches\n"
                f"- Received: {steps} batches\n"
                "Use the plan's own dataset() and callbacks() together."
            )
        self._reset()

    # -- training --------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.reset_count = 0
        self._in_fit = True
        steps = (self.params or {}).get("steps")
        if self.resets is not None and steps is not None and steps != len(self.resets):
            raise ValueError(
                "The reset schedule does not match the training data.\n"
                f"- Expected: {len(self.resets)} batches per epoch\n"
                f"- Received: {steps} steps per epoch\n"
                "Train on plan.dataset() with plan.callbacks(); with arrays, "
                "pass batch_size=plan.batch_size and shuffle=False to fit()."
            )
        self._begin(self.resets)

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()

    def on_train_batch_begin(self, batch, logs=None):
        if batch and self._due(self.resets, batch):
            self._reset()

    # -- evaluation (also validation during fit) -------------------------
    def on_test_begin(self, logs=None):
        # During fit, `params` describe the training data, not validation's.
        schedule = self.test_resets if self.test_resets is not None else self.resets
        self._begin(schedule, check_steps=not self._in_fit)

    def on_test_batch_begin(self, batch, logs=None):
        schedule = self.test_resets if self.test_resets is not None else self.resets
        if batch and self._due(schedule, batch):
            self._reset()

    def on_test_end(self, logs=None):
        # Training resumes (next epoch) from reset states, not validation's.
        self._reset()

    # -- prediction ------------------------------------------------------
    def on_predict_begin(self, logs=None):
        self._begin(self.predict_resets if self.predict_resets is not None else self.resets)

    def on_predict_batch_begin(self, batch, logs=None):
        schedule = self.predict_resets if self.predict_resets is not None else self.resets
        if batch and self._due(schedule, batch):
            self._reset()
