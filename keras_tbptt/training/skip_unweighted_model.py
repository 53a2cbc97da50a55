"""`skip_unweighted`: no backward pass on a batch that carries no weight."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops, tree
from keras.src.losses.loss import unscale_loss_for_distribution


@keras.saving.register_keras_serializable(package="keras_tbptt")
class SkipUnweightedModel(keras.Model):
    """A functional model whose `fit` runs no backward pass on unweighted batches.

    Built by `keras_tbptt.skip_unweighted(model)` (see there), available as
    `keras_tbptt.SkipUnweightedModel`. Its `train_step` decides per batch,
    inside the compiled step (`ops.cond`; a Python branch under torch),
    between Keras' own train step (batches with a nonzero sample weight)
    and a forward-only step: the forward pass with `training=True` carries
    the states and the RNG as the full step would, the loss tracker and the
    compiled metrics record the batch as the full step records it, and the
    weights and the optimizer's variables stay untouched. It is a plain
    functional model otherwise, so `keras.models.load_model` restores it.

    Args:
        *args: `keras.Model`'s functional arguments, `inputs` and `outputs`.
        **kwargs: the same by name, and `name`.

    Example:

    >>> import keras, keras_tbptt
    >>> model = keras.Sequential([
    ...     keras.Input(batch_shape=(2, 5, 1)),
    ...     keras_tbptt.TBPTTLSTM(3, stateful=True),
    ... ])
    >>> fast = keras_tbptt.skip_unweighted(model)
    >>> isinstance(fast, keras_tbptt.SkipUnweightedModel)
    True
    >>> fast.layers[-1] is model.layers[-1]  # the same layers and weights
    True
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # (*args, **kwargs): Keras revives such a subclass as functional.
        super().__init__(*args, **kwargs)

    def make_train_function(self, force: bool = False) -> Any:
        # Fit and train_on_batch come here eagerly before stepping: the
        # model-losses probe runs outside any trace.
        self._adds_losses = _adds_losses(self)
        return super().make_train_function(force)

    def train_step(self, *args: Any) -> Any:
        # TensorFlow and torch call train_step(data), JAX train_step(state, data).
        data = args[-1]
        _, _, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        weights = [w for w in tree.flatten(sample_weight) if w is not None]
        full_step = super().train_step
        if getattr(self, "_adds_losses", None) is None:
            self._adds_losses = _adds_losses(self)
        # Static: plain arrays, or losses of the model's own (regularizers,
        # add_loss) whose gradient an unweighted batch still has.
        if not weights or self._adds_losses:
            return full_step(*args)
        weighted = _carries_weight(weights)
        if keras.backend.backend() == "torch":
            return full_step(*args) if bool(weighted) else self._forward_only_step(*args)
        return ops.cond(
            weighted, lambda: full_step(*args), lambda: self._forward_only_step(*args)
        )

    def _forward_only_step(self, *args: Any) -> Any:
        if keras.backend.backend() == "jax":
            return self._stateless_forward_only_step(*args)
        (data,) = args
        if keras.backend.backend() == "torch":
            import torch

            with torch.no_grad():
                return self._forward_only_on(data)
        return self._forward_only_on(data)

    def _forward_only_on(self, data: Any) -> Any:
        """Keras' TensorFlow/torch train step up to the loss and metrics."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, training=True)
        loss = self.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )
        self._loss_tracker.update_state(
            unscale_loss_for_distribution(loss), sample_weight=_batch_size(x)
        )
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _stateless_forward_only_step(self, state: Any, data: Any) -> Any:
        """Keras' JAX train step without `value_and_grad` and `stateless_apply`."""
        trainable, non_trainable, optimizer_variables, metrics_variables = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        _, (unscaled_loss, y_pred, non_trainable, metrics_variables) = (
            self.compute_loss_and_updates(
                trainable,
                non_trainable,
                metrics_variables,
                x,
                y,
                sample_weight,
                training=True,
                optimizer_variables=optimizer_variables,
            )
        )
        logs, metrics_variables = self._update_metrics_variables(
            metrics_variables, unscaled_loss, x, y, y_pred, sample_weight
        )
        return logs, (trainable, non_trainable, optimizer_variables, metrics_variables)


def skip_unweighted(model: keras.Model) -> SkipUnweightedModel:
    """Wrap `model` so that `fit` runs no backward pass on unweighted batches.

    A plan with per-sequence targets (one label per long recording, cut into
    chunks by `naive_split`) weights only each series' last chunk: the
    leading chunks only carry the state. On a batch whose sample weights are
    all 0 the returned model's `fit` runs the forward pass alone (with
    `training=True`, so the states, dropout and RNG advance as in a full
    step), records the batch in the loss and metrics as Keras' train step
    records it, and leaves the weights and the optimizer's variables
    (moments, `iterations`) bit-identical; other batches take Keras' own
    train step. The choice is made per batch inside the compiled step,
    under TensorFlow, JAX and torch, with the callbacks or reset flags and
    any `steps_per_execution`. It trains as the same model compiled with
    `keras_tbptt.SkipUnweightedBatches(optimizer)` does, without computing
    the unweighted batches' zero gradients.

    A batch given with no sample weight (plain arrays) always takes the
    full step. A model that adds losses of its own (`kernel_regularizer=`,
    `activity_regularizer=`, `add_loss`) has a gradient on an unweighted
    batch too: its `fit` takes the full step on every batch (found once per
    `fit` by a stateless forward pass on zeros), as the model would
    unwrapped.

    The returned model shares `model`'s layers and weights (it is built
    from `model.inputs` and `model.outputs`) and is not compiled: compile
    it. With reset flags wrap in either order:
    `skip_unweighted(with_reset_flags(model))` and
    `with_reset_flags(skip_unweighted(model))` both give the forward-only
    step.

    Args:
        model: a built Keras model with inputs (Sequential or functional,
            e.g. one starting with `keras.Input(batch_shape=...)`, or the
            model `with_reset_flags` returns). A `SkipUnweightedModel` is
            returned as it is.

    Returns:
        A `keras_tbptt.SkipUnweightedModel` with `model`'s inputs, outputs,
        layers and weights.

    Example:

    >>> import numpy as np, keras, keras_tbptt
    >>> x = np.random.default_rng(0).normal(size=(4, 60, 1)).astype("float32")
    >>> plan = keras_tbptt.naive_split(x, 20, np.array([0.0, 1.0, 1.0, 0.0]))
    >>> model = keras_tbptt.skip_unweighted(keras.Sequential([
    ...     keras.Input(batch_shape=(4, 20, 1)),
    ...     keras_tbptt.TBPTTLSTM(3, stateful=True),
    ...     keras.layers.Dense(1, activation="sigmoid"),
    ... ]))
    >>> model.compile(optimizer=keras.optimizers.Adam(), loss="binary_crossentropy")
    >>> history = model.fit(plan.dataset(), callbacks=plan.callbacks(),
    ...                     epochs=2, shuffle=False, verbose=0)
    >>> int(model.optimizer.iterations)  # one update per epoch, not three
    2
    """
    if isinstance(model, SkipUnweightedModel):
        return model
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model (Sequential or functional). "
            f"Received: model of type {type(model).__name__}"
        )
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(
            "`model` must be a built model with inputs and outputs, e.g. a "
            "Sequential starting with keras.Input(batch_shape=(batch, "
            "timesteps, features)) or a functional model (a subclassed "
            "model has none: override its train_step instead). Received: "
            f"model {model.name!r} with inputs {inputs!r}"
        )
    return SkipUnweightedModel(
        _structure(model, "input", inputs),
        _structure(model, "output", outputs),
        name=f"{model.name}_skip_unweighted",
    )


def _carries_weight(weights: list[Any]) -> Any:
    """Scalar bool tensor: whether any sample weight is nonzero, the same
    answer on every replica of a TensorFlow strategy (each must take the
    same branch: the full step's gradients are all-reduced)."""
    weighted = ops.any(ops.stack([ops.any(ops.not_equal(w, 0)) for w in weights]))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            count = context.all_reduce("sum", tf.cast(weighted, "float32"))
            weighted = tf.greater(count, 0)
    return weighted


def _adds_losses(model: keras.Model) -> bool:
    """Whether `model` adds losses of its own: weight regularizers are in
    `model.losses`; activity regularizers and `add_loss` appear only in a
    call, so one stateless forward pass on zeros (no state is assigned)."""
    if model.losses:
        return True
    zeros = [
        np.zeros([1 if d is None else d for d in t.shape], dtype=t.dtype)
        for t in model.inputs
    ]
    _, _, losses = model.stateless_call(
        model.trainable_variables,
        model.non_trainable_variables,
        zeros[0] if len(zeros) == 1 else zeros,
        return_losses=True,
        training=True,
    )
    return bool(losses)


def _structure(model: keras.Model, name: str, flat: list[Any]) -> Any:
    """A functional model's `input`/`output`: the structure it was built
    with (a list, a dict of named inputs), so the data is given as to
    `model`; a Sequential has one of each (and no such attribute)."""
    try:
        return getattr(model, name)
    except AttributeError:
        return flat[0] if len(flat) == 1 else flat


def _batch_size(x: Any) -> Any:
    return ops.shape(next(i for i in tree.flatten(x) if i is not None))[0]
