"""`streaming`: a stateless model whose recurrent states are inputs and outputs."""

from __future__ import annotations

import keras

from keras_tbptt.layers.reset_flags import WithResetFlags

# Names of the states of one recurrent layer, by the number of states.
_STATE_NAMES = {1: ("h",), 2: ("h", "c")}


def streaming(model: keras.Model, *, reset_flags: bool = False) -> keras.Model:
    """Return a stateless copy of `model` that takes and returns its states.

    A stateful model keeps its recurrent states in variables of a fixed
    batch size, which neither serves many streams nor exports: SavedModel,
    ONNX and LiteRT want a pure function. `streaming` rebuilds `model` as a
    functional model with the states as explicit inputs and outputs: call it
    with a chunk of any number of steps of any number of streams (batch and
    time axes are `None`, whatever the training batch size) and the states
    after the previous chunk; it returns the outputs and the states after
    the last step of the chunk, to feed back with the next chunk. Chunk
    after chunk, it gives what one uninterrupted pass over each stream
    gives (the stateful model's predictions).

    Every recurrent layer (`keras_tbptt.TBPTTLSTM`, `TBPTTGRU`,
    `TBPTTSimpleRNN`, `TBPTTRNN` of a cell with flat states,
    `keras.layers.LSTM`, `GRU`, `SimpleRNN`, stacked or not; stateful or
    not) is rebuilt as a non-stateful Keras layer of the same config with
    `return_state=True`; a `TBPTTLSTM` becomes a `keras.layers.LSTM` (a
    `TBPTTGRU` a `GRU`, ...; `truncate_gradient` only
    changes gradients; `state_step` is dropped: the state is always the one
    after the last step of the call). The other layers (Dense,
    TimeDistributed, Masking, nested models...) are rebuilt from their
    config. All weights are **copies** made when `streaming` is called:
    training `model` further does not change the streaming model (call
    `streaming` again). A `with_reset_flags` model is unwrapped.

    Inputs, in this order:

    - `x`: `(streams, steps, features)`.
    - one input per state, in layer order: `<layer>_h` and `<layer>_c` for
      an LSTM, `<layer>_h` for a GRU or SimpleRNN, each `(streams, units)`
      (zeros for a new stream).
    - with `reset_flags=True`, last: `reset_flags`, `(streams,)`: rows
      flagged 1 start from zero states (their state inputs are ignored).

    Outputs, in this order: `y` (the model's output), then the new states
    `<layer>_h_out`, `<layer>_c_out`, ... in the same order as the inputs.
    (`[t.name for t in streamer.inputs]` and `streamer.output_names` list
    them.)

    Exporting (`streamer.export(path, format=...)`, Keras 3, straight after
    `streaming`: the streamer needs no call first; every export
    takes the inputs and returns the outputs in the orders above): with the
    TensorFlow backend, `"tf_saved_model"` (reload with
    `tf.saved_model.load(path).serve(inputs)`, a list in the order above),
    `"onnx"` (needs `tf2onnx`; onnxruntime names the inputs `x`,
    `<layer>_h`, ... as above; its outputs come in the order above) and
    `"litert"` (path ending `.tflite`; run it with `ai_edge_litert`'s
    `Interpreter`, outputs named `output_0`, `output_1`, ...). With the JAX backend,
    `"tf_saved_model"` (through `jax2tf`) and `"onnx"` (needs `jax2onnx`)
    work; LiteRT export needs the TensorFlow backend. Under torch, Keras
    3.15 cannot export a model with several inputs: save the model and
    export it under TensorFlow (the weights are the same). LiteRT
    needs static shapes: pass `input_signature=[[keras.InputSpec(shape=...,
    dtype="float32", name=t.name) for t in streamer.inputs]]` with fixed
    streams and steps (see docs/serving.md).

    Masks (a `Masking` layer before the recurrent layers) carry across
    calls: masked steps at the start of a call output the carried `h`, as
    one uninterrupted pass does.

    Args:
        model: a built Sequential or functional `keras.Model` with one input
            `(batch, timesteps, features)` and one output, stateful (the
            usual case) or not.
        reset_flags: whether to add the `reset_flags` input.

    Returns:
        A functional `keras.Model`, inputs `[x, *states]` (then
        `reset_flags`) and outputs `[y, *new_states]`.

    Raises:
        ValueError: for `keras.layers.Bidirectional` (its backward half
            needs the whole series: it cannot stream), `go_backwards=True`,
            recurrent layers inside other wrappers, or models with several
            inputs or outputs.

    Example:

    >>> import numpy as np, keras, keras_tbptt
    >>> model = keras.Sequential([
    ...     keras.Input(batch_shape=(32, 20, 2)),
    ...     keras_tbptt.TBPTTLSTM(4, stateful=True, return_sequences=True, name="lstm"),
    ...     keras.layers.Dense(1, name="out"),
    ... ])
    >>> streamer = keras_tbptt.streaming(model)
    >>> [t.name for t in streamer.inputs]
    ['x', 'lstm_h', 'lstm_c']
    >>> streamer.output_names
    ['y', 'lstm_h_out', 'lstm_c_out']
    >>> h = c = np.zeros((3, 4), "float32")  # 3 new streams
    >>> y, h, c = streamer.predict_on_batch([np.ones((3, 5, 2), "float32"), h, c])
    >>> y.shape, h.shape, c.shape
    ((3, 5, 1), (3, 4), (3, 4))

    Round trip through a SavedModel (served without Keras):

    >>> import tempfile, tensorflow as tf
    >>> path = tempfile.mkdtemp() + "/streamer"
    >>> streamer.export(path, format="tf_saved_model", verbose=False)
    >>> inputs = [np.ones((2, 7, 2), "float32"), *np.zeros((2, 2, 4), "float32")]
    >>> served = tf.saved_model.load(path)
    >>> outputs = served.serve(inputs)  # [y, lstm_h_out, lstm_c_out]
    >>> expected = streamer.predict_on_batch(inputs)
    >>> all(np.allclose(a, b, atol=1e-5) for a, b in zip(outputs, expected))
    True
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model (Sequential or functional). "
            f"Received: model of type {type(model).__name__}"
        )
    model = _unwrap_reset_flags(model)
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not model.built or not inputs:
        raise ValueError(
            "`model` must be a built Sequential or functional model (start "
            "it with keras.Input(batch_shape=(batch, timesteps, features))); "
            "subclassed models must be rebuilt by hand."
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            "streaming() supports models with one input and one output. "
            f"Received: {len(inputs)} inputs and {len(outputs)} outputs."
        )
    shape = tuple(inputs[0].shape)
    if len(shape) != 3:
        raise ValueError(
            "The model's input must be (batch, timesteps, features). "
            f"Received: input shape {shape}"
        )
    x = keras.Input(shape=(None, *shape[2:]), dtype=inputs[0].dtype, name="x")
    flags = keras.Input(shape=(), name="reset_flags") if reset_flags else None
    streams = _Streams(flags)
    y = _run(model, x, streams)
    if not streams.inputs:
        raise ValueError(
            f"Model {model.name!r} has no recurrent layer: there are no states "
            "to stream. Call the model directly."
        )
    outputs = [keras.layers.Identity(name="y")(y)]
    outputs += [
        keras.layers.Identity(name=f"{state.name}_out")(new)
        for state, new in zip(streams.inputs, streams.outputs, strict=True)
    ]
    extra = [flags] if reset_flags else []
    streamer = keras.Model(
        [x, *streams.inputs, *extra], outputs, name=f"{model.name}_streaming"
    )
    # Keras' ONNX exporter refuses a model that was never called ("The model
    # provided has never called."): one symbolic call, which computes
    # nothing, lets `streaming(model).export(...)` work straight away.
    streamer([keras.KerasTensor(t.shape, dtype=t.dtype) for t in streamer.inputs])
    return streamer


def _unwrap_reset_flags(model):
    layers = getattr(model, "layers", [])
    wrappers = [layer for layer in layers if isinstance(layer, WithResetFlags)]
    return wrappers[0].model if len(wrappers) == 1 else model


class _Streams:
    """The state inputs and outputs made while rebuilding a model."""

    def __init__(self, flags=None):
        self.flags = flags
        self.inputs = []  # state inputs, in layer order
        self.outputs = []  # the matching new states

    def recurrent(self, layer, x, mask):
        new = _rebuilt_recurrent(layer)
        sizes = _state_sizes(layer)
        names = _STATE_NAMES.get(len(sizes)) or tuple(f"s{i}" for i in range(len(sizes)))
        states = [
            keras.Input(shape=(size,), name=f"{layer.name}_{name}")
            for name, size in zip(names, sizes)
        ]
        self.inputs += states
        if self.flags is not None:
            states = ZeroFlaggedRows(name=f"{layer.name}_reset")([self.flags, *states])
        # Without an explicit mask, Keras takes the one `x` carries (Masking).
        masked = {} if mask is None else {"mask": mask}
        out = new(x, initial_state=list(states), **masked)
        if mask is None:
            mask = getattr(x, "_keras_mask", None)
        out = [_continue_masked_output(layer, out[0], states[0], mask), *out[1:]]
        _copy_weights(layer, new)
        self.outputs += list(out[1:])
        return out[0]


def _continue_masked_output(layer, output, h, mask):
    """Keras outputs zeros, not the carried `h`, at the masked steps before
    the first unmasked step of a call; one uninterrupted pass outputs the
    previous step's output, which is `h` (LSTM, GRU and SimpleRNN output
    their `h` state)."""
    plain = (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN)
    if mask is None or not isinstance(layer, plain):
        return output
    seen = keras.ops.cumsum(keras.ops.cast(mask, "int32"), axis=1) > 0
    if not layer.return_sequences:
        return keras.ops.where(seen[:, -1:], output, h)
    return keras.ops.where(seen[:, :, None], output, h[:, None, :])


def _run(model, x, streams):
    """`model` applied to `x` with every layer rebuilt (see `_apply`)."""
    if isinstance(model, keras.Sequential):
        for layer in model.layers:
            x = _apply(layer, streams)(x)
        return x
    if not hasattr(model, "_run_through_graph"):
        raise ValueError(
            f"Cannot rebuild model {model.name!r} of type "
            f"{type(model).__name__}: only Sequential and functional models "
            "(also nested) are supported."
        )
    if len(model.inputs) != 1:
        raise ValueError(
            f"Nested model {model.name!r} has {len(model.inputs)} inputs: "
            "streaming() supports one input per model."
        )
    outputs = model._run_through_graph([x], operation_fn=lambda op: _apply(op, streams))
    return outputs[0] if isinstance(outputs, (list, tuple)) and len(outputs) == 1 else outputs


def _apply(layer, streams):
    """A callable running the streaming version of `layer`."""
    if isinstance(layer, keras.layers.Bidirectional):
        raise ValueError(
            f"Layer {layer.name!r} is Bidirectional: its backward half reads "
            "the series from its end, so it cannot run one chunk at a time. "
            "Serve a model without Bidirectional layers, or run the model "
            "over each whole series."
        )
    if isinstance(layer, keras.Model):
        return lambda x, **kwargs: _run(layer, x, streams)
    if isinstance(layer, keras.layers.RNN):
        if layer.go_backwards:
            raise ValueError(
                f"Layer {layer.name!r} has go_backwards=True: it reads each "
                "call from its end, so it cannot stream."
            )

        def call(x, mask=None, **kwargs):
            return streams.recurrent(layer, x, mask)

        return call
    if isinstance(layer, keras.layers.Wrapper) and _contains_recurrent(layer):
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}) wraps a recurrent "
            "layer: streaming() cannot pass states through wrappers."
        )
    if not isinstance(layer, keras.layers.Layer):
        return layer  # an op of the functional graph (keras.ops...): no weights
    copy = layer.__class__.from_config(layer.get_config())

    def call(*args, **kwargs):
        kwargs.pop("training", None)
        out = copy(*args, **kwargs)
        _copy_weights(layer, copy)
        return out

    return call


def _copy_weights(source, target):
    """Copy `source`'s weights (its carried states excepted) into `target`:
    copies, not shared buffers (under JAX, Keras' jitted steps donate, so
    delete, the buffers of the variables they update)."""
    states = {id(v) for v in keras.tree.flatten(getattr(source, "states", None) or [])}
    weights = [v for v in source.weights if id(v) not in states]
    for old, new in zip(weights, target.weights, strict=True):
        new.assign(keras.ops.convert_to_numpy(old))


def _contains_recurrent(layer):
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is None:
        return False
    return any(isinstance(inner, keras.layers.RNN) for inner in flatten(include_self=True))


def _state_sizes(layer):
    sizes = layer.cell.state_size
    sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]
    if not all(isinstance(size, int) for size in sizes):
        raise ValueError(
            f"Layer {layer.name!r} has states of shape {sizes}: streaming() "
            "supports recurrent layers with flat (batch, units) states."
        )
    return sizes


def _rebuilt_recurrent(layer):
    """A non-stateful copy of `layer`'s config that returns its states."""
    from keras_tbptt.layers.truncation import TruncatedRNN, untruncated_class

    config = layer.get_config()
    config.update(stateful=False, return_state=True)
    cls = layer.__class__
    if isinstance(layer, TruncatedRNN):
        # The same forward pass: truncate_gradient only changes gradients;
        # state_step is dropped (the state is the one after the last step).
        config.pop("truncate_gradient", None)
        config.pop("state_step", None)
        cls = untruncated_class(layer)
    return cls.from_config(config)


@keras.saving.register_keras_serializable(package="keras_tbptt")
class ZeroFlaggedRows(keras.layers.Layer):
    """`[flags, *states]` -> the states with the rows flagged 1 zeroed.

    Registered, so that a streamer built with `reset_flags=True` saves and
    loads as a `.keras` file (keras_tbptt/_lazy.py registers it when Keras
    is imported)."""

    def call(self, inputs):
        flags, *states = inputs
        keep = 1.0 - keras.ops.cast(keras.ops.reshape(flags, (-1, 1)), states[0].dtype)
        return [state * keep for state in states]

    def compute_output_spec(self, inputs):
        return [keras.KerasTensor(s.shape, dtype=s.dtype) for s in inputs[1:]]
