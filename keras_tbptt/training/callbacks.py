"""`ResetStates`: batch-aligned state resets for fit, evaluate and predict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_tbptt.core.plan import SplitPlan
from keras_tbptt.core.validation import check_int
from keras_tbptt.layers.stateful import stateful_layers
from keras_tbptt.training.checks import (
    check_batch_size,
    check_model_for_plan,
    check_states_tracked,
    check_trains_under_torch,
)
from keras_tbptt.training.running_call import keras_call

# The roles data plays in Keras calls (each has its schedule), for messages.
_ROLE_NAMES = {"train": "training", "test": "evaluation", "predict": "prediction"}


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


def _describe(resets):
    """`'6 batches, resets before [0, 3]'`, shortened for long schedules."""
    starts = np.flatnonzero(resets).tolist()
    shown = starts if len(starts) <= 8 else starts[:8] + ["..."]
    return f"{len(resets)} batches, resets before batches {shown}".replace("'", "")


class ResetStates(keras.callbacks.Callback):
    """Reset every stateful layer of the model on a batch-aligned schedule.

    Resets the states of all stateful recurrent layers (nested models,
    `Bidirectional` and `TimeDistributed` included) before the batches
    flagged in the schedule, in training, evaluation and prediction, and at
    the start of each epoch, evaluation and prediction. Validation during
    `fit` starts from reset states and training resumes from reset states,
    so neither leaks into the other.

    It also guards against the classic traps, raising a clear error before
    any batch runs when: the model has no stateful layer; a stateful
    layer's batch size differs from the plan's (e.g. predicting with another
    batch size: see `keras_tbptt.rebatch`); the number of batches differs
    from the schedule (naming `steps_per_epoch=`, `validation_split=`,
    `batch_size=` or `steps=` when one of them is the cause);
    `steps_per_execution` would skip a reset; under JAX, a layer's states
    are untracked and would silently be lost (Keras' own RNN layers: use
    `keras_tbptt.TBPTTLSTM`, `TBPTTGRU`, `TBPTTSimpleRNN` or `TBPTTRNN`). Built from a plan (`plan=`, as
    `SplitPlan.callbacks()` does) it also refuses: `fit` or `evaluate` on a
    plan without targets; a model whose output has a time axis when the
    targets are per sequence, or the reverse; a stateful layer without the
    plan's `layer_kwargs` (`state_step`, `truncate_gradient`). The plan's
    dataset refuses data of another schedule (another plan's dataset, or
    validation data without `callbacks(validation=val)`); validation data
    as arrays is counted, and a wrong count raises at the end of
    validation.

    Usually built by `SplitPlan.callbacks()`. The callback binds to the
    model of each Keras call it is passed to: the same list passed to a
    second model's `fit` checks that model and resets its states on the
    plan's schedule (and no longer the first model's).

    Args:
        resets: one bool per batch of an epoch: reset before that batch.
            Exactly one of `resets`, `every` and `plan` is required.
        every: reset every `every` batches (batches 0, every, 2*every, ...).
        test_resets: the schedule for `evaluate` and validation during
            `fit` (default: `resets`).
        predict_resets: the schedule for `predict` (default: `resets`).
        batch_size: the batch size the schedule was made for; checked
            against the model's stateful layers.
        plan: a `SplitPlan`: its schedule, batch size, targets and
            `layer_kwargs` are used and checked (for training, evaluation
            and prediction).
        validation: with `plan`, the plan of the validation data passed to
            `fit` (its schedule is used during validation and `evaluate`).

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
    >>> callback = keras_tbptt.ResetStates(plan=plan)  # what plan.callbacks() builds
    >>> callback.resets.tolist(), callback.batch_size
    ([True, False, False], 4)
    """

    def __init__(
        self,
        resets: Sequence[bool] | np.ndarray | None = None,
        *,
        every: int | None = None,
        test_resets: Sequence[bool] | np.ndarray | None = None,
        predict_resets: Sequence[bool] | np.ndarray | None = None,
        batch_size: int | None = None,
        plan: SplitPlan | None = None,
        validation: SplitPlan | None = None,
    ) -> None:
        super().__init__()
        if sum(arg is not None for arg in (resets, every, plan)) != 1:
            raise ValueError(
                "Pass exactly one of `resets`, `every` and `plan` (one bool per "
                f"batch, an integer, or a SplitPlan). Received: resets={resets!r}, "
                f"every={every!r}, plan={plan!r}"
            )
        for name, value in (("plan", plan), ("validation", validation)):
            if value is not None and not isinstance(value, SplitPlan):
                raise TypeError(
                    f"`{name}` must be a SplitPlan (e.g. from "
                    "keras_tbptt.naive_split or plan.validation_split()). "
                    f"Received: {name} of type {type(value).__name__}"
                )
        if validation is not None and plan is None:
            raise ValueError(
                "`validation` needs `plan`: pass plan=train_plan, "
                "validation=validation_plan (or use train_plan.callbacks("
                "validation=validation_plan))."
            )
        if plan is not None:
            given = {
                "test_resets": test_resets,
                "predict_resets": predict_resets,
                "batch_size": batch_size,
            }
            given = [name for name, value in given.items() if value is not None]
            if given:
                raise ValueError(
                    f"`plan` sets the schedules and the batch size; do not also "
                    f"pass {', '.join(f'`{name}`' for name in given)}."
                )
            resets = plan.resets
            test_resets = (validation or plan).resets
            predict_resets = plan.resets
            batch_size = plan.batch_size
        self.resets = _schedule(resets, "resets")
        self.every = check_int(every, "every", allow_none=True)
        self.test_resets = _schedule(test_resets, "test_resets")
        self.predict_resets = _schedule(predict_resets, "predict_resets")
        self.batch_size = check_int(batch_size, "batch_size", allow_none=True)
        self.plan = plan
        self.validation = validation
        self._in_fit = False
        self._test_batches = 0
        self.reset_count = 0

    def set_model(self, model: keras.Model) -> None:
        """Bind the callback to `model`, afresh.

        Keras calls this at the start of every `fit`, `evaluate` and
        `predict` the callback is passed to, so one `plan.callbacks()` list
        serves several models in turn: each call checks its own model and
        resets that model's states on the plan's schedule, and nothing of an
        earlier call (one refused before its end included) carries over.

        Args:
            model: the model of the Keras call.
        """
        super().set_model(model)
        self._in_fit = False
        self._test_batches = 0

    # -- schedules and plans per role ------------------------------------
    def _schedule_for(self, role):
        """The schedule of `role` ("train", "test", "predict"); None for `every`."""
        special = {"test": self.test_resets, "predict": self.predict_resets}.get(role)
        return special if special is not None else self.resets

    def _plan_for(self, role):
        if role == "test" and self.validation is not None:
            return self.validation
        return self.plan

    def check_plan(self, plan: SplitPlan, role: str, method: str = "predict") -> None:
        """Raise if `plan`'s reset schedule is not this callback's for `role`.

        Called by the plan's dataset when Keras' `method` ("fit",
        "evaluate" or "predict") wraps it, before any batch runs; `role` is
        "train", "test" (evaluation, or validation during `fit`) or
        "predict".
        """
        schedule = self._schedule_for(role)
        if schedule is None:
            schedule = np.arange(len(plan)) % self.every == 0
        if np.array_equal(schedule, plan.resets):
            return
        if method == "fit" and role == "test":
            fix = (
                "For validation during fit(), pass the validation plan to the "
                "callbacks: callbacks=train.callbacks(validation=val) with "
                "validation_data=val.dataset()."
            )
        else:
            fix = (
                "Pass the callbacks of the plan whose dataset you use: "
                f"model.{method}(plan.dataset(), callbacks=plan.callbacks())."
            )
        data = "validation" if method == "fit" and role == "test" else _ROLE_NAMES[role]
        raise ValueError(
            f"The reset schedule of the callbacks does not match the "
            f"{data} data, so the states would be reset at the "
            "wrong batches.\n"
            f"- Expected: data of {_describe(schedule)}\n"
            f"- Received: plan.dataset() of {_describe(plan.resets)}\n"
            f"{fix}"
        )

    # -- helpers ---------------------------------------------------------
    def _check_model(self, role):
        model = self.model  # on JAX, this also syncs the live training state
        layers = stateful_layers(model)
        if not layers:
            raise ValueError(
                "ResetStates found no stateful recurrent layer in the model. "
                "Build the layers with stateful=True (and a fixed batch size), "
                "or drop the callback for a stateless plan."
            )
        plan = self._plan_for(role)
        if plan is not None:
            call = {"train": "fit()", "test": "evaluate()", "predict": "predict()"}[role]
            check_model_for_plan(model, plan, needs_targets=role != "predict", call=call)
        if self.batch_size is not None:
            check_batch_size(layers, self.batch_size)
        check_states_tracked(model, layers)
        if role == "train":
            check_trains_under_torch(layers)

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
                "callbacks, so some resets would be skipped. Reset inside the "
                "graph instead: model = keras_tbptt.with_reset_flags(model) "
                "with plan.dataset(reset_flags=True) and no callbacks (any "
                "steps_per_execution); or compile with steps_per_execution=1, "
                "or a value dividing every reset position."
            )

    def _check_steps(self, schedule, role):
        """The data must have exactly as many batches as the schedule.

        Fewer batches (e.g. another plan's shorter data) would silently
        follow the wrong resets; the message names the argument of the
        Keras call that changed the count, when one did.
        """
        steps = (self.params or {}).get("steps")
        if schedule is None or not steps or steps == len(schedule):
            return
        call = keras_call()
        local = call[1] if call is not None else {}
        expected_batch = self.batch_size
        if local.get("steps_per_epoch") or local.get("steps"):
            name = "steps_per_epoch" if role == "train" else "steps"
            cause = (
                f"`{name}={local.get(name)}` runs {steps} batches, not the "
                f"plan's {len(schedule)}: drop `{name}` (one epoch is the "
                "whole plan)."
            )
        elif local.get("validation_split"):
            cause = (
                f"`validation_split={local['validation_split']}` holds out the "
                "last samples of the arrays, which breaks the layout. Split "
                "by time instead: train, val = plan.validation_split("
                f"{local['validation_split']}), then fit(train.dataset(), "
                "validation_data=val.dataset(), "
                "callbacks=train.callbacks(validation=val))."
            )
        elif (
            local.get("batch_size") is not None
            and expected_batch is not None
            and local["batch_size"] != expected_batch
        ):
            cause = (
                f"`batch_size={local['batch_size']}` differs from the plan's: "
                f"pass batch_size={expected_batch} (plan.batch_size)."
            )
        else:
            cause = (
                "Use the plan's own dataset() and callbacks() together; with "
                "arrays, pass batch_size=plan.batch_size and shuffle=False, and "
                "no steps_per_epoch=, steps= or validation_split=."
            )
        raise ValueError(
            f"The reset schedule does not match the {_ROLE_NAMES[role]} data.\n"
            f"- Expected: {len(schedule)} batches"
            + (" per epoch" if role == "train" else "")
            + f"\n- Received: {steps} "
            + ("steps per epoch" if role == "train" else "batches")
            + f"\n{cause}"
        )

    def _begin(self, role, check_steps=True):
        schedule = self._schedule_for(role)
        self._check_model(role)
        self._check_steps_per_execution(schedule)
        # Checked here, before any step runs: under JAX an error raised in
        # the middle of evaluate() or predict() leaves the model unsynced.
        if check_steps:
            self._check_steps(schedule, role)
        self._reset()

    # -- training --------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.reset_count = 0
        self._in_fit = True
        self._begin("train")

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._in_fit = False

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._reset()

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if batch and self._due(self.resets, batch):
            self._reset()

    # -- evaluation (also validation during fit) -------------------------
    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        # During fit, `params` describe the training data, not validation's:
        # validation batches are counted instead (see on_test_end).
        self._test_batches = 0
        self._begin("test", check_steps=not self._in_fit)

    def on_test_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if batch and self._due(self._schedule_for("test"), batch):
            self._reset()

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._test_batches = batch + 1

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        # Training resumes (next epoch) from reset states, not validation's.
        self._reset()
        schedule = self._schedule_for("test")
        if self._in_fit and schedule is not None and self._test_batches != len(schedule):
            raise ValueError(
                "The validation data does not match the callbacks' schedule for "
                "validation, so its states were reset at the wrong batches.\n"
                f"- Expected: {len(schedule)} validation batches\n"
                f"- Received: {self._test_batches} batches\n"
                "Pass the validation plan to the callbacks: "
                "callbacks=train.callbacks(validation=val), with "
                "validation_data=val.dataset()."
            )

    # -- prediction ------------------------------------------------------
    def on_predict_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._begin("predict")

    def on_predict_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if batch and self._due(self._schedule_for("predict"), batch):
            self._reset()


def reset_callbacks(plan: SplitPlan, validation: SplitPlan | None = None) -> list[ResetStates]:
    """`SplitPlan.callbacks(validation)`: one `ResetStates`, after refusing
    packed plans (their resets fall within batches), moving cuts (their
    rows are held within batches) and a `validation` that is not a plan."""
    for part in (plan, validation):
        if getattr(part, "packed", False):
            raise ValueError(
                "A packed plan resets each lane where its series changes, "
                "within a batch, which callbacks (resetting whole batches "
                "between them) cannot do. Feed plan.dataset(reset_flags=True) "
                "to a model wrapped by keras_tbptt.with_reset_flags(model), "
                "with no callbacks."
            )
    if getattr(plan, "offsets", "fixed") == "random":
        raise ValueError(
            "`offsets`='random' moves the cuts each training epoch and holds "
            "each row at its reset state over the front padding, which "
            "callbacks (resetting whole batches between them) cannot do. Feed "
            "plan.dataset() to a model wrapped by "
            "keras_tbptt.with_reset_flags(model), with no callbacks, or use "
            "naive_split(offsets='fixed'). Received: plan.callbacks() on a plan "
            "with offsets='random'"
        )
    if validation is not None and not isinstance(validation, SplitPlan):
        raise TypeError(
            "`validation` must be a SplitPlan (e.g. from "
            f"plan.validation_split()). Received: {type(validation).__name__}"
        )
    return [ResetStates(plan=plan, validation=validation)]
