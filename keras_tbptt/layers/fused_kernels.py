"""The backends' fused CPU kernels for the pieces of a truncated layer.

On CPU Keras runs an LSTM or GRU step by step: a `tf.while_loop` of
per-step ops under TensorFlow, a Python loop under torch (Keras calls
torch's fused `torch._VF.lstm`/`gru` on CUDA only). `fused_inner_loop`
runs a piece of `TruncatedRNN`'s cut time axis on the backend's own
sequence kernel instead:

- TensorFlow, LSTM: `tf.raw_ops.BlockLSTM` (forget_bias 0, no cell clip, no
  peepholes), its weights reordered to its gate layout i, c, f, o from
  Keras' i, f, c, o. Not `BlockLSTMV2`, which has Keras' layout: TensorFlow
  registers V1's gradient for it (`tensorflow/python/ops/rnn_grad.py`),
  whose i, c, f, o layout gives wrong gradients for a V2 forward pass.
  TensorFlow has no sequence-level GRU kernel (`GRUBlockCell` is one step).
- torch, LSTM and GRU (`reset_after=True`, the formula torch computes):
  `torch._VF.lstm` / `torch._VF.gru` (gates i, f, g, o as Keras'; GRU r, z,
  n from Keras' z, r, h).
- JAX: none (XLA's loop over Keras' step is the fastest there is).

Anything a kernel cannot compute exactly takes Keras' own path (`None` is
returned): masks, activations other than tanh/sigmoid, `recurrent_dropout`,
`unroll`, `use_cudnn` other than `"auto"` (`False` is the opt-out), another
dtype than float32, a subclassed cell, a GPU (Keras' cuDNN path), an XLA
compilation (`jit_compile=True`: `BlockLSTM` has no XLA kernel) and
`torch.compile` or TorchScript tracing. Input `dropout` in training is
applied as Keras applies it (one mask for the whole sequence).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def fused_inner_loop(
    layer: keras.layers.RNN, sequences: Any, initial_state: Any, mask: Any,
    training: bool,
) -> tuple[Any, Any, list[Any]] | None:
    """`layer.inner_loop` on the backend's fused CPU kernel, or `None`.

    Args:
        layer: a `keras.layers.LSTM` or `keras.layers.GRU` (a truncated one).
        sequences: the piece, `(batch, timesteps, features)`.
        initial_state: the list of initial states (`[h, c]` or `[h]`).
        mask: the piece's mask, or `None`.
        training: whether the layer runs in training mode (dropout).

    Returns:
        `(last_output, outputs, states)` as Keras' `inner_loop` returns
        them (outputs in processing order), or `None` where the kernel
        cannot serve: the caller runs Keras' own path then.
    """
    kernel = _kernel_for(layer, sequences, mask)
    if kernel is None:
        return None
    cell = layer.cell
    if training and cell.dropout:
        # As keras.layers.LSTM/GRU.inner_loop: the cell's one input mask for
        # every step (drawn before the loop, the same for every piece).
        dp_mask = cell.get_dropout_mask(sequences[:, 0, :])
        sequences = sequences * ops.expand_dims(dp_mask, axis=1)
    states = [ops.convert_to_tensor(state) for state in initial_state]
    bias = None if cell.bias is None else ops.convert_to_tensor(cell.bias)
    last_output, outputs, states = kernel(
        sequences,
        states,
        ops.convert_to_tensor(cell.kernel),
        ops.convert_to_tensor(cell.recurrent_kernel),
        bias,
        layer.go_backwards,
    )
    if not layer.return_sequences:
        outputs = ops.expand_dims(last_output, axis=1)  # as Keras' kernels
    return last_output, outputs, states


def _kernel_for(layer, sequences, mask):
    """The kernel function that serves this call exactly, or `None`."""
    backend = keras.backend.backend()
    cell = layer.cell
    if isinstance(layer, keras.layers.LSTM) and type(cell) is keras.layers.LSTMCell:
        kernel = {"tensorflow": tensorflow_lstm, "torch": torch_lstm}.get(backend)
    elif isinstance(layer, keras.layers.GRU) and type(cell) is keras.layers.GRUCell:
        kernel = torch_gru if backend == "torch" and cell.reset_after else None
    else:
        kernel = None
    if (
        kernel is None
        or mask is not None
        or layer.unroll
        or layer.use_cudnn != "auto"
        or cell.recurrent_dropout
        or not _is_tanh(cell.activation)
        or not _is_sigmoid(cell.recurrent_activation)
        or keras.backend.standardize_dtype(sequences.dtype) != "float32"
        or cell.kernel.dtype != "float32"
        or len(sequences.shape) != 3
        or sequences.shape[1] == 0
    ):
        return None
    on_cpu = _tensorflow_on_cpu if backend == "tensorflow" else _torch_on_cpu
    return kernel if on_cpu(sequences) else None


def _is_tanh(function):
    return function in (keras.activations.tanh, ops.tanh)


def _is_sigmoid(function):
    return function in (keras.activations.sigmoid, ops.sigmoid)


def _tensorflow_on_cpu(sequences):
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    if tf.config.list_logical_devices("GPU"):
        return False  # Keras' cuDNN kernel
    # Inside `tf.function(jit_compile=True)` (Keras' `jit_compile=True`)
    # the graph must compile to XLA, which has no BlockLSTM kernel.
    graph = tf.compat.v1.get_default_graph()
    return not control_flow_util.GraphOrParentsInXlaContext(graph)


def _torch_on_cpu(sequences):
    import torch

    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False  # as Keras: the traced graph keeps Keras' own ops
    return sequences.device.type == "cpu"


def _split_gates(tensor, order, count):
    """`tensor`'s last axis, cut into `count` gates, put in `order`."""
    gates = ops.split(tensor, count, axis=-1)
    return ops.concatenate([gates[i] for i in order], axis=-1)


def tensorflow_lstm(sequences, states, kernel, recurrent_kernel, bias, go_backwards):
    """An LSTM piece on `tf.raw_ops.BlockLSTM`: `(last, outputs, [h, c])`."""
    import tensorflow as tf

    h, c = states
    units = recurrent_kernel.shape[0]
    x = tf.transpose(sequences, [1, 0, 2])  # time major
    if go_backwards:
        x = tf.reverse(x, axis=[0])
    # Keras' gates i, f, c, o -> BlockLSTM's i, c, f, o.
    weights = _split_gates(tf.concat([kernel, recurrent_kernel], axis=0), (0, 2, 1, 3), 4)
    bias = tf.zeros([4 * units], x.dtype) if bias is None else _split_gates(
        bias, (0, 2, 1, 3), 4
    )
    no_peephole = tf.zeros([units], x.dtype)
    _, cs, _, _, _, _, hs = tf.raw_ops.BlockLSTM(
        seq_len_max=tf.cast(tf.shape(x)[0], tf.int64),
        x=x,
        cs_prev=c,
        h_prev=h,
        w=weights,
        wci=no_peephole,
        wcf=no_peephole,
        wco=no_peephole,
        b=bias,
        forget_bias=0.0,
        cell_clip=-1.0,  # no clipping
        use_peephole=False,
    )
    last_h, last_c = hs[-1], cs[-1]
    return last_h, tf.transpose(hs, [1, 0, 2]), [last_h, last_c]


def _torch_params(kernel, recurrent_kernel, input_bias, recurrent_bias):
    """torch's `(weight_ih, weight_hh[, bias_ih, bias_hh])`, gates as given."""
    weights = [kernel.T.contiguous(), recurrent_kernel.T.contiguous()]
    if input_bias is None:
        return weights
    return [*weights, input_bias.contiguous(), recurrent_bias.contiguous()]


def torch_lstm(sequences, states, kernel, recurrent_kernel, bias, go_backwards):
    """An LSTM piece on `torch._VF.lstm`: `(last, outputs, [h, c])`."""
    import torch

    h, c = states
    if go_backwards:
        sequences = torch.flip(sequences, dims=[1])
    # Keras' gates i, f, c, o are torch's i, f, g, o; one bias suffices.
    params = _torch_params(
        kernel, recurrent_kernel, bias, None if bias is None else torch.zeros_like(bias)
    )
    outputs, h, c = torch._VF.lstm(
        sequences, (h[None], c[None]), params, bias is not None,
        1, 0.0, torch.is_grad_enabled(), False, True,  # layers, dropout, train, bidir., batch first
    )
    return h[0], outputs, [h[0], c[0]]


def torch_gru(sequences, states, kernel, recurrent_kernel, bias, go_backwards):
    """A GRU piece (`reset_after=True`) on `torch._VF.gru`: `(last, outputs, [h])`."""
    import torch

    (h,) = states
    if go_backwards:
        sequences = torch.flip(sequences, dims=[1])
    order = (1, 0, 2)  # Keras' gates z, r, h -> torch's r, z, n
    params = _torch_params(
        _split_gates(kernel, order, 3),
        _split_gates(recurrent_kernel, order, 3),
        None if bias is None else _split_gates(bias[0], order, 3),
        None if bias is None else _split_gates(bias[1], order, 3),
    )
    outputs, h = torch._VF.gru(
        sequences, h[None], params, bias is not None,
        1, 0.0, torch.is_grad_enabled(), False, True,  # layers, dropout, train, bidir., batch first
    )
    return h[0], outputs, [h[0]]
