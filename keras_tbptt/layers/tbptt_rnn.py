"""`TBPTTRNN`: `keras.layers.RNN` of any cell with `truncate_gradient`."""

from __future__ import annotations

from typing import Any

import keras

from keras_tbptt.layers.truncation import TruncatedRNN


@keras.saving.register_keras_serializable(package="keras_tbptt")
class TBPTTRNN(TruncatedRNN):
    """`keras.layers.RNN` of any cell with truncated backpropagation through time.

    The cell may be a built-in one (`keras.layers.LSTMCell`, `GRUCell`,
    `SimpleRNNCell`), a list of cells or `keras.layers.StackedRNNCells`
    (nested states), or a user's own cell (a layer with `call(inputs,
    states)` and `state_size`, see `keras.layers.RNN`). The layer has the
    arguments and guarantees of `TBPTTLSTM`: `truncate_gradient`,
    `state_step`, tracked states under every backend (one variable per
    state, nested states included), per-row `resets`, masks independent of
    the cuts, `go_backwards`, `Bidirectional`, `return_state`. With
    `truncate_gradient=None` and `state_step=None` it is exactly
    `keras.layers.RNN` of the same cell. Every piece runs on Keras' generic
    loop (a cell has no fused kernel).

    A masked step outputs the previous step's output; Keras' JAX loop
    outputs the cell's first state instead, which is the same for every
    cell that outputs its first state (all of Keras' cells).

    Args:
        cell: an RNN cell, or a list of cells (stacked).
        truncate_gradient: k2, or `None` (default) for full BPTT.
        state_step: carry (return) the state after this many processed
            steps, or `None` (default): after the last step.
        **kwargs: every argument of `keras.layers.RNN` (`return_sequences`,
            `return_state`, `go_backwards`, `stateful`,
            `zero_output_for_mask`, ...).

    Call arguments:
        sequences: a 3D tensor `(batch_size, timesteps, feature)`.
        initial_state: list of initial state tensors, as the cell's states.
        mask: binary tensor `(batch_size, timesteps)`.
        training: whether the layer runs in training mode (dropout).
        resets: optional `(batch_size,)` flags: rows flagged 1 start from a
            zero state (stateful layers: instead of the carried state).

    Call returns:
        As `keras.layers.RNN`.

    Example: two stacked cells, gradient through the last 10 steps.

    >>> import numpy as np, keras, keras_tbptt
    >>> cells = [keras.layers.GRUCell(8), keras.layers.LSTMCell(4)]
    >>> layer = keras_tbptt.TBPTTRNN(cells, truncate_gradient=10, return_state=True)
    >>> output, [gru_h], [lstm_h, lstm_c] = layer(np.zeros((2, 30, 3), "float32"))
    >>> tuple(output.shape), tuple(gru_h.shape), tuple(lstm_c.shape)
    ((2, 4), (2, 8), (2, 4))
    """

    def __init__(
        self,
        cell: keras.layers.Layer | list[keras.layers.Layer],
        truncate_gradient: int | None = None,
        state_step: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            cell, truncate_gradient=truncate_gradient, state_step=state_step, **kwargs
        )
