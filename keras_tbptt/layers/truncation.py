"""`TruncatedRNN`: truncated BPTT for any `keras.layers.RNN`, shared by the
layers of keras_tbptt.

One implementation of the cutting of the time axis (`truncate_gradient`,
`state_step`), the tracked state carry and the per-row resets, for
`TBPTTLSTM`, `TBPTTGRU`, `TBPTTSimpleRNN` and `TBPTTRNN`. A layer is this
class followed by the Keras layer it truncates, e.g.
`class TBPTTGRU(TruncatedRNN, keras.layers.GRU)`: each piece of the cut
time axis runs on that layer's own `inner_loop` (the backend's fused or
cuDNN kernel where Keras uses one) or, on CPU, on the backend's fused
LSTM/GRU sequence kernel (`fused_kernels.py`), so the layer-specific part
is a constructor and a docstring.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import keras
from keras import ops
from keras.src.utils.tracking import DotNotTrackScope

from keras_tbptt.core.validation import check_int
from keras_tbptt.layers.flags_context import current_reset_flags
from keras_tbptt.layers.fused_kernels import fused_inner_loop


class TruncatedRNN(keras.layers.RNN):
    """A `keras.layers.RNN` with truncated BPTT, tracked states and resets.

    The base of every keras_tbptt recurrent layer (`isinstance(layer,
    TruncatedRNN)` finds them all): `TBPTTRNN` subclasses it for a public
    name and docstring; `TBPTTLSTM`, `TBPTTGRU` and `TBPTTSimpleRNN` put
    it before the Keras layer they truncate. So may you, for another
    `keras.layers.RNN` subclass (e.g. `ConvLSTM2D`).

    Args:
        *args: the Keras layer's positional arguments (`cell` or `units`).
        truncate_gradient: the number of processed steps the gradient flows
            back through, or `None` for full BPTT.
        state_step: carry (and return) the state after this many processed
            steps instead of after the last one, or `None`.
        **kwargs: the Keras layer's other arguments.

    A truncated Keras recurrent layer is this class before the Keras layer.

    Example:

    >>> import keras
    >>> from keras_tbptt.layers import TruncatedRNN
    >>> class TruncatedGRU(TruncatedRNN, keras.layers.GRU):
    ...     pass
    >>> layer = TruncatedGRU(4, truncate_gradient=5, return_sequences=True)
    >>> tuple(layer(keras.ops.ones((2, 20, 3))).shape)
    (2, 20, 4)
    >>> import keras_tbptt as kt
    >>> isinstance(kt.TBPTTLSTM(4), TruncatedRNN)
    True
    """

    # Names of the tracked state variables, in the order of the flattened
    # states; `None`: `state_0`, `state_1`, ...
    _STATE_NAMES = None
    # While `call` runs with reset flags: the flags, for `inner_loop`'s hold
    # (a flag of 1 + p holds the row's reset state over the first p steps);
    # `_generic`: the held branch runs Keras' generic loop.
    _hold_flags = None
    _generic = False

    def __init__(
        self,
        *args: Any,
        truncate_gradient: int | None = None,
        state_step: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
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
        fused bidirectional kernel (LSTM on JAX and torch, GRU on torch, on
        GPU). That kernel takes only the weights, so it would drop
        `truncate_gradient` and `state_step`; with either set, each
        direction runs as its own layer (each piece still on the
        per-direction fused kernel)."""
        return self.truncate_gradient is None and self.state_step is None

    def call(
        self,
        sequences: Any,
        initial_state: Any = None,
        mask: Any = None,
        training: bool = False,
        resets: Any = None,
    ) -> Any:
        if resets is None and self.stateful:
            resets = current_reset_flags()  # inside a `with_reset_flags` model
        if resets is None:
            return super().call(
                sequences, initial_state=initial_state, mask=mask, training=training
            )
        initial_state = self._reset_rows(sequences, initial_state, resets)
        self._hold_flags = ops.reshape(resets, (-1,))
        try:
            return super().call(
                sequences, initial_state=initial_state, mask=mask, training=training
            )
        finally:
            self._hold_flags = None

    @staticmethod
    def can_hold(states: Any) -> bool:
        """Whether reset flags of `1 + p` can hold these states.

        Keras' JAX loop cannot mask states of more than `(batch, units)` (a
        ConvLSTM's images), so moving cut points refuse such a layer under JAX.

        Args:
            states: the layer's states, a tensor or a nested structure of them.

        Returns:
            `True` unless the backend is JAX and a state has more than 2 axes.
        """
        return keras.backend.backend() != "jax" or all(
            len(state.shape) <= 2 for state in keras.tree.flatten(states)
        )

    def _held_loop(self, sequences, initial_state, mask, training):
        """`inner_loop` for a batch with reset flags: rows flagged `1 + p`
        (p > 0) keep their reset state over their first `p` steps.

        The held steps are masked (a masked step keeps the state, Keras RNN
        semantics), so the real steps compute what the unpadded sequence
        computes from the reset state. Only a batch that holds a row pays
        for the mask: `ops.cond` runs the unmasked loop (the fused kernel,
        where the backend has one) for flags of 0 and 1. The branches are
        pure; the state variables are assigned by `keras.layers.RNN.call`.
        """
        flags, self._hold_flags = self._hold_flags, None
        hold = ops.cast(ops.maximum(flags - 1, 0), "int32")
        # In input order, as Keras masks are (`go_backwards` too).
        held_mask = ops.arange(ops.shape(sequences)[1], dtype="int32")[None, :] >= hold[:, None]
        if mask is not None:
            held_mask = ops.logical_and(held_mask, ops.cast(mask, "bool"))
        structure = []

        def loop(loop_mask, generic):
            self._generic = generic
            try:
                result = self.inner_loop(sequences, initial_state, loop_mask, training)
            finally:
                self._generic = False
            structure[:] = [result[2]]
            last, outputs, states = result
            return last, outputs, keras.tree.flatten(states)

        last, outputs, states = ops.cond(
            ops.any(hold > 0),
            lambda: loop(held_mask, True),
            lambda: loop(mask, False),
        )
        return last, outputs, keras.tree.pack_sequence_as(structure[0], states)

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
        if not keras.tree.is_nested(initial_state):
            initial_state = [initial_state]
        keep = ops.equal(resets, 0)

        def reset(state):
            state = ops.convert_to_tensor(state)
            row = ops.reshape(keep, (-1, *[1] * (len(state.shape) - 1)))
            return ops.where(row, state, ops.zeros_like(state))

        return keras.tree.map_structure(reset, list(initial_state))

    def _create_state_variables(self, batch_size):
        # Tracked (unlike keras.layers.RNN) so JAX's stateless training,
        # evaluation and prediction loops write the carried states back.
        structure = self.get_initial_state(batch_size)
        initial = keras.tree.flatten(structure)
        names = self._STATE_NAMES or [f"state_{i}" for i in range(len(initial))]
        variables = [
            self.add_weight(
                shape=tuple(value.shape),
                initializer="zeros",
                trainable=False,
                name=name,
            )
            for name, value in zip(names, initial, strict=True)
        ]
        # The variables are tracked by `add_weight`; the structure is not (as
        # in keras.layers.RNN): a tracked nested list (StackedRNNCells)
        # would reach the backend's loop as a type JAX does not know.
        with DotNotTrackScope():
            self.states = keras.tree.pack_sequence_as(structure, variables)
        _shard_along_batch(variables, batch_size, self.name)

    def reset_state(self) -> None:
        # Keras' own loop misses nested states (StackedRNNCells).
        for state in keras.tree.flatten(self.states or []):
            state.assign(ops.zeros_like(state.value))

    @property
    def weights(self) -> list[keras.Variable]:
        # Kernels first, as in the Keras layer, then the tracked states.
        weights = super().weights
        states = keras.tree.flatten(self.states or [])
        return [w for w in weights if all(w is not s for s in states)] + [
            w for w in weights if any(w is s for s in states)
        ]

    def inner_loop(
        self, sequences: Any, initial_state: Any, mask: Any, training: bool = False
    ) -> tuple[Any, Any, Any]:
        if self._hold_flags is not None:
            if self.can_hold(initial_state):
                return self._held_loop(sequences, initial_state, mask, training)
            self._hold_flags = None
        if self.stateful and keras.backend.backend() == "torch":
            # The state variables are overwritten in place after this call;
            # torch's autograd needs the values it read kept intact (Keras'
            # own stateful layers fail to train on torch for want of this).
            initial_state = keras.tree.map_structure(ops.copy, initial_state)
        if self.stateful and keras.backend.backend() == "tensorflow":
            # Keras' dataset adapters leave the batch axis unknown; with a
            # batch of 1, TensorFlow then cannot prove that the state keeps
            # its shape through the loop and refuses to trace it. A stateful
            # layer's batch size is fixed: state it.
            batch_size = keras.tree.flatten(initial_state)[0].shape[0]
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

        freeze = functools.partial(keras.tree.map_structure, ops.stop_gradient)
        states = list(initial_state)
        carried = None
        last_output, pieces = None, []
        for start, stop in itertools.pairwise(sorted(cuts)):
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
                inputs, states = ops.stop_gradient(inputs), freeze(states)
            output, outputs, states = self._processing_order_loop(
                inputs, states, segment_mask, training, pieces=True
            )
            states = list(states) if keras.tree.is_nested(states) else [states]
            if frozen:
                output, outputs, states = freeze((output, outputs, states))
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
        """The Keras layer's `inner_loop`, outputs in processing order.

        On CPU an LSTM (TensorFlow, torch) or GRU (torch) piece runs on the
        backend's fused sequence kernel where it computes the same thing
        (`fused_kernels.py`), else on Keras' own path.

        With `go_backwards`, Keras' JAX fused LSTM kernel (GPU) returns the
        output sequence in input order, every other kernel in processing
        order (as documented): under JAX the input is reversed here and run
        forward (the same pass on every JAX kernel). Masked pieces under
        TensorFlow take the generic loop: TensorFlow's cuDNN kernels assert
        that each row is right-padded and not fully masked, which the pieces
        of a valid mask need not be.
        """
        fused = fused_inner_loop(self, sequences, initial_state, mask, training)
        if fused is not None:  # the backend's fused CPU kernel (LSTM, GRU)
            return fused
        backend = keras.backend.backend()
        # Held rows (`_held_loop`) are masked at their start, which no fused
        # kernel takes (TensorFlow's cuDNN asserts right padding).
        if self._generic or pieces and mask is not None and backend == "tensorflow":
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

        A masked step outputs the previous step's output (TensorFlow and
        torch) or the incoming first state (JAX; the same for every Keras
        cell, whose output is its first state). At the start of a piece the
        backend's loop does not know the previous output: TensorFlow and
        torch output zeros there. So each row's masked steps before its
        first unmasked step of the piece take the last output of the
        previous piece (per row and per step; gaps after an unmasked step
        are the backend's own). Under JAX the backend's own output there is
        already what one pass gives. With `zero_output_for_mask` masked
        steps output zeros and nothing carries over.
        """
        if self.zero_output_for_mask or keras.backend.backend() == "jax":
            return output, outputs
        # Outputs come in processing order; so must the mask.
        processed_mask = ops.flip(segment_mask, axis=1) if self.go_backwards else segment_mask
        seen = ops.cumsum(ops.cast(processed_mask, "int32"), axis=1) > 0
        for _ in range(len(output.shape) - 1):  # (units,) or a cell's wider output
            seen = ops.expand_dims(seen, -1)
        output = ops.where(seen[:, -1], output, previous_output)
        if self.return_sequences:
            outputs = ops.where(seen, outputs, ops.expand_dims(previous_output, 1))
        return output, outputs

    def get_config(self) -> dict[str, Any]:
        config = {
            "truncate_gradient": self.truncate_gradient,
            "state_step": self.state_step,
        }
        base_config = super().get_config()
        return {**base_config, **config}


def untruncated_class(layer: keras.layers.RNN) -> type[keras.layers.RNN]:
    """The Keras layer class `layer` truncates: `keras.layers.LSTM` for a
    `TBPTTLSTM` (or a subclass of it), `keras.layers.RNN` for a `TBPTTRNN`.
    It takes the same config without `truncate_gradient` and `state_step`
    and runs the same forward pass."""
    for cls in type(layer).__mro__:
        if issubclass(cls, keras.layers.RNN) and not issubclass(cls, TruncatedRNN):
            return cls
    raise TypeError(f"{type(layer).__name__} is not a keras.layers.RNN")


def _with_batch_size(tensor, batch_size):
    import tensorflow as tf

    return tf.ensure_shape(tensor, (batch_size, *[None] * (len(tensor.shape) - 1)))


def _keep_layer_semantics_in_bidirectional():
    """Make `keras.layers.Bidirectional` ask its layers before fusing them.

    `Bidirectional._can_attempt_fused_lstm` and `_can_attempt_fused_gru`
    decide from the weights, activations, mask, dropout and `use_cudnn`
    alone whether to hand both directions to `backend.bidirectional_lstm`
    (JAX and torch, on GPU) or `backend.bidirectional_gru` (torch, on GPU).
    A layer whose `allows_fused_bidirectional` is False (a truncated
    `TBPTTLSTM` or `TBPTTGRU`) now keeps its own `call` on every backend.
    Idempotent; a Keras without a hook has no fused path to guard.
    """
    bidirectional = keras.layers.Bidirectional
    for name in ("_can_attempt_fused_lstm", "_can_attempt_fused_gru"):
        can_attempt = getattr(bidirectional, name, None)
        if can_attempt is None or getattr(can_attempt, "_asks_layers", False):
            continue
        setattr(bidirectional, name, _asking_layers(can_attempt))


def _asking_layers(can_attempt):
    @functools.wraps(can_attempt)
    def asking(self, *args, **kwargs):
        for layer in (self.forward_layer, self.backward_layer):
            if not getattr(layer, "allows_fused_bidirectional", True):
                return False
        return can_attempt(self, *args, **kwargs)

    asking._asks_layers = True
    return asking


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
    for state in replicated:
        # One layout per state: (batch, units) or a cell's wider state.
        axes = (axis, *[None] * (len(state.shape) - 1))
        state._layout = keras.distribution.TensorLayout(axes, mesh)
        if state._value is not None:
            state.assign(state.value)  # lays the value out by `_layout`
