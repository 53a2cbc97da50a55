"""`TBPTTSimpleRNN`: `keras.layers.SimpleRNN` with `truncate_gradient`."""

from __future__ import annotations

from typing import Any

import keras

from keras_tbptt.layers.truncation import TruncatedRNN


@keras.saving.register_keras_serializable(package="keras_tbptt")
class TBPTTSimpleRNN(TruncatedRNN, keras.layers.SimpleRNN):
    """Fully-connected RNN with truncated backpropagation through time.

    `keras.layers.SimpleRNN` with the arguments and guarantees of
    `TBPTTLSTM`: `truncate_gradient` (k2, the processed steps the gradient
    flows back through), `state_step`, tracked states under every backend,
    per-row `resets`, masks independent of the cuts, `go_backwards`,
    `Bidirectional`, `return_state`. With `truncate_gradient=None` and
    `state_step=None` it is exactly `keras.layers.SimpleRNN`.

    Args:
        units: dimensionality of the output space.
        truncate_gradient: k2, or `None` (default) for full BPTT.
        state_step: carry (return) the state after this many processed
            steps, or `None` (default): after the last step.
        **kwargs: every argument of `keras.layers.SimpleRNN`.

    Call arguments:
        sequences: a 3D tensor `(batch_size, timesteps, feature)`.
        initial_state: list of one initial state tensor (`[h]`).
        mask: binary tensor `(batch_size, timesteps)`.
        training: whether the layer runs in training mode (dropout).
        resets: optional `(batch_size,)` flags: rows flagged 1 start from a
            zero state (stateful layers: instead of the carried state).

    Call returns:
        As `keras.layers.SimpleRNN`.

    Example:

    >>> import numpy as np, keras, keras_tbptt
    >>> layer = keras_tbptt.TBPTTSimpleRNN(8, truncate_gradient=5, return_sequences=True)
    >>> tuple(layer(np.zeros((4, 20, 3), "float32")).shape)
    (4, 20, 8)
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
