"""Forward-only unlabelled chunks: `skip_unweighted(model)` vs `SkipUnweightedBatches`.

What: recordings per second of training the chunked classifier of
`bench_classification.py` (64 random recordings of 3,000 steps and 2
channels, one label each, `naive_split` chunks of 250: 12 chunks per
recording, 24 batches of 32 per epoch, 22 of them without weight; stateful
`TBPTTLSTM(32) -> Dense(1, sigmoid)`, Adam(1e-3), binary cross-entropy,
weighted accuracy), four ways:

- `optimizer_cb`: `SkipUnweightedBatches(Adam)`, `plan.callbacks()` (no
  update on the unlabelled chunks, but Keras' full train step: their
  backward pass runs);
- `forward_only_cb`: `skip_unweighted(model)` with plain Adam,
  `plan.callbacks()` (a forward-only step on the unlabelled chunks);
- `optimizer_flags`, `forward_only_flags`: the same two on
  `with_reset_flags` and `plan.dataset(reset_flags=True)`.

Both give the same weights (tests/test_skip_unweighted_model.py).

How: one worker process per backend (TensorFlow, then JAX), pinned to one
core with one thread per kernel (`TF_NUM_INTRAOP_THREADS=1`,
`XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1`): on a shared machine one thread on one
core is much steadier. Each way trains one untimed epoch (tracing), then
one untimed interleaved round, then `--repeats` rounds running the four
ways in turn, the order rotating every round; a measurement is one epoch of
`model.fit(..., epochs=1)` from `on_epoch_begin` to `on_epoch_end`.
Reported: the median epoch (recordings/s = 64 / median epoch time) and the
ratio forward-only / optimizer-only on each path.

Run: `python benchmarks/bench_skip_unweighted.py [--backend jax] [--quick]`
(about 4 minutes); writes `benchmarks/results/bench_skip_unweighted.{json,md}`
(`--quick`: a small smoke run, results not written).
"""

import argparse
import gc
import json
import platform
import statistics
import sys
import time

from common import ONE_THREAD, header, pin_to_one_core, run_worker, write_results

WAYS = {
    "optimizer_cb": "SkipUnweightedBatches(Adam), plan.callbacks()",
    "forward_only_cb": "skip_unweighted(model), Adam, plan.callbacks()",
    "optimizer_flags": "SkipUnweightedBatches(Adam), with_reset_flags",
    "forward_only_flags": "skip_unweighted(with_reset_flags(model)), Adam",
}
PAIRS = (("optimizer_cb", "forward_only_cb", "callbacks"),
         ("optimizer_flags", "forward_only_flags", "reset flags"))
RECORDINGS, CHANNELS, UNITS, BATCH, CHUNK = 64, 2, 32, 32, 250


# Worker side: Keras is imported only here.
def build(way, length):
    """A function training one epoch of `way`; returns the epoch's seconds."""
    import keras
    import numpy as np

    import keras_tbptt

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_s = time.perf_counter() - self.started

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, RECORDINGS).astype("float32")
    x = rng.standard_normal((RECORDINGS, length, CHANNELS), dtype="float32")
    x[:, :, 0] += 0.05 * (2 * labels[:, None] - 1)
    plan = keras_tbptt.naive_split(x, CHUNK, labels, batch_size=BATCH)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(batch_shape=(plan.batch_size, plan.timesteps, CHANNELS)),
        keras_tbptt.TBPTTLSTM(UNITS, stateful=True, **plan.layer_kwargs),
        keras.layers.Dense(1, activation="sigmoid")])
    flags = way.endswith("_flags")
    if flags:
        model = keras_tbptt.with_reset_flags(model)
    optimizer = keras.optimizers.Adam(1e-3)
    if way.startswith("forward_only"):
        model = keras_tbptt.skip_unweighted(model)
    else:
        optimizer = keras_tbptt.SkipUnweightedBatches(optimizer)
    model.compile(optimizer=optimizer, loss="binary_crossentropy",
                  weighted_metrics=["accuracy"])
    timer = Timer()
    data = plan.dataset(reset_flags=flags)
    callbacks = [timer] if flags else [*plan.callbacks(), timer]

    def fit():
        gc.collect()
        model.fit(data, callbacks=callbacks, shuffle=False, epochs=1, verbose=0)
        return timer.epoch_s

    return fit


def timing_worker(length, repeats):
    import keras
    import numpy

    backend = keras.backend.backend()
    result = {"versions": {"python": platform.python_version(), "numpy": numpy.__version__,
                           "keras": keras.__version__,
                           backend: __import__(backend).__version__},
              "epoch_s": {way: [] for way in WAYS}}
    fits = {way: build(way, length) for way in WAYS}
    for way in WAYS:
        fits[way]()  # tracing / compilation
    for way in WAYS:  # one untimed interleaved round
        fits[way]()
    for r in range(repeats):
        order = list(WAYS)[r % len(WAYS):] + list(WAYS)[:r % len(WAYS)]
        for way in order:
            result["epoch_s"][way].append(fits[way]())
    print(f"[{backend}] median epoch "
          + ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in result["epoch_s"].items()),
          file=sys.stderr, flush=True)
    return result


# Parent side.
def run_backend(backend, args):
    timing = run_worker(__file__, backend, "timing", args.length, args.repeats, env=ONE_THREAD)
    rows = []
    for way in WAYS:
        epoch_s = timing["epoch_s"][way]
        median = statistics.median(epoch_s)
        rows.append({"way": way, "epoch_s": epoch_s, "median_epoch_s": median,
                     "recordings_per_s": RECORDINGS / median})
    speed = {row["way"]: row["recordings_per_s"] for row in rows}
    ratios = {path: speed[fast] / speed[slow] for slow, fast, path in PAIRS}
    return {"backend": backend, "versions": timing["versions"], "rows": rows,
            "forward_only_over_optimizer": ratios}


def markdown(r):
    c = r["config"]
    v = {k: val for b in r["backends"] for k, val in b["versions"].items()}
    lines = [
        "# Forward-only unlabelled chunks: skip_unweighted vs SkipUnweightedBatches", "",
        f"- Date: {r['date']}; machine: {r['machine']}; load average {r['load_average']}; "
        f"run time {r['run_seconds']:.0f} s",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()), "",
        f"{RECORDINGS} recordings of {c['length']} steps x {CHANNELS} channels, one label each, "
        f"`naive_split` chunks of {CHUNK} (batches of {BATCH}, all but the last chunk of each "
        f"recording unweighted), stateful `TBPTTLSTM({UNITS})` -> `Dense(1, sigmoid)`, Adam. "
        "One core, one thread per kernel. Epoch: `on_epoch_begin` to `on_epoch_end` of "
        f"`model.fit(..., epochs=1)`, median of {c['repeats']} interleaved rounds (order "
        "rotating) after an untimed tracing epoch and an untimed round; recordings/s = "
        f"{RECORDINGS} / median epoch.", "",
        "| way | what |", "|---|---|",
    ]
    lines += [f"| `{way}` | {what} |" for way, what in WAYS.items()]
    lines.append("")
    for b in r["backends"]:
        lines += [f"## {b['backend']}", "",
                  "| way | epoch, median (s) | recordings/s |", "|---|---:|---:|"]
        lines += [f"| `{row['way']}` | {row['median_epoch_s']:.2f} | "
                  f"{row['recordings_per_s']:.1f} |" for row in b["rows"]]
        lines += ["", "| recordings/s, forward-only / SkipUnweightedBatches | ratio |",
                  "|---|---:|"]
        lines += [f"| {path} | {q:.2f} |"
                  for path, q in b["forward_only_over_optimizer"].items()]
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("both", "tensorflow", "jax"), default="both")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:  # "timing LENGTH REPEATS"
        pin_to_one_core()
        print(json.dumps(timing_worker(int(args.worker[1]), int(args.worker[2]))))
        return
    args.length = 3000
    if args.quick:
        args.length, args.repeats = 500, 1
    started = time.perf_counter()
    backends = ("tensorflow", "jax") if args.backend == "both" else (args.backend,)
    results = {
        **header(),
        "config": {"length": args.length, "recordings": RECORDINGS, "channels": CHANNELS,
                   "units": UNITS, "batch": BATCH, "chunk": CHUNK,
                   "repeats": args.repeats, "ways": WAYS, "one_core": True},
        "backends": [run_backend(b, args) for b in backends],
    }
    results["run_seconds"] = time.perf_counter() - started
    report = markdown(results)
    print(report)
    if not args.quick:
        write_results("bench_skip_unweighted", results, report)


if __name__ == "__main__":
    main()
