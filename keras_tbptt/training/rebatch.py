"""`rebatch`: the same stateful model with another static batch size."""

from __future__ import annotations

import keras

from keras_tbptt.core.validation import check_int
from keras_tbptt.layers.reset_flags import WithResetFlags, with_reset_flags
from keras_tbptt.layers.stateful import stateful_layers

_SAME = object()  # `timesteps` default: keep the model's own


def rebatch(
    model: keras.Model, batch_size: int, *, timesteps: int | None = _SAME
) -> keras.Model:
    """Return a copy of `model` with static batch size `batch_size`.

    Stateful layers fix the batch size at build time, so a model trained on
    batches of 100 cannot predict one series at a time. `rebatch` clones the
    model with new inputs of `batch_size` rows, copies every weight except
    the recurrent states (whose shape depends on the batch size) and leaves
    the states reset. The copy is not compiled; compile it to train or
    evaluate.

    Args:
        model: a built Sequential or functional `keras.Model`.
        batch_size: the new static batch size.
        timesteps: the new number of timesteps of every input: an int, or
            `None` for any length (for example `1` to run one step per call).
            Default: the model's own. A layer with `truncate_gradient`
            or `state_step` needs a static number of timesteps (and
            `state_step <= timesteps`).

    Returns:
        A new `keras.Model`; for a `with_reset_flags` model, the model inside
        rebatched and wrapped again.

    Example:

    >>> import numpy as np, keras, keras_tbptt
    >>> model = keras.Sequential([
    ...     keras.Input(batch_shape=(100, 20, 1)),
    ...     keras_tbptt.TBPTTLSTM(8, stateful=True),
    ...     keras.layers.Dense(1),
    ... ])
    >>> single = keras_tbptt.rebatch(model, 1)
    >>> single.input_shape, model.input_shape
    ((1, 20, 1), (100, 20, 1))
    >>> keras_tbptt.rebatch(model, 1, timesteps=1).input_shape
    (1, 1, 1)
    """
    batch_size = check_int(batch_size, "batch_size")
    if timesteps is not _SAME:
        timesteps = check_int(timesteps, "timesteps", allow_none=True)
        for layer in _layers(model):
            step = getattr(layer, "state_step", None)
            if step is not None and (timesteps is None or step > timesteps):
                raise ValueError(
                    f"Layer {layer.name!r} carries its state after "
                    f"state_step={step} steps, so it needs at least that many "
                    f"static timesteps. Received: timesteps={timesteps}. "
                    "To run it one step at a time, use keras_tbptt.forecast "
                    "(which drops state_step) or rebuild the layer without it."
                )
    wrapped = _reset_flags_wrapper(model)
    if wrapped is not None:  # rebatch the model inside, then wrap it again
        return with_reset_flags(rebatched_clone(wrapped, batch_size, timesteps))
    return rebatched_clone(model, batch_size, timesteps)


def _reset_flags_wrapper(model):
    """The model inside a `with_reset_flags` model, else `None`."""
    layers = getattr(model, "layers", [])
    wrappers = [layer for layer in layers if isinstance(layer, WithResetFlags)]
    return wrappers[0].model if len(wrappers) == 1 else None


def _layers(model):
    flatten = getattr(model, "_flatten_layers", None)
    return list(flatten(include_self=False, recursive=True)) if flatten else []


def rebatched_clone(model, batch_size, timesteps=_SAME, forward_only=False):
    """`rebatch`; `forward_only` also drops `truncate_gradient` and
    `state_step` (they do not change the outputs; `state_step` would carry
    the state from inside a call), so the copy accepts any length."""
    # Forecasting runs the model inside a `with_reset_flags` model: it resets
    # by itself, one series at a time.
    model = _reset_flags_wrapper(model) or model
    if not isinstance(model, keras.Model) or not model.built:
        raise TypeError(
            "`model` must be a built keras Sequential or functional Model. "
            f"Received: {type(model).__name__}"
        )
    try:
        model_inputs = list(model.inputs)
    except (AttributeError, ValueError):
        raise TypeError(
            "rebatch() needs a Sequential or functional model with defined "
            "inputs (start it with keras.Input(batch_shape=...)); subclassed "
            "models must be rebuilt by hand."
        ) from None
    shapes = [tuple(tensor.shape) for tensor in model_inputs]
    if timesteps is not _SAME and any(len(shape) < 3 for shape in shapes):
        raise ValueError(
            "`timesteps` needs inputs of shape (batch, timesteps, features). "
            f"Received: input shapes {shapes}"
        )
    inputs = [
        keras.Input(
            batch_shape=(batch_size, shape[1] if timesteps is _SAME else timesteps, *shape[2:]),
            dtype=tensor.dtype,
        )
        for shape, tensor in zip(shapes, model_inputs, strict=True)
    ]
    clone = keras.models.clone_model(
        model,
        input_tensors=inputs[0] if len(inputs) == 1 else inputs,
        clone_function=_forward_only_layer if forward_only else None,
    )
    source, target = _weights_without_states(model), _weights_without_states(clone)
    for old, new in zip(source, target, strict=True):
        # A copy: under JAX, sharing the buffer lets the copy's jitted steps
        # (which donate their state) delete the original's weights.
        new.assign(keras.ops.convert_to_numpy(old))
    for layer in stateful_layers(clone):
        layer.reset_state()
    return clone


def _weights_without_states(model):
    states = {
        id(v)
        for layer in stateful_layers(model)
        for v in keras.tree.flatten(layer.states or [])
    }
    return [v for v in model.weights if id(v) not in states]


def _forward_only_layer(layer):
    config = _without_truncation(layer.get_config())
    return layer.__class__.from_config(config)


def _without_truncation(config):
    """`config` with every (nested) `truncate_gradient`/`state_step` unset,
    so wrappers such as `Bidirectional` are covered too."""
    if isinstance(config, dict):
        config = {key: _without_truncation(value) for key, value in config.items()}
        if "truncate_gradient" in config and "state_step" in config:
            config.update(truncate_gradient=None, state_step=None)
        return config
    if isinstance(config, list):
        return [_without_truncation(value) for value in config]
    return config
