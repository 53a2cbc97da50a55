"""`SkipUnweightedBatches`: no optimizer step on a batch that carries no weight."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_tbptt")
class SkipUnweightedBatches(keras.optimizers.Optimizer):
    """Wrap an optimizer so that batches with no gradient leave it untouched.

    A plan with per-sequence targets puts weight only on each series' last
    window: a sequence cut into 12 chunks trains 11 batches whose sample
    weights are all 0 (they carry the state forward), and padding or
    filler can leave whole batches unweighted in any plan. Their gradients
    are exactly 0, yet an optimizer still steps on them: Adam's momentum
    moves the weights and its moments and step count change, so training
    takes more epochs and no longer matches "one update per group of
    sequences". Wrapped, a batch whose gradients are all exactly zero
    makes no update at all: the weights, the inner optimizer's variables
    (moments, `iterations`, learning-rate schedule position) stay
    bit-identical, inside the compiled step (any `steps_per_execution`,
    TensorFlow, JAX and torch).

    The test is on the gradients, the only thing an optimizer sees: a batch
    whose sample weights are all 0 gives exactly zero gradients, unless
    the model adds losses of its own (`kernel_regularizer=`,
    `add_loss`): such batches then still step, as they would unwrapped.

    The forward and backward passes still run on the unweighted batches
    (the forward pass carries the state; the backward pass computes the
    zeros). The faster way, the documented default for classification, is
    `keras_tbptt.skip_unweighted(model)`: its train step runs the forward
    pass alone on such batches, with the same result. Or train one sample
    per sequence with `TBPTTLSTM(truncate_gradient=k2)` (see the
    classification guide).

    Args:
        optimizer: the `keras.optimizers.Optimizer` to wrap (its learning
            rate, schedule and settings are used as they are).
        name: optional name; defaults to the class name in snake case.

    Example:

    >>> import numpy as np, keras, keras_tbptt
    >>> x = np.random.default_rng(0).normal(size=(4, 60, 1)).astype("float32")
    >>> plan = keras_tbptt.naive_split(x, 20, np.array([0.0, 1.0, 1.0, 0.0]))
    >>> plan.sample_weight.reshape(len(plan), -1).sum(axis=1).tolist()
    [0.0, 0.0, 12.0]
    >>> model = keras.Sequential([
    ...     keras.Input(batch_shape=(4, 20, 1)),
    ...     keras_tbptt.TBPTTLSTM(3, stateful=True),
    ...     keras.layers.Dense(1, activation="sigmoid"),
    ... ])
    >>> optimizer = keras_tbptt.SkipUnweightedBatches(keras.optimizers.Adam())
    >>> model.compile(optimizer=optimizer, loss="binary_crossentropy")
    >>> history = model.fit(plan.dataset(), callbacks=plan.callbacks(),
    ...                     epochs=2, shuffle=False, verbose=0)
    >>> int(optimizer.iterations)  # one update per epoch, not three
    2
    """

    def __init__(self, optimizer: keras.optimizers.Optimizer, name: str | None = None) -> None:
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(
                "`optimizer` must be a keras.optimizers.Optimizer instance, "
                "e.g. keras.optimizers.Adam(1e-3). Received: optimizer of "
                f"type {type(optimizer).__name__}"
            )
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = optimizer

    def build(self, variables: list[keras.Variable]) -> None:
        if not self.inner_optimizer.built:
            self.inner_optimizer.build(variables)
        super().build(variables)

    @property
    def variables(self) -> list[keras.Variable]:
        # The inner optimizer's variables travel with ours (JAX's stateless
        # steps, saving, sharding).
        return self._variables + self.inner_optimizer.variables

    @property
    def iterations(self) -> keras.Variable:
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self) -> Any:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: Any) -> None:
        self.inner_optimizer.learning_rate = learning_rate

    def scale_loss(self, loss: Any) -> Any:
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list: list[keras.Variable]) -> None:
        self.inner_optimizer.finalize_variable_values(var_list)

    def apply(
        self, grads: Sequence[Any], trainable_variables: list[keras.Variable] | None = None
    ) -> None:
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
            self.built = True
        if keras.backend.backend() == "tensorflow" and _needs_merge_call():
            self._apply_across_replicas(grads, trainable_variables)
            return
        ops.cond(
            carries_gradient(grads),
            lambda: self.inner_optimizer.apply(grads, trainable_variables),
            lambda: None,
        )

    def _apply_across_replicas(self, grads, trainable_variables):
        """`apply` under a TensorFlow strategy whose updates need a merge
        call (as `keras.optimizers.LossScaleOptimizer` does): the condition
        is taken in the cross-replica context."""
        import tensorflow as tf

        def across(distribution, grads, trainable_variables):
            # Gradients are all-reduced: every replica has the same answer.
            carries = distribution.experimental_local_results(
                distribution.extended.call_for_each_replica(carries_gradient, args=(grads,))
            )[0]

            def step():
                distribution.extended.call_for_each_replica(
                    self.inner_optimizer.apply, args=(grads, trainable_variables)
                )

            ops.cond(carries, step, lambda: None)

        tf.distribute.get_replica_context().merge_call(
            across, args=(grads, trainable_variables)
        )

    def stateless_apply(
        self,
        optimizer_variables: Sequence[Any],
        grads: Sequence[Any],
        trainable_variables: Sequence[Any],
    ) -> tuple[list[Any], list[Any]]:
        if not self.built:
            raise ValueError(
                f"To call `stateless_apply`, {self.__class__.__name__} must be "
                "built: call optimizer.build(trainable_variables) first."
            )
        own = len(self._variables)

        def step():
            new_trainable, new_inner = self.inner_optimizer.stateless_apply(
                optimizer_variables[own:], grads, trainable_variables
            )
            return list(new_trainable), list(optimizer_variables[:own]) + list(new_inner)

        def skip():
            return list(trainable_variables), list(optimizer_variables)

        return ops.cond(carries_gradient(grads), step, skip)

    def get_config(self) -> dict[str, Any]:
        # Only the name is ours: the rest is the inner optimizer's.
        return {
            "name": self.name,
            "optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None
    ) -> SkipUnweightedBatches:
        config = dict(config)
        config["optimizer"] = keras.saving.deserialize_keras_object(
            config["optimizer"], custom_objects=custom_objects
        )
        return cls(**config)


def carries_gradient(grads: Sequence[Any]) -> Any:
    """Scalar bool tensor: whether any gradient has a nonzero entry."""
    nonzero = [ops.any(ops.not_equal(_entries(g), 0)) for g in grads if g is not None]
    if not nonzero:
        return ops.convert_to_tensor(False)
    return ops.any(ops.stack(nonzero))


def _entries(gradient):
    """A gradient's stored entries: TensorFlow's sparse gradients
    (`IndexedSlices`, from an `Embedding`) hold them in `.values`; a torch
    tensor's `.values` is a method, not entries."""
    if hasattr(gradient, "indices") and hasattr(gradient, "dense_shape"):
        return gradient.values
    return gradient


def _needs_merge_call():
    import tensorflow as tf

    return tf.distribute.has_strategy() and not (
        tf.__internal__.distribute.strategy_supports_no_merge_call()
    )
