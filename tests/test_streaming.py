"""Streaming inference with explicit states: `streaming` and `StreamStates`.

The streaming model, fed one step at a time or chunks of varying length with
its states fed back by hand, must give the stateful model's predictions and
one full pass per series, under every backend; per-row reset flags restart
streams mid-stream; the SavedModel, ONNX and LiteRT exports give the same
outputs.
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from conftest import full_pass, to_numpy

import keras_tbptt as kt

pytestmark = pytest.mark.keras
UNITS, FEATURES, LENGTH, BATCH, TIMESTEPS = 4, 2, 60, 4, 10
CHUNKS = [7, 1, 13, 20, 19]  # sums to LENGTH
TOL = {"atol": 1e-5, "rtol": 1e-5}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(17)
    return rng.normal(size=(5, LENGTH, FEATURES)).astype("float32")


@pytest.fixture(scope="module")
def lstm_model():
    """A stateful TBPTTLSTM + Dense trained with batch size BATCH, with a long memory."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input(batch_shape=(BATCH, TIMESTEPS, FEATURES)),
            kt.TBPTTLSTM(
                UNITS, stateful=True, return_sequences=True, truncate_gradient=5, name="lstm"
            ),
            keras.layers.Dense(1, name="head"),
        ]
    )
    lstm = model.get_layer("lstm")
    lstm.set_weights([w * 2 for w in lstm.get_weights()[:3]] + lstm.get_weights()[3:])
    return model


def lstm_weights(model):
    return model.get_layer("lstm").get_weights()[:3]


def reference(model, series):
    """One full pass of keras.layers.LSTM over each whole series, then the head."""
    config = {"units": UNITS, "return_sequences": True}
    outputs = np.stack(full_pass(config, lstm_weights(model), list(series)))
    kernel, bias = model.get_layer("head").get_weights()
    return outputs @ kernel + bias


def stateful_predictions(model, series):
    """The stateful model's predictions over a naive_split plan of `series`."""
    plan = kt.naive_split(series, TIMESTEPS)
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()
    outputs = model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    return np.asarray(plan.unsplit(outputs))


def zero_states(streamer, streams):
    return [np.zeros((streams, t.shape[-1]), "float32") for t in streamer.inputs[1:]
            if t.name != "reset_flags"]


def stream(streamer, series, chunks, flags=None):
    """Run `series` through `streamer` chunk by chunk, feeding the states
    back by hand; `flags`: {step: reset flags} at chunk starts."""
    states = zero_states(streamer, len(series))
    outputs, start = [], 0
    for size in chunks:
        inputs = [series[:, start : start + size], *states]
        if flags is not None:
            inputs.append(flags.get(start, np.zeros(len(series), "float32")))
        y, *states = streamer.predict_on_batch(inputs)
        outputs.append(to_numpy(y))
        start += size
    return outputs, states


@pytest.mark.parametrize("chunks", [[1] * LENGTH, CHUNKS], ids=["one_step", "chunks"])
def test_streaming_equals_stateful_and_full_pass(chunks, data, lstm_model):
    series = data[:BATCH]
    streamer = kt.streaming(lstm_model)
    outputs, _ = stream(streamer, series, chunks)
    got = np.concatenate(outputs, axis=1)
    np.testing.assert_allclose(got, stateful_predictions(lstm_model, series), **TOL)
    np.testing.assert_allclose(got, reference(lstm_model, series), **TOL)


def test_names_and_shapes(lstm_model):
    streamer = kt.streaming(lstm_model, reset_flags=True)
    assert [t.name for t in streamer.inputs] == ["x", "lstm_h", "lstm_c", "reset_flags"]
    assert streamer.output_names == ["y", "lstm_h_out", "lstm_c_out"]
    assert [tuple(t.shape) for t in streamer.inputs] == [
        (None, None, FEATURES), (None, UNITS), (None, UNITS), (None,)
    ]


@pytest.mark.parametrize("streams", [1, 5])
def test_serving_batch_size_differs_from_training(streams, data, lstm_model):
    series = data[:streams]
    outputs, _ = stream(kt.streaming(lstm_model), series, CHUNKS)
    np.testing.assert_allclose(
        np.concatenate(outputs, axis=1), reference(lstm_model, series), **TOL
    )


def test_reset_flags_restart_flagged_rows_mid_stream(data, lstm_model):
    series = data
    flags = {21: np.array([0, 1, 0, 1, 0], "float32")}
    outputs, _ = stream(kt.streaming(lstm_model, reset_flags=True), series, CHUNKS, flags)
    got = np.concatenate(outputs, axis=1)
    full = reference(lstm_model, series)
    restarted = reference(lstm_model, series[:, 21:])
    np.testing.assert_allclose(got[:, :21], full[:, :21], **TOL)
    for row in range(len(series)):
        expected = restarted[row] if flags[21][row] else full[row, 21:]
        np.testing.assert_allclose(got[row, 21:], expected, **TOL)


def test_stacked_gru_and_simple_rnn_with_last_step_output(data):
    """TBPTTLSTM -> GRU -> SimpleRNN (return_sequences=False): chunks that
    do not follow the training windows end, at each window end, with the
    stateful model's output for that window."""
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [
            keras.Input(batch_shape=(BATCH, TIMESTEPS, FEATURES)),
            kt.TBPTTLSTM(UNITS, stateful=True, return_sequences=True, name="lstm"),
            keras.layers.GRU(3, stateful=True, return_sequences=True, name="gru"),
            keras.layers.SimpleRNN(3, stateful=True, name="rnn"),
            keras.layers.Dense(2, name="head"),
        ]
    )
    series = data[:BATCH]
    # One full pass over each series, read at the end of each window.
    full = keras.Sequential(
        [
            keras.Input((None, FEATURES)),
            keras.layers.LSTM(UNITS, return_sequences=True),
            keras.layers.GRU(3, return_sequences=True),
            keras.layers.SimpleRNN(3, return_sequences=True),
            keras.layers.Dense(2),
        ]
    )
    for target, source in zip(full.layers, model.layers, strict=True):
        target.set_weights([to_numpy(v) for v in source.trainable_weights])
    expected = to_numpy(full(series))[:, TIMESTEPS - 1 :: TIMESTEPS]
    if keras.backend.backend() == "tensorflow":
        # Keras' own stateful GRU/SimpleRNN lose their states in predict()
        # under JAX: compare with the stateful model under TensorFlow only.
        plan = kt.naive_split(series, TIMESTEPS)
        predictions = model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
        stateful = np.zeros_like(expected)
        for (row, start), output in zip(plan.positions[:, :2], predictions):
            stateful[row, start // TIMESTEPS] = output
        np.testing.assert_allclose(stateful, expected, **TOL)

    streamer = kt.streaming(model)
    assert [t.name for t in streamer.inputs] == ["x", "lstm_h", "lstm_c", "gru_h", "rnn_h"]
    chunks = [3, 7, 10, 1, 9, 20, 10]
    outputs, _ = stream(streamer, series, chunks)
    ends = np.cumsum(chunks)
    for end, y in zip(ends, outputs):
        if end % TIMESTEPS == 0:
            np.testing.assert_allclose(y, expected[:, end // TIMESTEPS - 1], **TOL)


def test_functional_with_reset_flags_model_is_unwrapped(data, lstm_model):
    x = keras.Input(batch_shape=(BATCH, TIMESTEPS, FEATURES))
    lstm = kt.TBPTTLSTM(UNITS, stateful=True, return_sequences=True, name="lstm")
    head = keras.layers.TimeDistributed(keras.layers.Dense(1), name="head")
    model = keras.Model(x, head(lstm(x)))
    lstm.set_weights(lstm_model.get_layer("lstm").get_weights())
    head.set_weights(lstm_model.get_layer("head").get_weights())
    streamer = kt.streaming(kt.with_reset_flags(model))
    outputs, _ = stream(streamer, data, [LENGTH])
    np.testing.assert_allclose(outputs[0], reference(lstm_model, data), **TOL)


def test_weights_are_copies(lstm_model):
    streamer = kt.streaming(lstm_model)
    copied = streamer.get_layer("lstm")
    assert isinstance(copied, keras.layers.LSTM) and not copied.stateful
    assert not isinstance(copied, kt.TBPTTLSTM)
    source = {id(v) for v in lstm_model.weights}
    assert not any(id(v) in source for v in streamer.weights)


def test_bidirectional_and_go_backwards_are_refused():
    for layer, match in [
        (keras.layers.Bidirectional(keras.layers.LSTM(2, stateful=True)), "Bidirectional"),
        (keras.layers.GRU(2, go_backwards=True), "go_backwards"),
    ]:
        model = keras.Sequential([keras.Input(batch_shape=(2, 3, 1)), layer])
        with pytest.raises(ValueError, match=match):
            kt.streaming(model)
    dense = keras.Sequential([keras.Input(batch_shape=(2, 3, 1)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="no recurrent layer"):
        kt.streaming(dense)


def test_stream_states_serves_named_streams(data, lstm_model):
    streamer = kt.streaming(lstm_model, reset_flags=True)
    streams = kt.StreamStates(streamer)
    expected = reference(lstm_model, data[:3])
    for name in "abc":
        streams.open(name)
    got = {name: [] for name in "abc"}
    for start, size in zip(np.cumsum([0] + CHUNKS[:-1]), CHUNKS):
        got["a"].append(streams.step("a", data[0, start : start + size]))
        both = streams.step(["c", "b"], data[[2, 1], start : start + size])
        got["c"].append(both[0])
        got["b"].append(both[1])
    for row, name in enumerate("abc"):
        np.testing.assert_allclose(np.concatenate(got[name]), expected[row], **TOL)
    streams.close("b")
    assert streams.names == ["a", "c"] and "b" not in streams and len(streams) == 2
    streams.reset("a")
    assert not any(state.any() for state in streams.states("a"))
    with pytest.raises(KeyError, match="open"):
        streams.step("b", data[0, :1])
    with pytest.raises(ValueError, match="already open"):
        streams.open("a")
    with pytest.raises(ValueError, match="once"):
        streams.step(["a", "a"], data[:2, :1])


# --- export round trips ------------------------------------------------------


def _export_inputs(data, reset_flags):
    rng = np.random.default_rng(0)
    inputs = [
        data[:3, :7],
        *[rng.normal(size=(3, UNITS)).astype("float32") for _ in range(2)],
    ]
    return inputs + [np.array([0, 1, 0], "float32")] if reset_flags else inputs


@pytest.fixture(scope="module", params=[True, False], ids=["reset_flags", "no_flags"])
def export_expected(request, data, lstm_model):
    """`(reset_flags, inputs, outputs)`: what a streamer of `lstm_model` gives."""
    inputs = _export_inputs(data, request.param)
    streamer = kt.streaming(lstm_model, reset_flags=request.param)
    return request.param, inputs, [to_numpy(y) for y in streamer.predict_on_batch(inputs)]


@pytest.fixture
def export_case(export_expected, lstm_model):
    """A streamer straight from `streaming`, never called before its export
    (Keras' ONNX exporter refuses a model that was never called, issue 28),
    with the inputs and the outputs that a called streamer gives them."""
    reset_flags, inputs, expected = export_expected
    return kt.streaming(lstm_model, reset_flags=reset_flags), inputs, expected


EXPORT_UNDER_TENSORFLOW = """
import sys
import numpy as np
import keras
import keras_tbptt as kt

folder, reset_flags = sys.argv[1], sys.argv[2] == "True"
model = keras.saving.load_model(folder + "/model.keras")
streamer = kt.streaming(model, reset_flags=reset_flags)  # exported straight away
streamer.export(folder + "/saved", format="tf_saved_model", verbose=False)
"""


LOAD_AND_SERVE = """
import sys
import numpy as np
import keras
import keras_tbptt  # registers its layers when Keras is imported

folder = sys.argv[1]
with np.load(folder + "/inputs.npz") as stored:
    inputs = [stored[f"arr_{i}"] for i in range(len(stored.files))]
streamer = keras.saving.load_model(folder + "/streamer.keras")
outputs = streamer.predict_on_batch(inputs)
np.savez(folder + "/outputs.npz", *[keras.ops.convert_to_numpy(y) for y in outputs])
"""


def test_streamer_saves_and_loads_in_a_fresh_process(export_case, tmp_path):
    """A streamer (with or without reset flags) is a model of registered
    layers: saved as `.keras`, a fresh process loads it and serves the same
    outputs."""
    streamer, inputs, expected = export_case
    streamer.save(tmp_path / "streamer.keras")
    np.savez(tmp_path / "inputs.npz", *inputs)
    done = subprocess.run([sys.executable, "-c", LOAD_AND_SERVE, str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(tmp_path / "outputs.npz") as loaded:
        got = [loaded[f"arr_{i}"] for i in range(len(loaded.files))]
    assert len(got) == len(expected)
    for y, want in zip(got, expected):
        np.testing.assert_allclose(y, want, **TOL)


def test_saved_model_round_trip(export_case, lstm_model, tmp_path):
    tf = pytest.importorskip("tensorflow")
    streamer, inputs, expected = export_case
    if keras.backend.backend() == "torch":
        # Keras 3.15 cannot export a model with several inputs from torch:
        # the documented way is to save it and export under TensorFlow.
        lstm_model.save(tmp_path / "model.keras")
        env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
        flags = str(any(t.name == "reset_flags" for t in streamer.inputs))
        done = subprocess.run([sys.executable, "-c", EXPORT_UNDER_TENSORFLOW, str(tmp_path), flags],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    else:
        streamer.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    outputs = reloaded.serve(inputs)
    for got, want in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, **TOL)
    # Another batch size and number of steps: both axes are dynamic.
    more = [np.concatenate([a, a]) for a in inputs]
    more[0] = np.concatenate([more[0], more[0]], axis=1)
    assert np.asarray(reloaded.serve(more)[0]).shape == (6, 14, 1)


def test_onnx_round_trip(export_case, tmp_path):
    backend = keras.backend.backend()
    needs = {"tensorflow": "tf2onnx", "jax": "jax2onnx"}.get(backend)
    if needs is None:
        pytest.skip(f"Keras {keras.__version__} cannot export a model with several inputs "
                    f"from {backend} (docs/serving.md); test_saved_model_round_trip covers "
                    "exporting what torch trained")
    for module in (needs, "onnxruntime"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"ONNX export under {backend} needs {module}, not installed")
    import onnxruntime

    streamer, inputs, expected = export_case
    path = str(tmp_path / "streamer.onnx")
    streamer.export(path, format="onnx", verbose=False)
    session = onnxruntime.InferenceSession(path)
    names = [i.name for i in session.get_inputs()]
    assert names == ["x", "lstm_h", "lstm_c", "reset_flags"][: len(inputs)]
    outputs = session.run(None, dict(zip(names, inputs)))
    for got, want in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(got, want, **TOL)


def test_litert_round_trip(export_case, tmp_path):
    backend = keras.backend.backend()
    if backend != "tensorflow":
        pytest.skip(
            f"LiteRT export from {backend}: Keras {keras.__version__} has none from JAX, "
            "and from torch it needs litert-torch (not installed) and one input"
        )
    if importlib.util.find_spec("ai_edge_litert") is None:
        pytest.skip("running a LiteRT model needs ai-edge-litert, not installed")
    from ai_edge_litert.interpreter import Interpreter

    streamer, inputs, expected = export_case
    # LiteRT needs static shapes (the TensorList of the dynamic loop needs
    # TF select ops, which the LiteRT interpreter lacks): fix streams and steps.
    signature = [[
        keras.InputSpec(shape=a.shape, dtype="float32", name=t.name)
        for t, a in zip(streamer.inputs, inputs)
    ]]
    path = str(tmp_path / "streamer.tflite")
    streamer.export(path, format="litert", verbose=False, input_signature=signature)
    runner = Interpreter(model_path=path).get_signature_runner()
    outputs = runner(**{t.name: a for t, a in zip(streamer.inputs, inputs)})
    for i, want in enumerate(expected):
        np.testing.assert_allclose(outputs[f"output_{i}"], want, **TOL)


def test_masked_steps_across_chunks(data):
    """A Masking layer: chunks starting with masked steps output the carried
    `h`, as one uninterrupted pass does."""
    keras.utils.set_random_seed(2)
    x = keras.Input(batch_shape=(2, TIMESTEPS, FEATURES))
    h = keras.layers.Masking(0.0)(x)
    h = kt.TBPTTLSTM(UNITS, stateful=True, return_sequences=True, name="lstm")(h)
    model = keras.Model(x, keras.layers.GRU(3, return_sequences=True, name="gru")(h))
    series = data[:2, :TIMESTEPS].copy()
    series[0, 3:6] = 0.0  # masked steps, the second chunk starts with them
    expected = to_numpy(model.predict_on_batch(series))
    outputs, _ = stream(kt.streaming(model), series, [4, 1, 5])
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), expected, **TOL)
