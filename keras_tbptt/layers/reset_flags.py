"""Per-row reset flags inside the graph: `with_reset_flags`."""

from __future__ import annotations

from typing import Any

import keras

from keras_tbptt.layers.flags_context import reset_flags_in_effect
from keras_tbptt.layers.stateful import keras_own_layer_names, stateful_layers


@keras.saving.register_keras_serializable(package="keras_tbptt")
class WithResetFlags(keras.layers.Layer):
    """Run `model` with per-row reset flags (built by `with_reset_flags`).

    The layer inside the model that `keras_tbptt.with_reset_flags(model)`
    returns, available as `keras_tbptt.layers.WithResetFlags`: it makes the
    flags visible to `model`'s stateful `TBPTTLSTM` layers while it runs
    `model`. It is registered with Keras, so `keras.models.load_model`
    restores it. Build it with `with_reset_flags`, which also checks the
    model.

    Args:
        model: the model to run; its stateful keras_tbptt layers
            (`TBPTTLSTM`, `TBPTTGRU`, `TBPTTSimpleRNN`, `TBPTTRNN`) read the
            flags.

    Call arguments:
        inputs: the model's input.
        reset_flags: `(batch_size,)`: 1 where that row's state starts from
            zeros before this batch.

    Example:

    >>> import numpy as np, keras, keras_tbptt
    >>> model = keras.Sequential([
    ...     keras.Input(batch_shape=(2, 5, 1)),
    ...     keras_tbptt.TBPTTLSTM(3, stateful=True),
    ... ])
    >>> wrapped = keras_tbptt.with_reset_flags(model)
    >>> layer = wrapped.layers[-1]
    >>> isinstance(layer, keras_tbptt.layers.WithResetFlags), layer.model is model
    (True, True)
    >>> y = wrapped([np.ones((2, 5, 1), "float32"), np.array([1.0, 0.0])])
    >>> tuple(y.shape)
    (2, 3)
    """

    def __init__(self, model: keras.Model, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model

    def build(
        self,
        inputs_shape: tuple[int | None, ...],
        reset_flags_shape: tuple[int | None, ...] | None = None,
    ) -> None:
        self.built = True

    def call(self, inputs: Any, reset_flags: Any, training: bool | None = None) -> Any:
        with reset_flags_in_effect(reset_flags):
            return self.model(inputs, training=training)

    def compute_output_spec(
        self, inputs: Any, reset_flags: Any, training: bool | None = None
    ) -> Any:
        return self.model.compute_output_spec(inputs)

    def get_config(self) -> dict[str, Any]:
        config = {"model": keras.saving.serialize_keras_object(self.model)}
        base_config = super().get_config()
        return {**base_config, **config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> WithResetFlags:
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


def with_reset_flags(model: keras.Model) -> keras.Model:
    """Wrap `model` so per-row reset flags come with the data.

    The returned model takes `[x, reset_flags]`: `x` as `model` does and
    `reset_flags` of shape `(batch_size,)`. Before each batch, every
    stateful keras_tbptt layer inside (`TBPTTLSTM`, `TBPTTGRU`,
    `TBPTTSimpleRNN`, `TBPTTRNN`) zeroes the carried state of the rows
    flagged 1, inside the graph; 0 carries the state. A flag of `1 + p`
    (moving cuts, `naive_split(offsets="random")`) also holds the row at
    its reset state over the batch's first `p` steps (front padding), so
    its real steps compute what the unpadded sequence computes. Feed it a plan's
    `dataset(reset_flags=True)` (or `[plan.x, plan.reset_flags]` as arrays)
    and no `ResetStates` callback: training, validation and prediction each
    reset by their own data's flags, `steps_per_execution` may exceed 1,
    and packed plans (`pack=True`) reset each lane where its series
    changes.

    The wrapper shares `model`'s layers and weights: train either, the other
    sees the change. Keras' own recurrent layers cannot read the flags, so a
    stateful one is refused (use `TBPTTLSTM`, `TBPTTGRU`, `TBPTTSimpleRNN`
    or `TBPTTRNN`).

    Args:
        model: a built Keras model with one input and a fixed batch size
            (`keras.Input(batch_shape=...)`), Sequential or functional.

    Returns:
        A functional `keras.Model` with inputs `[x, reset_flags]` and
        `model`'s outputs, computed by its last layer, a
        `keras_tbptt.layers.WithResetFlags` around `model`; a
        `keras_tbptt.SkipUnweightedModel` (the forward-only step kept)
        where `model` is one (`keras_tbptt.skip_unweighted`).

    Example:

    >>> import numpy as np, keras, keras_tbptt
    >>> plan = keras_tbptt.naive_split(np.zeros((4, 60, 1)), 20, np.zeros((4, 60, 1)))
    >>> model = keras_tbptt.with_reset_flags(keras.Sequential([
    ...     keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 1)),
    ...     keras_tbptt.TBPTTLSTM(3, stateful=True, return_sequences=True),
    ... ]))
    >>> [tuple(t.shape) for t in model.inputs]
    [(4, 20, 1), (4,)]
    >>> model.compile(loss="mse", steps_per_execution=3)
    >>> history = model.fit(plan.dataset(reset_flags=True), shuffle=False, verbose=0)
    >>> plan.reset_flags.reshape(len(plan), plan.batch_size)[:, 0].tolist()
    [1.0, 0.0, 0.0]
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model (Sequential or functional). "
            f"Received: model of type {type(model).__name__}"
        )
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs or len(inputs) != 1:
        raise ValueError(
            "`model` must be a built model with exactly one input, e.g. a "
            "Sequential starting with keras.Input(batch_shape=(batch, "
            "timesteps, features)). Received: a model with inputs "
            f"{inputs!r}"
        )
    layers = stateful_layers(model)
    keras_own = keras_own_layer_names(layers)
    if keras_own:
        raise ValueError(
            f"Stateful layers {keras_own} cannot read reset flags: only "
            "keras_tbptt's layers (TBPTTLSTM, TBPTTGRU, TBPTTSimpleRNN, "
            "TBPTTRNN) reset rows inside the graph. Build them as e.g. "
            "TBPTTLSTM(units, stateful=True, ...) or TBPTTGRU(units, "
            "stateful=True, ...), or keep the callback path: "
            "fit(plan.dataset(), callbacks=plan.callbacks())."
        )
    if not layers:
        raise ValueError(
            "`model` has no stateful TBPTTLSTM layer (nor TBPTTGRU, "
            "TBPTTSimpleRNN, TBPTTRNN), so reset flags would do nothing. "
            "Build the recurrent layers with stateful=True."
        )
    batch_size = inputs[0].shape[0]
    if batch_size is None:
        raise ValueError(
            "`model` must have a fixed batch size: give it "
            "keras.Input(batch_shape=(batch, timesteps, features)). "
            f"Received: input shape {tuple(inputs[0].shape)}"
        )
    x = keras.Input(batch_shape=inputs[0].shape, dtype=inputs[0].dtype, name="x")
    flags = keras.Input(batch_shape=(batch_size,), name="reset_flags")
    outputs = WithResetFlags(model, name=f"{model.name}_with_reset_flags")(x, flags)
    model_class = keras.Model
    if keras.saving.get_registered_name(type(model)) == _SKIP_UNWEIGHTED:
        # Keep skip_unweighted's forward-only train step (by its registered
        # name: layers/ imports nothing from training/).
        model_class = type(model)
    return model_class([x, flags], outputs, name=f"{model.name}_with_reset_flags")


_SKIP_UNWEIGHTED = "keras_tbptt>SkipUnweightedModel"
