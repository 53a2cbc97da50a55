"""`TBPTTGRU`: `keras.layers.GRU` with Theano-style `truncate_gradient`."""

from __future__ import annotations

from typing import Any

import keras

from keras_tbptt.layers.truncation import TruncatedRNN


@keras.saving.register_keras_serializable(package="keras_tbptt")
class TBPTTGRU(TruncatedRNN, keras.layers.GRU):
    """Gated Recurrent Unit with truncated backpropagation through time.

    `keras.layers.GRU` (`reset_after=True` or `False`) with the arguments
    and guarantees of `TBPTTLSTM`: `truncate_gradient` sets k2, the number
    of processed steps the gradient flows back through (the first `k2`
    input steps with `go_backwards=True`); `state_step` carries the state
    after that many steps; the states of a stateful layer are tracked
    variables (they carry under JAX, unlike Keras' own stateful GRU); per
    row `resets` zero flagged rows inside the graph (`with_reset_flags`).

    The time axis is cut in two (three with `state_step`) and each piece
    runs on the kernel Keras picks for a GRU: cuDNN on GPU under TensorFlow
    and torch, Keras' precomputed-projection loop under JAX (which has no
    fused GRU: a `lax.scan` on every device), for `reset_after=True`
    without a mask; the generic loop otherwise. On CPU under torch each
    piece (the uncut axis too) runs on torch's fused `_VF.gru` instead, for
    `reset_after=True`, tanh/sigmoid, no mask, no `recurrent_dropout`, no
    `unroll` and `use_cudnn="auto"`; TensorFlow has no fused GRU sequence
    kernel. The truncated piece runs under `stop_gradient`. Outputs and
    states do not depend on where the time axis is cut, masks included.
    `keras.layers.Bidirectional` of a truncated layer runs each direction
    as its own layer (never on torch's fused bidirectional GRU, which
    would drop the truncation).

    With `truncate_gradient=None` and `state_step=None` the layer is
    exactly `keras.layers.GRU`: same weights, outputs and gradients (to
    float32 rounding on the fused CPU kernel);
    `layer.weights` lists the tracked states after the kernels.

    Args:
        units: dimensionality of the output space.
        truncate_gradient: k2: the number of processed steps the gradient
            flows back through, or `None` (default) for full BPTT over the
            input.
        state_step: with `stateful=True` (or `return_state=True`), carry
            (return) the state after this many processed steps instead of
            after the last step (`decoupled_split` with `k2 > k1` sets it).
            `None` (default): the state after the last step.
        **kwargs: every argument of `keras.layers.GRU` (`reset_after`,
            `return_sequences`, `stateful`, `go_backwards`, `dropout`,
            `use_cudnn`, ...).

    Call arguments:
        sequences: a 3D tensor `(batch_size, timesteps, feature)`.
        initial_state: list of one initial state tensor (`[h]`).
        mask: binary tensor `(batch_size, timesteps)`.
        training: whether the layer runs in training mode (dropout).
        resets: optional `(batch_size,)` flags: rows flagged 1 start from a
            zero state (stateful layers: instead of the carried state).

    Call returns:
        As `keras.layers.GRU`: `(batch, units)` or, with
        `return_sequences=True`, `(batch, timesteps, units)`; with
        `return_state=True`, also the state `h`.

    Example: chunks of k1 = 500 steps, gradient through k2 = 50 of them.

    >>> import numpy as np, keras, keras_tbptt
    >>> layer = keras_tbptt.TBPTTGRU(8, truncate_gradient=50, return_sequences=True)
    >>> tuple(layer(np.zeros((4, 500, 3), "float32")).shape)
    (4, 500, 8)
    >>> output, h = keras_tbptt.TBPTTGRU(8, state_step=20, return_state=True)(
    ...     np.zeros((4, 50, 3), "float32"))
    >>> tuple(output.shape), tuple(h.shape)
    ((4, 8), (4, 8))
    """

    _STATE_NAMES = ("state_h",)

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
