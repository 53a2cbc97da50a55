"""The checks that a model and its data belong to the same plan.

Run before any batch, by `ResetStates` (when fit, evaluate or predict
begins) and by `PlanDataset` (when a Keras call takes it: under JAX, `fit`
and `evaluate` compute the loss on the first batch before any callback
runs). Each raises a `ValueError` that names the fix.
"""

import warnings

import keras
import numpy as np

from keras_tbptt.core.batches import batches_of
from keras_tbptt.layers.reset_flags import WithResetFlags
from keras_tbptt.layers.stateful import keras_own_layer_names, stateful_layers
from keras_tbptt.training.skip_unweighted import SkipUnweightedBatches
from keras_tbptt.training.skip_unweighted_model import SkipUnweightedModel


def _targets_kind(plan):
    """`None`, `"per_step"` or `"per_sequence"`."""
    targets = batches_of(plan).targets
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


def output_masked(model):
    """Whether the model's single output carries a Keras mask (then Keras'
    losses average each batch over its unmasked steps).

    Reads the mask Keras attaches to a functional model's symbolic output
    (`_keras_mask`, private); a `with_reset_flags` model is looked into.
    """
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
    totals = batches_of(plan).unscaled_batch_weights
    zero = totals == 0
    if plan.offsets == "random":  # a moved batch takes steps of the one before
        zero &= plan.resets | np.roll(zero, 1)
    unweighted = int(zero.sum())
    optimizer = getattr(model, "optimizer", None)
    if (
        call == "fit()"
        and unweighted
        and optimizer is not None
        and not isinstance(optimizer, SkipUnweightedBatches)
        and not isinstance(model, SkipUnweightedModel)
    ):
        warnings.warn(
            f"{unweighted} of the plan's {len(plan)} batches carry no sample "
            "weight (they only carry the state forward), but the optimizer "
            f"{type(optimizer).__name__} still steps on them: momentum, if "
            "it has any, moves the weights, and its state (step count, "
            "moments, learning-rate schedule) advances. Train "
            "keras_tbptt.skip_unweighted(model) to make them cost no update "
            "and no backward pass (or compile with "
            "optimizer=keras_tbptt.SkipUnweightedBatches(optimizer): no "
            "update).",
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


def check_trains_under_torch(layers):
    """Keras' own stateful RNNs cannot train under torch: their state
    variables are updated in place inside the graph autograd records, so
    the backward pass fails (keras-team/keras#20875). keras_tbptt's layers
    copy the state they read and are not affected."""
    if keras.backend.backend() != "torch":
        return
    keras_own = keras_own_layer_names(layers)
    if keras_own:
        raise ValueError(
            f"Keras' own stateful RNN layers {keras_own} cannot train under the "
            "torch backend: their states are updated in place inside the "
            "autograd graph, and the backward pass fails with 'one of the "
            "variables needed for gradient computation has been modified by an "
            "inplace operation' (keras-team/keras#20875). Use "
            "keras_tbptt.TBPTTLSTM(..., stateful=True) instead of "
            "keras.layers.LSTM (TBPTTGRU, TBPTTSimpleRNN or TBPTTRNN for the "
            "others); evaluate() and predict() work with either."
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
                "**plan.layer_kwargs) (or TBPTTGRU, TBPTTSimpleRNN, "
                "TBPTTRNN(cell, ...))."
            )


def takes_reset_flags(model):
    """Whether `model` takes `[x, reset_flags]` (see `with_reset_flags`)."""
    if any(isinstance(layer, WithResetFlags) for layer in model._flatten_layers()):
        return True
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return False
    return bool(inputs) and len(inputs) == 2 and len(inputs[1].shape) == 1


def check_reset_flags(model, dataset, resets, call):
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


def check_states_tracked(model, layers):
    """Under JAX, the states of every stateful layer must be tracked
    variables of `model`, or Keras' stateless train step drops them."""
    if keras.backend.backend() != "jax":
        return
    tracked = {id(v) for v in model.non_trainable_variables}
    lost = [
        layer.name
        for layer in layers
        if layer.states is not None
        and not all(id(v) in tracked for v in keras.tree.flatten(layer.states))
    ]
    if lost:
        raise ValueError(
            f"Under the JAX backend the states of {lost} are not tracked "
            "variables, so fit(), evaluate() and predict() silently drop "
            "them after every batch (a Keras limitation of its own RNN "
            "layers). Use keras_tbptt.TBPTTLSTM(..., stateful=True) "
            "instead of keras.layers.LSTM (TBPTTGRU for GRU, TBPTTSimpleRNN "
            "for SimpleRNN, TBPTTRNN(cell) for RNN), or run on the "
            "TensorFlow backend."
        )
