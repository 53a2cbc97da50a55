"""`rebatch`: the same stateful model with another static batch size."""

import keras

from keras_tbptt.core.inputs import check_int
from keras_tbptt.training.callbacks import stateful_layers


def rebatch(model, batch_size):
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

    Returns:
        A new `keras.Model`.

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
    """
    batch_size = check_int(batch_size, "batch_size")
    if not isinstance(model, keras.Model) or not model.built:
        raise TypeError(
            "`model` must be a built keras Sequential or functional Model. "
            f"Received: {type(model).__name__}"
        )
    try:
        inputs = [
            keras.Input(batch_shape=(batch_size, *tensor.shape[1:]), dtype=tensor.dtype)
            for tensor in model.inputs
        ]
    except (AttributeError, ValueError):
        raise TypeError(
            "rebatch() needs a Sequential or functional model with defined "
            "inputs (start it with keras.Input(batch_shape=...)); subclassed "
            "models must be rebuilt by hand."
        ) from None
    clone = keras.models.clone_model(
        model, input_tensors=inputs[0] if len(inputs) == 1 else inputs
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
    states = {id(v) for layer in stateful_layers(model) for v in layer.states or []}
    return [v for v in model.weights if id(v) not in states]
