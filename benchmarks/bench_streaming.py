"""Serving a stateful model: one stream step by step, and 1,000 streams at once.

What: the streaming model of `keras_tbptt.streaming` built from a stateful
`TBPTTLSTM(32, return_sequences=True)` -> `Dense(1)` (1 feature, trained
batch size 32), run one step per call with its states fed back:
- `one stream`: batch 1, one step per call: the latency per step;
- `1,000 streams`: batch 1,000, one step of every stream per call: steps per
  second (streams x calls / time).
Compared side by side in one process per backend, from numpy inputs to
numpy outputs (states included, as a server holds them):
- `predict_on_batch`: Keras' `streamer.predict_on_batch([x, h, c])`;
- `compiled call`: the model's forward pass compiled once and called
  directly (TensorFlow: `tf.function`; JAX: `jax.jit` of `stateless_call`);
- `SavedModel`: `streamer.export(format="tf_saved_model")` reloaded with
  `tf.saved_model.load(...).serve` (TensorFlow backend);
- `onnxruntime`: `streamer.export(format="onnx")` run in an
  `onnxruntime.InferenceSession` (TensorFlow backend, through tf2onnx);
- `LiteRT`: `streamer.export(format="litert")` with the static shape
  (1, 1, 1), run with `ai_edge_litert`'s interpreter (one stream only).
Every runner's outputs are checked against `predict_on_batch` (max abs
difference reported).

How: each backend (jax, then tensorflow) runs in a worker process with
`KERAS_BACKEND` set before Keras is imported. Each runner is warmed up, then
timed over `--calls` consecutive calls, best of `--repeats` rounds
(interleaved: every round times each runner once, order rotating).

Run: `python benchmarks/bench_streaming.py [--backend tensorflow] [--quick]`
(about 2 minutes on 2 cores); writes
`benchmarks/results/bench_streaming.{json,md}` (`--quick`: a smoke run,
results not written).
"""

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings

from common import header, run_worker, write_results

UNITS = 32
RUNNERS = {
    "predict_on_batch": "Keras predict_on_batch",
    "compiled": "compiled call (tf.function / jax.jit)",
    "saved_model": "SavedModel (tf.saved_model.load)",
    "onnxruntime": "onnxruntime (ONNX export)",
    "litert": "LiteRT (static shape 1x1)",
}
CASES = {"one": 1, "many": 1000}


# Worker side: Keras is imported only here.
def build():
    import keras

    import keras_tbptt

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(batch_shape=(32, 20, 1)),
        keras_tbptt.TBPTTLSTM(UNITS, stateful=True, return_sequences=True, truncate_gradient=10),
        keras.layers.Dense(1),
    ])
    return keras_tbptt.streaming(model)


def runners(streamer, folder, streams):
    """name -> callable(list of numpy inputs) -> list of numpy outputs."""
    import keras
    import numpy as np

    found = {"predict_on_batch": lambda inputs: streamer.predict_on_batch(inputs)}
    if keras.backend.backend() == "jax":
        import jax

        # Copies: Keras' own jitted steps donate (delete) the variables' buffers.
        trainable = [np.array(v.value) for v in streamer.trainable_variables]
        frozen = [np.array(v.value) for v in streamer.non_trainable_variables]
        call = jax.jit(lambda weights, inputs: streamer.stateless_call(*weights, inputs)[0])
        weights = jax.device_put((trainable, frozen))
        found["compiled"] = lambda inputs: [np.asarray(o) for o in call(weights, inputs)]
        return found
    import tensorflow as tf

    call = tf.function(lambda inputs: streamer(inputs, training=False), reduce_retracing=True)
    found["compiled"] = lambda inputs: [o.numpy() for o in call(inputs)]
    streamer.export(f"{folder}/saved", format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(f"{folder}/saved")
    found["saved_model"] = lambda inputs: [o.numpy() for o in served.serve(inputs)]
    try:
        import onnxruntime

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            streamer.export(f"{folder}/streamer.onnx", format="onnx", verbose=False)
        options = onnxruntime.SessionOptions()
        session = onnxruntime.InferenceSession(f"{folder}/streamer.onnx", options)
        names = [i.name for i in session.get_inputs()]
        found["onnxruntime"] = lambda inputs: session.run(None, dict(zip(names, inputs)))
    except ImportError as error:
        print(f"onnxruntime skipped: {error}", file=sys.stderr)
    if streams == 1:
        try:
            from ai_edge_litert.interpreter import Interpreter

            signature = [[
                keras.InputSpec(shape=(1, 1, 1) if t.name == "x" else (1, UNITS),
                                dtype="float32", name=t.name)
                for t in streamer.inputs
            ]]
            path = f"{folder}/streamer.tflite"
            streamer.export(path, format="litert", verbose=False, input_signature=signature)
            runner = Interpreter(model_path=path).get_signature_runner()
            found["litert"] = lambda inputs: list(runner(x=inputs[0], **{
                t.name: a for t, a in zip(streamer.inputs[1:], inputs[1:])
            }).values())
        except ImportError as error:
            print(f"LiteRT skipped: {error}", file=sys.stderr)
    return found


def timed(run, inputs, calls):
    """Seconds for `calls` consecutive steps, feeding the states back."""
    x, *states = inputs
    started = time.perf_counter()
    for _ in range(calls):
        _, *states = run([x, *states])
    return time.perf_counter() - started


def worker(repeats, calls):
    import keras
    import numpy as np

    streamer = build()
    backend = keras.backend.backend()
    results = {"versions": {"python": platform.python_version(), "numpy": np.__version__,
                            "keras": keras.__version__,
                            backend: __import__(backend).__version__}}
    if backend == "tensorflow":
        for module in ("onnxruntime", "tf2onnx", "ai_edge_litert"):
            try:
                results["versions"][module] = __import__(module).__version__
            except ImportError:
                pass
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        for case, streams in CASES.items():
            inputs = [rng.standard_normal((streams, 1, 1)).astype("float32"),
                      *[rng.standard_normal((streams, UNITS)).astype("float32") / 3] * 2]
            found = runners(streamer, folder, streams)
            expected = [np.asarray(o) for o in found["predict_on_batch"](inputs)]
            diffs = {}
            for name, run in found.items():
                outputs = run(inputs)  # warm up (traces, compiles)
                outputs = run(inputs)
                diffs[name] = max(float(np.abs(np.asarray(o) - e).max())
                                  for o, e in zip(outputs, expected, strict=True))
            n = calls if streams == 1 else max(calls // 10, 20)
            seconds = {name: [] for name in found}
            names = list(found)
            for r in range(repeats):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    seconds[name].append(timed(found[name], inputs, n))
            results[case] = {"streams": streams, "calls": n, "seconds": seconds,
                             "max_abs_diff": diffs}
            print(f"[{backend}] {case}: " + ", ".join(
                f"{k} {min(v) / n * 1e6:.0f} us/call" for k, v in seconds.items()
            ), file=sys.stderr, flush=True)
    return results


# Parent side.
def report(results, elapsed):
    lines = [
        "# Serving: streaming model, one stream step by step and 1,000 streams at once",
        "",
        f"- Date: {results['date']}; machine: {results['machine']}; "
        f"run time {elapsed:.0f} s",
        "",
        f"`TBPTTLSTM({UNITS})` -> `Dense(1)`, 1 feature, one step per call, states fed back "
        "from numpy. Best of interleaved rounds; see the script's docstring for the set-up.",
    ]
    for backend, result in results["backends"].items():
        versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        lines += ["", f"## {backend}", "", f"Versions: {versions}"]
        one, many = result["one"], result["many"]
        base_one = min(one["seconds"]["predict_on_batch"]) / one["calls"]
        base_many = min(many["seconds"]["predict_on_batch"]) / many["calls"]
        lines += [
            "",
            "| runner | one stream: ms per step | vs predict_on_batch | "
            "1,000 streams: steps/s | vs predict_on_batch | max abs diff |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, label in RUNNERS.items():
            if name not in one["seconds"] and name not in many["seconds"]:
                continue
            cells = [label]
            if name in one["seconds"]:
                per = min(one["seconds"][name]) / one["calls"]
                cells += [f"{per * 1e3:.3f}", f"{base_one / per:.2f}x"]
            else:
                cells += ["-", "-"]
            if name in many["seconds"]:
                per = min(many["seconds"][name]) / many["calls"]
                cells += [f"{many['streams'] / per:,.0f}", f"{base_many / per:.2f}x"]
            else:
                cells += ["-", "-"]
            diff = max(r["max_abs_diff"].get(name, 0.0) for r in (one, many))
            cells.append(f"{diff:.1e}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=["jax", "tensorflow"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs="*")
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(*map(int, args.worker))))
        return
    if args.quick:
        args.repeats, args.calls = 1, 20
    started = time.perf_counter()
    results = {**header(),
               "args": {"repeats": args.repeats, "calls": args.calls}, "backends": {}}
    for backend in args.backend or ["jax", "tensorflow"]:
        results["backends"][backend] = run_worker(__file__, backend, args.repeats, args.calls)
    text = report(results, time.perf_counter() - started)
    print(text)
    if not args.quick:
        write_results("bench_streaming", results, text)


if __name__ == "__main__":
    main()
