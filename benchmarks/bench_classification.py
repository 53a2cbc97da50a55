"""Classification benchmark: one label per 3,000-step recording, five ways.

What: time per epoch and peak memory of training a binary classifier,
`LSTM(32) -> Dense(1, sigmoid)` (Adam(1e-3), binary cross-entropy, weighted
accuracy), on 64 random recordings of 3,000 steps and 2 channels, one label
each, batches of 32 recordings:

- `chunked`: `naive_split(x, 250, labels, batch_size=32)` (12 chunks per
  recording, 24 batches per epoch, 22 of them without weight), stateful
  `TBPTTLSTM(32)`, `SkipUnweightedBatches(Adam)`, `plan.dataset()` and
  `plan.callbacks()`;
- `decoupled`: one sample per recording, `TBPTTLSTM(32,
  truncate_gradient=250)` (forward over all 3,000 steps, backward through
  the last 250);
- `full`: one sample per recording, `keras.layers.LSTM(32)` over all 3,000
  steps (full BPTT);
- `truncate`: the last 250 steps only (`keras.layers.LSTM`);
- `downsample`: every 12th step, 250 steps (`keras.layers.LSTM`).

How: each backend (tensorflow, then jax) runs in worker processes with
`KERAS_BACKEND` set before Keras is imported; the parent imports no Keras.

- Timing (one worker per backend): each way trains one untimed epoch
  (tracing / compilation), then one untimed interleaved round, then
  `--repeats` rounds running the five ways in turn, the order rotating every
  round; a measurement is the one epoch of a `model.fit(..., epochs=1)` call,
  from `on_epoch_begin` to `on_epoch_end` (every batch with its data
  pipeline and callbacks; not the set-up of `fit` itself). Reported:
  the best (smallest) and the median epoch time; ratios use the best, the
  figure least disturbed by other work on the machine.
- Memory (a fresh process per backend and way, `--memory-repeats` runs,
  median): baseline RSS after the imports, building and compiling the model
  and making the data; peak RSS (`ru_maxrss`) over one training epoch minus
  that baseline. It includes the first epoch's tracing / compilation.

Run: `python benchmarks/bench_classification.py [--backend jax] [--quick]`
(about 6 minutes on 2 busy cores); writes
`benchmarks/results/bench_classification.{json,md}` (`--quick`: a small
smoke run, results not written).
"""

import argparse
import gc
import json
import platform
import statistics
import sys
import time

from common import header, memory_rounds, peak_memory, run_worker, write_results

WAYS = {
    "chunked": "naive_split chunks of 250, stateful TBPTTLSTM, SkipUnweightedBatches(Adam)",
    "decoupled": "one sample per recording, TBPTTLSTM(truncate_gradient=250)",
    "full": "one sample per recording, keras.layers.LSTM (full BPTT)",
    "truncate": "last 250 steps, keras.layers.LSTM",
    "downsample": "every 12th step (250 steps), keras.layers.LSTM",
}
RECORDINGS, CHANNELS, UNITS, BATCH, CHUNK, K2 = 64, 2, 32, 32, 250, 250


# Worker side: Keras is imported only here.
def EpochTimer():
    """A callback keeping, in `epoch_s`, the time from on_epoch_begin to on_epoch_end."""
    import keras

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_s = time.perf_counter() - self.started

    return Timer()


def build(way, length):
    """`(model, fit)`: a compiled model and a function training one epoch
    (it returns the epoch's time in seconds)."""
    import keras
    import numpy as np

    import keras_tbptt

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, RECORDINGS).astype("float32")
    x = rng.standard_normal((RECORDINGS, length, CHANNELS), dtype="float32")
    x[:, :, 0] += 0.05 * (2 * labels[:, None] - 1)
    keras.utils.set_random_seed(0)
    timer = EpochTimer()
    head = keras.layers.Dense(1, activation="sigmoid")
    optimizer = keras.optimizers.Adam(1e-3)
    if way == "chunked":
        plan = keras_tbptt.naive_split(x, CHUNK, labels, batch_size=BATCH)
        model = keras.Sequential([
            keras.Input(batch_shape=(plan.batch_size, plan.timesteps, CHANNELS)),
            keras_tbptt.TBPTTLSTM(UNITS, stateful=True, **plan.layer_kwargs), head])
        model.compile(optimizer=keras_tbptt.SkipUnweightedBatches(optimizer),
                      loss="binary_crossentropy", weighted_metrics=["accuracy"])

        def fit():
            model.fit(plan.dataset(), callbacks=[*plan.callbacks(), timer],
                      shuffle=False, epochs=1, verbose=0)
            return timer.epoch_s

        return model, fit
    step = length // CHUNK if way == "downsample" else 1
    inputs = {"truncate": x[:, -CHUNK:], "downsample": x[:, ::step]}.get(way, x)
    inputs = np.ascontiguousarray(inputs)
    if way == "decoupled":
        rnn = keras_tbptt.TBPTTLSTM(UNITS, truncate_gradient=K2)
    else:
        rnn = keras.layers.LSTM(UNITS)
    model = keras.Sequential([keras.Input(shape=inputs.shape[1:]), rnn, head])
    model.compile(optimizer=optimizer, loss="binary_crossentropy",
                  weighted_metrics=["accuracy"])

    def fit():
        model.fit(inputs, labels, batch_size=BATCH, shuffle=False, epochs=1,
                  callbacks=[timer], verbose=0)
        return timer.epoch_s

    return model, fit


def time_epoch(fit):
    gc.collect()
    return fit()


def timing_worker(length, repeats):
    import keras
    import numpy

    backend = keras.backend.backend()
    result = {"versions": {"python": platform.python_version(), "numpy": numpy.__version__,
                           "keras": keras.__version__,
                           backend: __import__(backend).__version__},
              "epoch_s": {way: [] for way in WAYS}}
    fits = {}
    for way in WAYS:
        fits[way] = build(way, length)[1]
        fits[way]()  # tracing / compilation
    for way in WAYS:  # one untimed interleaved round
        time_epoch(fits[way])
    for r in range(repeats):
        order = list(WAYS)[r % len(WAYS):] + list(WAYS)[:r % len(WAYS)]
        for way in order:
            result["epoch_s"][way].append(time_epoch(fits[way]))
    print(f"[{backend}] best epoch "
          + ", ".join(f"{k} {min(v):.2f} s" for k, v in result["epoch_s"].items()),
          file=sys.stderr, flush=True)
    return result


def memory_worker(length, way):
    _, fit = build(way, length)
    gc.collect()
    return peak_memory(fit)


# Parent side.
def run_backend(backend, args):
    timing = run_worker(__file__, backend, "timing", args.length, args.repeats)
    memory = memory_rounds(__file__, backend, [(args.length, way) for way in WAYS],
                           args.memory_repeats)
    rows = []
    for way in WAYS:
        epoch_s = timing["epoch_s"][way]
        rows.append({"way": way, "epoch_s": epoch_s, "best_epoch_s": min(epoch_s),
                     "median_epoch_s": statistics.median(epoch_s),
                     **memory[args.length, way]})
    return {"backend": backend, "versions": timing["versions"], "rows": rows,
            "ratios": ratios(rows)}


def ratios(rows):
    step = {row["way"]: row["best_epoch_s"] for row in rows}
    mem = {row["way"]: row["peak_mem_bytes"] for row in rows}
    return {"time_chunked_over_decoupled": step["chunked"] / step["decoupled"],
            "time_full_over_decoupled": step["full"] / step["decoupled"],
            "time_full_over_chunked": step["full"] / step["chunked"],
            "mem_chunked_over_decoupled": mem["chunked"] / mem["decoupled"],
            "mem_decoupled_over_full": mem["decoupled"] / mem["full"],
            "mem_chunked_over_full": mem["chunked"] / mem["full"]}


def markdown(r):
    c = r["config"]
    v = {k: val for b in r["backends"] for k, val in b["versions"].items()}
    lines = [
        "# Long-sequence classification: chunked vs decoupled vs full BPTT", "",
        f"- Date: {r['date']}; machine: {r['machine']}; run time {r['run_seconds']:.0f} s",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()), "",
        f"{RECORDINGS} recordings of {c['length']} steps x {CHANNELS} channels, one label each, "
        f"batches of {BATCH} recordings, `LSTM({UNITS})` -> `Dense(1, sigmoid)`, Adam, binary "
        "cross-entropy. Epoch time: `on_epoch_begin` to `on_epoch_end` of "
        "`model.fit(..., epochs=1)` (every batch with its data pipeline and callbacks): "
        f"best and median of {c['repeats']} interleaved rounds (order rotating) after an untimed tracing epoch and an untimed round. Memory: peak RSS "
        "(`ru_maxrss`) over one training epoch minus the RSS before it, in a fresh process "
        f"per backend and way (median of {c['memory_repeats']}); it includes the first "
        "epoch's tracing / compilation.", "",
        "| way | what |", "|---|---|",
    ]
    lines += [f"| `{way}` | {what} |" for way, what in WAYS.items()]
    lines.append("")
    for b in r["backends"]:
        lines += [f"## {b['backend']}", "",
                  "| way | epoch, best (s) | epoch, median (s) | peak memory (MiB) |",
                  "|---|---:|---:|---:|"]
        lines += [f"| `{row['way']}` | {row['best_epoch_s']:.2f} | {row['median_epoch_s']:.2f} | "
                  f"{row['peak_mem_bytes'] / 2**20:.1f}"
                  f"{'' if row['peak_set_by_training'] else '*'} |" for row in b["rows"]]
        q = b["ratios"]
        lines += ["", "| ratio | value |", "|---|---:|",
                  f"| epoch time chunked / decoupled | {q['time_chunked_over_decoupled']:.2f} |",
                  f"| epoch time full BPTT / decoupled | {q['time_full_over_decoupled']:.2f} |",
                  f"| epoch time full BPTT / chunked | {q['time_full_over_chunked']:.2f} |",
                  f"| peak memory chunked / decoupled | {q['mem_chunked_over_decoupled']:.2f} |",
                  f"| peak memory decoupled / full BPTT | {q['mem_decoupled_over_full']:.2f} |",
                  f"| peak memory chunked / full BPTT | {q['mem_chunked_over_full']:.2f} |"]
        if not all(row["peak_set_by_training"] for row in b["rows"]):
            lines += ["", "\\* the process peaked before training: an upper bound."]
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("both", "tensorflow", "jax"), default="both")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--memory-repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:  # "timing LENGTH REPEATS" or "memory LENGTH WAY"
        mode, length, rest = args.worker[0], int(args.worker[1]), args.worker[2]
        result = (timing_worker(length, int(rest)) if mode == "timing"
                  else memory_worker(length, rest))
        print(json.dumps(result))
        return
    args.length = 3000
    if args.quick:
        args.length, args.repeats, args.memory_repeats = 500, 2, 1
    started = time.perf_counter()
    backends = ("tensorflow", "jax") if args.backend == "both" else (args.backend,)
    results = {
        **header(),
        "config": {"length": args.length, "recordings": RECORDINGS, "channels": CHANNELS,
                   "units": UNITS, "batch": BATCH, "chunk": CHUNK, "k2": K2,
                   "repeats": args.repeats, "memory_repeats": args.memory_repeats,
                   "ways": WAYS},
        "backends": [run_backend(b, args) for b in backends],
    }
    results["run_seconds"] = time.perf_counter() - started
    report = markdown(results)
    print(report)
    if not args.quick:
        write_results("bench_classification", results, report)


if __name__ == "__main__":
    main()
