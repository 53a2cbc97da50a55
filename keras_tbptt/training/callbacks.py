"""`ResetStates`: batch-aligned state resets for fit, evaluate and predict.

Also the checks that a model, its data and its callbacks belong to the same
plan, shared by `ResetStates` and `PlanDataset` (which runs them when Keras
wraps it, before Keras builds anything: under JAX, `fit` and `evaluate`
compute the loss on the first batch before any callback runs).
"""

import sys
import warnings

import keras
import numpy as np

from keras_tbptt.core.inputs import check_int
from keras_tbptt.core.plan import SplitPlan
from keras_tbptt.training.skip_unweighted import SkipUnweightedBatches

_KERAS_METHODS = ("fit", "evaluate", "predict")
# The roles data plays in Keras calls (each has its schedule), for messages.
_ROLE_NAMES = {"train": "training", "test": "evaluation", "predict": "prediction"}


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


def keras_call():
    """`(method, frame locals)` of the innermost running `Model.fit`,
    `evaluate` or `predict` of this thread, or `None`.

    Lets the plan's dataset see the model, the callbacks and the other
    arguments of the call that wraps it, before Keras reads a batch. Only
    the documented argument names (`self`, `x`, `callbacks`,
    `validation_data`, `steps_per_epoch`, ...) are read. Returns `None` when
    the data is not read from inside such a call (for example by TensorFlow's
    input pipeline thread), and callers then skip their checks.
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name in _KERAS_METHODS and frame.f_globals.get(
            "__name__", ""
        ).startswith("keras."):
            local = frame.f_locals
            if isinstance(local.get("self"), keras.Model):
                return frame.f_code.co_name, local
        frame = frame.f_back
    return None


def _targets_kind(plan):
    """`None`, `"per_step"` or `"per_sequence"`."""
    targets = plan._targets
    if targets is None:
        return None
    return "per_step" if targets.per_step else "per_sequence"


def _output_shape(model):
    """The static shape of the model's single output, or `None`."""
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):  # a subclassed model: unknown
        return None
    if not outputs or len(outputs) != 1:
        return None
    return tuple(outputs[0].shape)


def _output_masked(model):
    """Whether the model's single output carries a Keras mask (then Keras'
    losses average each batch over its unmasked steps).

    Reads the mask Keras attaches to a functional model's symbolic output
    (`_keras_mask`, private); a `with_reset_flags` model is looked into.
    """
    from keras_tbptt.layers.reset_flags import WithResetFlags

    wrapped = [layer for layer in model.layers if isinstance(layer, WithResetFlags)]
    if wrapped:
        model = wrapped[0].model
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):  # a subclassed model: unknown
        return False
    return bool(outputs) and len(outputs) == 1 and (
        getattr(outputs[0], "_keras_mask", None) is not None
    )


def check_batch_size(layers, batch_size):
    """Every stateful layer must be built for `batch_size` rows."""
    for layer in layers:
        size = layer._expected_batch_size
        if size is not None and int(size) != batch_size:
            raise ValueError(
                f"Stateful layer {layer.name!r} was built for another batch "
                "size than the plan's.\n"
                f"- Expected: batch_size={batch_size}\n"
                f"- Received: a layer with batch size {int(size)}\n"
                "Use keras_tbptt.rebatch(model, batch_size) to get a copy of "
                "the model with the plan's batch size."
            )


def check_model_for_plan(model, plan, *, needs_targets, call):
    """Raise a clear error when `model` cannot run over `plan`.

    Checked, in order: `call` (`"fit()"`, `"evaluate()"`, ...) needs targets
    and the plan has none; a stateful layer is built for another batch size
    than the plan's; a stateful layer lacks an argument of
    `plan.layer_kwargs` (`state_step`, `truncate_gradient`); the model's
    output has a time axis and the targets are per sequence, or the reverse.
    Nested models and `Bidirectional` layers are searched.
    """
    kind = _targets_kind(plan)
    if needs_targets and kind is None:
        raise ValueError(
            f"{call} needs targets, but the plan has none (its batches are "
            "`(x,)`, and Keras fails with 'None values not supported' or "
            "similar). Pass targets to the scheme, e.g. "
            "`keras_tbptt.naive_split(series, timesteps, targets)`; a plan "
            "without targets is for predict() only."
        )
    layers = stateful_layers(model)
    if plan.stateful:
        check_batch_size(layers, plan.batch_size)
        _check_layer_kwargs(layers, plan)
    if needs_targets and kind is not None:
        _check_weighting(model, plan, call)
    shape = _output_shape(model)
    if not needs_targets or shape is None or kind is None:
        return
    over_time = len(shape) >= 3 and shape[1] == plan.timesteps
    # One timestep: an output without a time axis can still match the targets.
    if kind == "per_step" and len(shape) == 2 and plan.timesteps > 1:
        raise ValueError(
            "The plan has per-step targets (one per timestep), but the model "
            "outputs one vector per sequence.\n"
            f"- Expected: an output of shape ({plan.batch_size}, "
            f"{plan.timesteps}, ...)\n"
            f"- Received: an output of shape {shape}\n"
            "Build the last recurrent layer with return_sequences=True (and a "
            "Dense layer after it, if needed), or give per-sequence targets."
        )
    if kind == "per_sequence" and over_time:
        raise ValueError(
            "The plan has per-sequence targets (one per series), but the model "
            "outputs one vector per timestep.\n"
            f"- Expected: an output of shape ({plan.batch_size}, ...) without "
            "a time axis\n"
            f"- Received: an output of shape {shape}\n"
            "Build the last recurrent layer with return_sequences=False (the "
            "default), or give per-step targets."
        )


def _check_weighting(model, plan, call):
    """Warn where the plan's weights would make training or its figures
    wrong: an optimizer that steps on unweighted batches (`fit`), and a
    loss reduction that averages per batch (then the epoch's figure is a
    mean of batch means, not the mean over the weighted elements)."""
    totals = plan._unscaled_batch_weights
    unweighted = int((totals == 0).sum())
    optimizer = getattr(model, "optimizer", None)
    if (
        call == "fit()"
        and unweighted
        and optimizer is not None
        and not isinstance(optimizer, SkipUnweightedBatches)
    ):
        warnings.warn(
            f"{unweighted} of the plan's {len(plan)} batches carry no sample "
            "weight (they only carry the state forward), but the optimizer "
            f"{type(optimizer).__name__} still steps on them: momentum, if "
            "it has any, moves the weights, and its state (step count, "
            "moments, learning-rate schedule) advances. Compile with "
            "optimizer=keras_tbptt.SkipUnweightedBatches(optimizer) to make "
            "them cost no update.",
            UserWarning,
            stacklevel=3,
        )
    uneven = len(np.unique(totals)) > 1
    reductions = {
        getattr(loss, "reduction", None) for loss in keras.tree.flatten(model.loss)
    } if getattr(model, "loss", None) is not None else set()
    if uneven and "mean_with_sample_weight" in reductions:
        warnings.warn(
            f"{call} uses a loss with reduction=\"mean_with_sample_weight\", "
            "which averages each batch over its own weights: the plan's "
            "batches carry unequal weight (from 0 to "
            f"{int(totals.max())} weighted elements), so the epoch's loss "
            "would be a mean of batch means, not the mean over the weighted "
            "elements. Keep Keras' default reduction (\"sum_over_batch_size\"): "
            "the plan's weights (plan.weight_scale) make it report that mean.",
            UserWarning,
            stacklevel=3,
        )


def _check_batch_of_one(layers, plan, needs_targets):
    """Keras' own stateful RNNs cannot train on a batch of 1 from a dataset
    under TensorFlow: the adapter leaves the batch axis unknown and the
    loop then refuses the state's static shape (a Keras limitation;
    `TBPTTLSTM` states its batch size and is not affected)."""
    from keras_tbptt.layers.tbptt_lstm import TBPTTLSTM

    if not (needs_targets and plan.batch_size == 1 and keras.backend.backend() == "tensorflow"):
        return
    keras_own = [layer.name for layer in layers if not isinstance(layer, TBPTTLSTM)]
    if keras_own:
        raise ValueError(
            f"Keras' own stateful RNN layers {keras_own} cannot train or "
            "evaluate on a plan's dataset with batch_size=1 under TensorFlow "
            "(its loop fails with 'enters the loop with shape (1, ...)'). Use "
            "keras_tbptt.TBPTTLSTM, or more rows per batch (streams=2 or more), "
            "or numpy arrays: fit(plan.x, plan.y, sample_weight=plan.sample_weight, "
            "batch_size=1, shuffle=False, callbacks=plan.callbacks())."
        )


def _check_layer_kwargs(layers, plan):
    """Every stateful layer needs the plan's `layer_kwargs`.

    `state_step` must match exactly (a layer carrying its state from another
    step than the plan's windows advance feeds every batch the wrong state);
    `truncate_gradient` must match when the plan asks for it.
    """
    needed = dict(plan.layer_kwargs)
    needed.setdefault("state_step", None)
    for layer in layers:
        for name, value in needed.items():
            have = getattr(layer, name, None)
            if have == value:
                continue
            if name == "state_step" and value is None:
                why = (
                    "the plan's windows do not overlap, so the state carried "
                    "to the next batch must be the state after the whole window"
                )
            elif name == "state_step":
                why = (
                    f"the plan's windows of {plan.timesteps} steps advance by "
                    f"{value}, so the state carried to the next batch must be "
                    f"the state after {value} steps"
                )
            else:
                why = (
                    f"the plan backpropagates {value} steps of each window of "
                    f"{plan.timesteps}"
                )
            kind = type(layer).__name__
            received = (
                f"{name}={have!r}"
                if hasattr(layer, name)
                else f"{kind} (no `{name}` argument)"
            )
            raise ValueError(
                f"Stateful layer {layer.name!r} does not match the "
                f"{plan.scheme} plan: {why}.\n"
                f"- Expected: {name}={value!r}\n"
                f"- Received: {received}\n"
                "Build it as keras_tbptt.TBPTTLSTM(units, stateful=True, "
                "**plan.layer_kwargs)."
            )


def _callback_list(callbacks):
    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return list(callbacks.callbacks)
    try:
        return list(callbacks)
    except TypeError:
        return [callbacks]


def check_data_in_call(plan, method, local, dataset):
    """Checks run when Keras wraps a plan's dataset (see `keras_call`).

    Raises when the model does not fit the plan (see `check_model_for_plan`)
    or when the call's `ResetStates` follow another schedule than the
    plan's, for this data and for a `validation_data` dataset; warns when a
    stateful plan runs without any `ResetStates`.
    """
    from keras_tbptt.training.dataset import PlanDataset

    if method == "predict":
        role = "predict"
    elif method == "fit" and local.get("x") is dataset:
        role = "train"
    else:  # evaluate(), or validation during fit()
        role = "test"
    call = f"{method}()"
    model = local["self"]
    check_model_for_plan(model, plan, needs_targets=role != "predict", call=call)
    if plan.stateful:
        _check_batch_of_one(stateful_layers(model), plan, needs_targets=role != "predict")
    resets = [
        c for c in _callback_list(local.get("callbacks")) if isinstance(c, ResetStates)
    ]
    _check_reset_flags(model, dataset, resets, call)
    masked = _output_masked(model)
    dataset._for_masked_output(masked)
    if plan.stateful and not resets and not dataset.reset_flags:
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
        _check_reset_flags(model, validation, resets, call)
        for callback in resets:
            callback.check_plan(validation.plan, "test", method)


def takes_reset_flags(model):
    """Whether `model` takes `[x, reset_flags]` (see `with_reset_flags`)."""
    from keras_tbptt.layers.reset_flags import WithResetFlags

    if any(isinstance(layer, WithResetFlags) for layer in model._flatten_layers()):
        return True
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return False
    return bool(inputs) and len(inputs) == 2 and len(inputs[1].shape) == 1


def _check_reset_flags(model, dataset, resets, call):
    """Data with reset flags needs a model that reads them, and the reverse."""
    if dataset.reset_flags:
        if not takes_reset_flags(model):
            raise ValueError(
                f"{call} got a dataset with reset flags (batches of "
                "((x, reset_flags), y, sample_weight)), but the model takes "
                "only x. Wrap it: model = keras_tbptt.with_reset_flags(model), "
                "or use plan.dataset(reset_flags=False) with "
                "callbacks=plan.callbacks()."
            )
        if resets:
            raise ValueError(
                f"{call} got both a dataset with reset flags and ResetStates "
                "callbacks. The flags reset each row inside the graph; the "
                "callbacks would reset again between batches (and forbid "
                "steps_per_execution > 1). Drop plan.callbacks() from the call."
            )
    elif dataset.plan.stateful and takes_reset_flags(model):
        raise ValueError(
            f"{call} got a dataset without reset flags, but the model takes "
            "[x, reset_flags] (keras_tbptt.with_reset_flags). Use "
            "plan.dataset(reset_flags=True), and no plan.callbacks()."
        )


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
    `keras_tbptt.TBPTTLSTM`). Built from a plan (`plan=`, as
    `SplitPlan.callbacks()` does) it also refuses: `fit` or `evaluate` on a
    plan without targets; a model whose output has a time axis when the
    targets are per sequence, or the reverse; a stateful layer without the
    plan's `layer_kwargs` (`state_step`, `truncate_gradient`). The plan's
    dataset refuses data of another schedule (another plan's dataset, or
    validation data without `callbacks(validation=val)`); validation data
    as arrays is counted, and a wrong count raises at the end of
    validation.

    Usually built by `SplitPlan.callbacks()`.

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
        resets=None,
        *,
        every=None,
        test_resets=None,
        predict_resets=None,
        batch_size=None,
        plan=None,
        validation=None,
    ):
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

    # -- schedules and plans per role ------------------------------------
    def _schedule_for(self, role):
        """The schedule of `role` ("train", "test", "predict"); None for `every`."""
        special = {"test": self.test_resets, "predict": self.predict_resets}.get(role)
        return special if special is not None else self.resets

    def _plan_for(self, role):
        if role == "test" and self.validation is not None:
            return self.validation
        return self.plan

    def check_plan(self, plan, role, method="predict"):
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
    def on_train_begin(self, logs=None):
        self.reset_count = 0
        self._in_fit = True
        self._begin("train")

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()

    def on_train_batch_begin(self, batch, logs=None):
        if batch and self._due(self.resets, batch):
            self._reset()

    # -- evaluation (also validation during fit) -------------------------
    def on_test_begin(self, logs=None):
        # During fit, `params` describe the training data, not validation's:
        # validation batches are counted instead (see on_test_end).
        self._test_batches = 0
        self._begin("test", check_steps=not self._in_fit)

    def on_test_batch_begin(self, batch, logs=None):
        if batch and self._due(self._schedule_for("test"), batch):
            self._reset()

    def on_test_batch_end(self, batch, logs=None):
        self._test_batches = batch + 1

    def on_test_end(self, logs=None):
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
    def on_predict_begin(self, logs=None):
        self._begin("predict")

    def on_predict_batch_begin(self, batch, logs=None):
        if batch and self._due(self._schedule_for("predict"), batch):
            self._reset()
