"""`TBPTTLSTM`: `keras.layers.LSTM` with Theano-style `truncate_gradient`."""

from __future__ import annotations

import functools
import itertools
from typing import Any

import keras
from keras import ops

from keras_tbptt.core.validation import check_int
from keras_tbptt.layers.flags_context import current_reset_flags


@keras.saving.register_keras_serializable(package="keras_tbptt")
class TBPTTLSTM(keras.layers.LSTM):
    """Long Short-Term Memory layer with truncated backpropagation through time.

    Truncated BPTT has two lengths: k1, the steps shown in one forward pass
    (the `timesteps` axis of the input), and k2, the steps the gradient flows
    back. `keras.layers.LSTM` ties them (k1 = k2); this layer adds Theano's
    `truncate_gradient` to set k2 on its own, and `state_step` for TBPTT
    with k2 > k1 (see `keras_tbptt.decoupled_split`).

    With `truncate_gradient=k2`, the forward pass runs over all timesteps,
    but the gradient flows back through the last `k2` processed steps only
    (the first `k2` input steps when `go_backwards=True`): earlier steps,
    their outputs and the incoming state get no gradient. The time axis is
    cut in two and each part runs on the backend's fused LSTM kernel (cuDNN
    on GPU where the backend has it); the truncated part runs under
    `stop_gradient`, so it costs a forward pass only.

    The outputs and states do not depend on where the time axis is cut:
    masks (left or right padding, gaps) give what one uninterrupted pass
    gives. `keras.layers.Bidirectional` of a layer with `truncate_gradient`
    or `state_step` runs each direction as its own layer (not on Keras'
    fused bidirectional GPU kernel, which would drop both), so each
    direction is truncated.

    With `truncate_gradient=None` and `state_step=None` the layer is exactly
    `keras.layers.LSTM`: same weights, outputs and gradients. (One
    exception, a Keras bug: with `go_backwards=True` and
    `return_sequences=True` Keras' JAX cuDNN kernel returns the sequence in
    input order; this layer returns processing order on every kernel.)

    Under JAX, Keras' own stateful RNN layers lose their states in `fit`,
    `evaluate` and `predict` (their state variables are untracked). Here the
    states of a stateful layer are tracked, non-trainable variables, so they
    carry under every backend; they also appear in `layer.weights` (after
    the kernels) and in saved files. `layer.trainable_weights` matches
    `keras.layers.LSTM`.

    Args:
        units: dimensionality of the output space.
        truncate_gradient: k2: the number of processed steps the gradient
            flows back through, or `None` (default) for full BPTT over the
            input.
        state_step: with `stateful=True` (or `return_state=True`), carry
            (return) the state after this many processed steps instead of
            after the last step. `decoupled_split` with `k2 > k1` sets it to
            k1, so overlapping windows continue from where the next window
            starts. `None` (default): the state after the last step.
        **kwargs: every argument of `keras.layers.LSTM` (`activation`,
            `return_sequences`, `stateful`, `go_backwards`, `dropout`,
            `use_cudnn`, ...).

    Call arguments:
        sequences: a 3D tensor `(batch_size, timesteps, feature)`.
        initial_state: list of initial state tensors (`[h, c]`).
        mask: binary tensor `(batch_size, timesteps)`.
        training: whether the layer runs in training mode (dropout).
        resets: optional `(batch_size,)` flags: rows flagged 1 start from a
            zero state (stateful layers: instead of the carried state),
            inside the graph. A stateful layer inside a model wrapped by
            `keras_tbptt.with_reset_flags` reads them from the data.

    Call returns:
        As `keras.layers.LSTM`: `(batch, units)` or, with
        `return_sequences=True`, `(batch, timesteps, units)`; with
        `return_state=True`, also the states `h` and `c`.

    Example: chunks of k1 = 500 steps, gradient through k2 = 50 of them.

    >>> import numpy as np, keras, keras_tbptt
    >>> layer = keras_tbptt.TBPTTLSTM(8, truncate_gradient=50, return_sequences=True)
    >>> tuple(layer(np.zeros((4, 500, 3), "float32")).shape)
    (4, 500, 8)

    The seed example: 100 series of 50,000 steps cut into 500-step chunks, a
    stateful layer with batch 100 (`plan.callbacks()` resets it):

    >>> plan = keras_tbptt.naive_split(np.zeros((100, 50_000, 1)), 500)
    >>> model = keras.Sequential([
    ...     keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 1)),
    ...     keras_tbptt.TBPTTLSTM(16, stateful=True, truncate_gradient=100,
    ...                           return_sequences=True),
    ...     keras.layers.Dense(1),
    ... ])
    >>> model.output_shape
    (100, 500, 1)
    """

    def __init__(
        self,
        units: int,
        truncate_gradient: int | None = None,
        state_step: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(units, **kwargs)
        self.truncate_gradient = check_int(
            truncate_gradient, "truncate_gradient", allow_none=True
        )
        self.state_step = check_int(state_step, "state_step", allow_none=True)
        if self.unroll and (self.truncate_gradient or self.state_step):
            raise ValueError(
                "`unroll=True` cannot be combined with `truncate_gradient` or "
                "`state_step`. Received: unroll=True, "
                f"truncate_gradient={truncate_gradient}, state_step={state_step}"
            )

    @property
    def allows_fused_bidirectional(self) -> bool:
        """Whether `keras.layers.Bidirectional` may run this layer on its
        fused bidirectional kernel (JAX and torch on GPU). That kernel takes
        only the weights, so it would drop `truncate_gradient` and
        `state_step`; with either set, each direction runs as its own layer
        (each piece still on the per-direction fused kernel)."""
        return self.truncate_gradient is None and self.state_step is None

    def call(
        self,
        sequences: Any,
        initial_state: list[Any] | None = None,
        mask: Any = None,
        training: bool = False,
        resets: Any = None,
    ) -> Any:
        if resets is None and self.stateful:
            resets = current_reset_flags()  # inside a `with_reset_flags` model
        if resets is not None:
            initial_state = self._reset_rows(sequences, initial_state, resets)
        return super().call(
            sequences, initial_state=initial_state, mask=mask, training=training
        )

    def _reset_rows(self, sequences, initial_state, resets):
        """The initial states with the rows flagged in `resets` zeroed."""
        if len(resets.shape) == 2 and resets.shape[1] == 1:
            resets = ops.reshape(resets, (-1,))
        batch_size = sequences.shape[0]
        if len(resets.shape) != 1 or (
            resets.shape[0] is not None
            and batch_size is not None
            and resets.shape[0] != batch_size
        ):
            raise ValueError(
                "`resets` must hold one flag per row of the batch.\n"
                f"- Expected: shape ({batch_size},)\n"
                f"- Received: shape {tuple(resets.shape)}"
            )
        if initial_state is None:
            if not self.stateful:
                return None  # a stateless layer starts every row from zeros
            initial_state = self.states
        keep = ops.reshape(ops.equal(resets, 0), (-1, 1))
        states = [ops.convert_to_tensor(s) for s in initial_state]
        return [ops.where(keep, s, ops.zeros_like(s)) for s in states]

    def _create_state_variables(self, batch_size):
        # Tracked (unlike keras.layers.RNN) so JAX's stateless training,
        # evaluation and prediction loops write the carried states back.
        self.states = [
            self.add_weight(
                shape=(batch_size, self.units),
                initializer="zeros",
                trainable=False,
                name=name,
            )
            for name in ("state_h", "state_c")
        ]
        _shard_along_batch(self.states, batch_size, self.name)

    @property
    def weights(self) -> list[keras.Variable]:
        # Kernels first, as in keras.layers.LSTM, then the tracked states.
        weights = super().weights
        states = [w for w in weights if any(w is s for s in self.states or [])]
        return [w for w in weights if all(w is not s for s in states)] + states

    def inner_loop(
        self, sequences: Any, initial_state: list[Any], mask: Any, training: bool = False
    ) -> tuple[Any, Any, list[Any]]:
        if self.stateful and keras.backend.backend() == "torch":
            # The state variables are overwritten in place after this call;
            # torch's autograd needs the values it read kept intact (Keras'
            # own stateful LSTM fails to train on torch for want of this).
            initial_state = [ops.copy(s) for s in initial_state]
        if self.stateful and keras.backend.backend() == "tensorflow":
            # Keras' dataset adapters leave the batch axis unknown; with a
            # batch of 1, TensorFlow then cannot prove that the state keeps
            # its shape through the loop and refuses to trace it. A stateful
            # layer's batch size is fixed: state it.
            batch_size = initial_state[0].shape[0]
            sequences = _with_batch_size(sequences, batch_size)
            if mask is not None and not keras.tree.is_nested(mask):
                mask = _with_batch_size(mask, batch_size)
        timesteps = sequences.shape[1]
        cuts = {0, timesteps}
        grad_from = 0  # processed steps before this one get no gradient
        if (self.truncate_gradient or self.state_step) and timesteps is None:
            raise ValueError(
                "`truncate_gradient` and `state_step` need a static number of "
                "timesteps: give the Input a fixed length, e.g. "
                "keras.Input(batch_shape=(batch, timesteps, features)). "
                f"Received: sequences.shape={sequences.shape}"
            )
        if self.truncate_gradient is not None:
            grad_from = max(0, timesteps - self.truncate_gradient)
            cuts.add(grad_from)
        if self.state_step is not None:
            if self.state_step > timesteps:
                raise ValueError(
                    "`state_step` must be <= the number of timesteps. Received: "
                    f"state_step={self.state_step}, timesteps={timesteps}"
                )
            cuts.add(self.state_step)
        if keras.tree.is_nested(mask):
            mask = mask[0]
        if len(cuts) == 2:
            return self._processing_order_loop(sequences, initial_state, mask, training)

        cuts = sorted(cuts)
        states = list(initial_state)
        carried = None
        last_output, pieces = None, []
        for start, stop in itertools.pairwise(cuts):
            frozen = stop <= grad_from
            # Segments are cut in processing order; go_backwards processes the
            # input from its end.
            if self.go_backwards:
                segment = slice(timesteps - stop, timesteps - start)
            else:
                segment = slice(start, stop)
            inputs = sequences[:, segment]
            segment_mask = None if mask is None else mask[:, segment]
            if frozen:
                inputs = ops.stop_gradient(inputs)
                states = [ops.stop_gradient(s) for s in states]
            output, outputs, states = self._processing_order_loop(
                inputs, states, segment_mask, training, pieces=True
            )
            states = list(states)
            if frozen:
                output = ops.stop_gradient(output)
                outputs = ops.stop_gradient(outputs)
                states = [ops.stop_gradient(s) for s in states]
            if segment_mask is not None and last_output is not None:
                output, outputs = self._continue_masked_output(
                    output, outputs, segment_mask, last_output
                )
            last_output = output
            pieces.append(outputs)
            if stop == self.state_step:
                carried = states
        outputs = ops.concatenate(pieces, axis=1) if self.return_sequences else last_output
        return last_output, outputs, carried if carried is not None else states

    def _processing_order_loop(self, sequences, initial_state, mask, training,
                               pieces=False):
        """`keras.layers.LSTM.inner_loop`, outputs in processing order.

        With `go_backwards`, Keras' JAX fused kernel (GPU) returns the output
        sequence in input order, every other kernel in processing order (as
        documented): under JAX the input is reversed here and run forward.
        Masked pieces under TensorFlow take the generic loop: TensorFlow's
        cuDNN kernel asserts that each row is right-padded and not fully
        masked, which the pieces of a valid mask need not be.
        """
        backend = keras.backend.backend()
        if pieces and mask is not None and backend == "tensorflow":
            return keras.layers.RNN.inner_loop(self, sequences, initial_state, mask, training)
        if not (self.go_backwards and backend == "jax"):
            return super().inner_loop(sequences, initial_state, mask, training)
        sequences = ops.flip(sequences, axis=1)
        mask = None if mask is None else ops.flip(mask, axis=1)
        self.go_backwards = False
        try:
            return super().inner_loop(sequences, initial_state, mask, training)
        finally:
            self.go_backwards = True

    def _continue_masked_output(self, output, outputs, segment_mask, previous_output):
        """Outputs of a piece after the first as if the loop had not stopped.

        A masked step outputs the previous step's output. At the start of a
        piece the backend's loop does not know it: TensorFlow and torch
        output zeros there, JAX the incoming `h`. So each row's masked steps
        before its first unmasked step of the piece take the last output of
        the previous piece (per row and per step; gaps after an unmasked
        step are the backend's own). With `zero_output_for_mask` masked
        steps output zeros and nothing carries over.
        """
        if self.zero_output_for_mask:
            return output, outputs
        # Outputs come in processing order; so must the mask.
        processed_mask = ops.flip(segment_mask, axis=1) if self.go_backwards else segment_mask
        seen = ops.cumsum(ops.cast(processed_mask, "int32"), axis=1) > 0
        output = ops.where(seen[:, -1:], output, previous_output)
        if self.return_sequences:
            outputs = ops.where(seen[:, :, None], outputs, previous_output[:, None, :])
        return output, outputs

    def get_config(self) -> dict[str, Any]:
        config = {
            "truncate_gradient": self.truncate_gradient,
            "state_step": self.state_step,
        }
        base_config = super().get_config()
        return {**base_config, **config}


def _with_batch_size(tensor, batch_size):
    import tensorflow as tf

    return tf.ensure_shape(tensor, (batch_size, *[None] * (len(tensor.shape) - 1)))


def _keep_layer_semantics_in_bidirectional():
    """Make `keras.layers.Bidirectional` ask its layers before fusing them.

    `Bidirectional._can_attempt_fused_lstm` decides from the weights,
    activations, mask, dropout and `use_cudnn` alone whether to hand both
    directions to `backend.bidirectional_lstm` (JAX and torch, on GPU). A
    layer whose `allows_fused_bidirectional` is False (a truncated
    `TBPTTLSTM`) now keeps its own `call` on every backend. Idempotent; a
    Keras without the hook has no fused path to guard.
    """
    bidirectional = keras.layers.Bidirectional
    can_attempt = getattr(bidirectional, "_can_attempt_fused_lstm", None)
    if can_attempt is None or getattr(can_attempt, "_asks_layers", False):
        return

    @functools.wraps(can_attempt)
    def _can_attempt_fused_lstm(self, *args, **kwargs):
        for layer in (self.forward_layer, self.backward_layer):
            if not getattr(layer, "allows_fused_bidirectional", True):
                return False
        return can_attempt(self, *args, **kwargs)

    _can_attempt_fused_lstm._asks_layers = True
    bidirectional._can_attempt_fused_lstm = _can_attempt_fused_lstm


_keep_layer_semantics_in_bidirectional()


def _shard_along_batch(states, batch_size, layer_name):
    """Shard stateful states along the batch axis like the data (JAX).

    Under a `keras.distribution` (`DataParallel`, or `ModelParallel` for
    variables its `LayoutMap` leaves out) Keras replicates every variable;
    a state holds one row per batch row, and each device computes only the
    rows of its shard of the batch, so each device keeps those rows:
    `batch_size / devices` of them. The variable's `_layout` is what Keras'
    distributions consult first, what every `assign` (reset callbacks
    included) lays values out by, and what the JAX trainer takes the
    compiled step's output sharding from. A layout from the user's
    `LayoutMap` is kept. No distribution, or another backend: nothing
    changes.
    """
    if keras.backend.backend() != "jax":
        return
    distribution = keras.distribution.distribution()
    if distribution is None:
        return
    # Replicated, or not laid out yet (created in a stateless scope: the
    # deferred initializer lays it out by `_layout`).
    replicated = [
        state for state in states
        if state._layout is None
        or isinstance(state._layout, keras.distribution.TensorLayout)
        and all(axis is None for axis in state._layout.axes)
    ]
    if not replicated:
        return
    mesh, axis = distribution.device_mesh, distribution.batch_dim_name
    devices = mesh.shape[list(mesh.axis_names).index(axis)]
    if batch_size % devices:
        raise ValueError(
            f"The batch size of the stateful layer '{layer_name}' must divide "
            f"evenly across the {devices} devices of the '{axis}' axis of "
            "the distribution's device mesh: each device holds the same "
            "number of rows of the batch and of the carried states. Give the "
            "plan a batch size that is a multiple of the device count (e.g. "
            "`naive_split(..., batch_size=...)`) or use fewer devices.\n"
            f"- Expected: batch_size a multiple of {devices}\n"
            f"- Received: batch_size={batch_size}"
        )
    layout = keras.distribution.TensorLayout((axis, None), mesh)
    for state in replicated:
        state._layout = layout
        if state._value is not None:
            state.assign(state.value)  # lays the value out by `_layout`
