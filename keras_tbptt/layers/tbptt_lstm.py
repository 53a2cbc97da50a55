"""`TBPTTLSTM`: `keras.layers.LSTM` with Theano-style `truncate_gradient`."""

from __future__ import annotations

from typing import Any

import keras

from keras_tbptt.layers.truncation import TruncatedRNN


@keras.saving.register_keras_serializable(package="keras_tbptt")
class TBPTTLSTM(TruncatedRNN, keras.layers.LSTM):
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
    cut in two and each part runs on the backend's fused LSTM kernel: cuDNN
    on GPU where the backend has it, and on CPU TensorFlow's `BlockLSTM`
    or torch's `_VF.lstm` (the uncut axis too); masks, activations other
    than tanh/sigmoid, `recurrent_dropout`, `unroll`, `use_cudnn=False`
    and XLA (`jit_compile=True`) take Keras' own loop instead. The
    truncated part runs under `stop_gradient`, so it costs a forward pass
    only.

    The outputs and states do not depend on where the time axis is cut:
    masks (left or right padding, gaps) give what one uninterrupted pass
    gives. `keras.layers.Bidirectional` of a layer with `truncate_gradient`
    or `state_step` runs each direction as its own layer (not on Keras'
    fused bidirectional GPU kernel, which would drop both), so each
    direction is truncated.

    With `truncate_gradient=None` and `state_step=None` the layer is exactly
    `keras.layers.LSTM`: same weights, outputs and gradients (to float32
    rounding on a fused CPU kernel). (One
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

    _STATE_NAMES = ("state_h", "state_c")

    def __init__(
        self,
        units: int,
        truncate_gradient: int | None = None,
        state_step: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            units, truncate_gradient=truncate_gradient, state_step=state_step, **kwargs
        )
