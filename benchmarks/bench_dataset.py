"""Dataset benchmark: `fit`/`evaluate`/`predict` on `plan.dataset()` vs numpy arrays.

What: batches per second of one epoch of `model.fit`, `model.evaluate` and
`model.predict` fed two ways, under TensorFlow and JAX:

- arrays (the baseline): `model.fit(plan.x, plan.y,
  sample_weight=plan.sample_weight, batch_size=plan.batch_size,
  shuffle=False, callbacks=plan.callbacks())` (the arrays are built once,
  outside the timing);
- dataset: `model.fit(plan.dataset(), shuffle=False,
  callbacks=plan.callbacks())` (the dataset is built inside the timing);
- for reference, the path `plan.dataset()` took before it became its own
  Keras data adapter: a plain `keras.utils.PyDataset` serving
  `plan.batch(j)`, read by Keras' `PyDatasetAdapter` (under TensorFlow a
  `tf.data.Dataset.from_generator`).

`evaluate` and `predict` take the same data (`predict` only `x`). Model:
`Input(batch_shape=(B, T, 1)) -> TBPTTLSTM(32, stateful=True,
return_sequences=True, **plan.layer_kwargs) -> Dense(1)`, Adam, mse.
Workloads: (a) TBPTT(1,1), `one_step` on 100 series x 500 steps x 1
feature: 500 batches of 100 x 1 step, where the per-batch overhead
dominates; (b) `naive_split` of 100 series x 5,000 steps in chunks of 50:
100 batches of 100 x 50 steps, where the LSTM dominates.

How: each backend runs in a worker process with `KERAS_BACKEND` set before
Keras is imported. Per workload, every (call, feed) pair runs once untimed
(tracing / compilation), then `--repeats` rounds run the feeds in turn for
each call, the order rotating every round. A measurement is `n` calls in a
row, each one epoch (`n` set once per workload and call so that the arrays
take about `--seconds`: short calls are noisy); batches/s = batches / wall
time. The ratio dataset / arrays is
taken within each round (the two ran back to back) and the median of those
paired ratios is reported with their spread; the same for process CPU time
(all threads), which other load on the machine disturbs less. A last table
reads one epoch of batches through each feed's Keras data adapter, without
the model (TensorFlow: `Dataset.reduce` in the graph; JAX: the Python
iterator), in microseconds per batch.

Target (issue 9): the dataset at least 0.95x the batches/s of arrays, for
fit, evaluate and predict, under both backends.

Run: `python benchmarks/bench_dataset.py [--backend jax] [--repeats N]
[--quick]` (about 8 minutes on 2 cores); writes
`benchmarks/results/bench_dataset.{json,md}` (`--quick`: a small smoke run,
results not written).
"""

import argparse
import gc
import json
import math
import platform
import statistics
import sys
import time
import warnings

from common import header, run_worker, write_results

CALLS = ("fit", "evaluate", "predict")
FEEDS = {"arrays": "numpy arrays", "dataset": "plan.dataset()",
         "pydataset": "PyDataset adapter (before)"}
WORKLOADS = {
    "a": "TBPTT(1,1): one_step, 100 series x 500 steps",
    "b": "naive_split, 100 series x 5,000 steps, chunks of 50",
}
TARGET = 0.95


# Worker side: Keras is imported only here.
def make_plan(workload, quick):
    import numpy as np

    import keras_tbptt

    n, length = (20, 60) if quick else (100, 500 if workload == "a" else 5000)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, length, 1)).astype("float32")
    y = rng.standard_normal((n, length, 1)).astype("float32")
    if workload == "a":
        return keras_tbptt.one_step(x, y)
    return keras_tbptt.naive_split(x, 10 if quick else 50, y)


def make_model(plan):
    import keras

    import keras_tbptt

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 1)),
        keras_tbptt.TBPTTLSTM(32, stateful=True, return_sequences=True, **plan.layer_kwargs),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return model


def plain_pydataset(plan):
    """`plan.batch(j)` through Keras' own PyDataset adapter (the old path)."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)

        def __len__(self):
            return len(plan)

        def __getitem__(self, index):
            x, y, weight = plan.batch(index)
            return (x, y, weight)

    return Batches()


def runner(model, plan, arrays, feed, call):
    """One call (one epoch) of `call` on `feed`."""
    x, y, weight = arrays
    kwargs = {"callbacks": plan.callbacks(), "verbose": 0}
    if call == "fit":
        kwargs["shuffle"] = False
    method = getattr(model, call)
    if feed == "arrays":
        if call == "predict":
            return lambda: method(x, batch_size=plan.batch_size, **kwargs)
        return lambda: method(x, y, sample_weight=weight, batch_size=plan.batch_size, **kwargs)
    data = plan.dataset if feed == "dataset" else lambda: plain_pydataset(plan)
    return lambda: method(data(), **kwargs)


def data_only_us(plan, arrays, feed, repeats):
    """Microseconds per batch to read one epoch through the feed's adapter."""
    import keras
    from keras.src.trainers.data_adapters import get_data_adapter

    def adapter():
        if feed == "arrays":
            return get_data_adapter(*arrays, batch_size=plan.batch_size, shuffle=False)
        data = plan.dataset() if feed == "dataset" else plain_pydataset(plan)
        return get_data_adapter(data, shuffle=False)

    def epoch():
        a = adapter()
        if keras.backend.backend() == "tensorflow":
            a.get_tf_dataset().reduce(0, lambda count, _: count + 1).numpy()
        else:
            for _ in a.get_jax_iterator():
                pass

    epoch()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        epoch()
        best = min(best, time.perf_counter() - started)
    return best / len(plan) * 1e6


def worker(repeats, seconds, quick):
    import keras
    import numpy

    warnings.filterwarnings("ignore")
    backend = keras.backend.backend()
    result = {"versions": {"python": platform.python_version(), "numpy": numpy.__version__,
                           "keras": keras.__version__,
                           backend: __import__(backend).__version__},
              "workloads": {}}
    for workload in WORKLOADS:
        plan = make_plan(workload, quick)
        arrays = (plan.x, plan.y, plan.sample_weight)
        model = make_model(plan)
        runs = {(call, feed): runner(model, plan, arrays, feed, call)
                for call in CALLS for feed in FEEDS}
        for run in runs.values():  # tracing / compilation
            run()
        calls = {}  # calls per measurement: about `seconds` of work, 1 to 20
        for call in CALLS:
            started = time.perf_counter()
            runs[call, "arrays"]()
            calls[call] = min(20, max(1, math.ceil(seconds / (time.perf_counter() - started))))
        wall = {key: [] for key in runs}
        cpu = {key: [] for key in runs}
        for r in range(repeats):
            for call in CALLS:
                order = list(FEEDS)[r % len(FEEDS):] + list(FEEDS)[:r % len(FEEDS)]
                for feed in order:
                    gc.collect()
                    started, cpu_started = time.perf_counter(), time.process_time()
                    for _ in range(calls[call]):
                        runs[call, feed]()
                    batches = calls[call] * len(plan)
                    wall[call, feed].append(batches / (time.perf_counter() - started))
                    cpu[call, feed].append(batches / (time.process_time() - cpu_started))
        data_us = {feed: data_only_us(plan, arrays, feed, max(3, repeats // 2)) for feed in FEEDS}
        result["workloads"][workload] = {
            "batches": len(plan), "batch_size": plan.batch_size, "timesteps": plan.timesteps,
            "calls_per_measurement": calls,
            "batches_per_s": {f"{c}/{f}": v for (c, f), v in wall.items()},
            "cpu_batches_per_s": {f"{c}/{f}": v for (c, f), v in cpu.items()},
            "data_only_us_per_batch": data_us,
        }
        line = ", ".join(
            f"{call} x{statistics.median(paired(wall, call, 'dataset')):.3f}" for call in CALLS)
        print(f"[{backend}] workload {workload}: dataset/arrays {line}", file=sys.stderr,
              flush=True)
        del model, runs
        keras.backend.clear_session()
    return result


def paired(values, call, feed):
    """Per-round ratios `feed` / arrays (both ran back to back)."""
    return [a / b for a, b in zip(values[call, feed], values[call, "arrays"], strict=True)]


# Parent side.
def summarise(backend, raw):
    rows = []
    for workload, w in raw["workloads"].items():
        wall = {tuple(k.split("/")): v for k, v in w["batches_per_s"].items()}
        cpu = {tuple(k.split("/")): v for k, v in w["cpu_batches_per_s"].items()}
        for call in CALLS:
            row = {"workload": workload, "call": call,
                   "median_batches_per_s": {f: statistics.median(wall[call, f]) for f in FEEDS}}
            for feed in ("dataset", "pydataset"):
                ratios, cpu_ratios = paired(wall, call, feed), paired(cpu, call, feed)
                row[feed] = {"ratio": statistics.median(ratios), "min": min(ratios),
                             "max": max(ratios), "quartiles": _quartiles(ratios),
                             "cpu_ratio": statistics.median(cpu_ratios)}
            row["met"] = row["dataset"]["ratio"] >= TARGET
            rows.append(row)
    return {"backend": backend, "versions": raw["versions"], "rows": rows,
            "workloads": raw["workloads"], "met": all(row["met"] for row in rows)}


def _quartiles(values):
    if len(values) < 2:
        return [values[0], values[0]]
    q = statistics.quantiles(values, n=4)
    return [q[0], q[2]]


def markdown(r):
    c = r["config"]
    v = {k: val for b in r["backends"] for k, val in b["versions"].items()}
    lines = [
        "# `plan.dataset()` vs numpy arrays in fit, evaluate and predict", "",
        f"- Date: {r['date']}; machine: {r['machine']}; run time {r['run_seconds']:.0f} s",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()), "",
        "Batches per second of one epoch of each call, fed numpy arrays (`plan.x`, `plan.y`, "
        "`plan.sample_weight`, built once outside the timing) or `plan.dataset()` (built inside "
        "it), both with `callbacks=plan.callbacks()`; for reference, the same batches through "
        "Keras' own `PyDataset` adapter (how `plan.dataset()` was read before). Model "
        "`TBPTTLSTM(32, stateful=True, return_sequences=True)` -> `Dense(1)`, Adam, mse. "
        "Workloads: " + "; ".join(f"({k}) {d}" for k, d in WORKLOADS.items()) + ". "
        f"{c['repeats']} rounds after an untimed one, the feeds in turn (order rotating); a "
        f"measurement is n calls in a row (n: about {c['seconds']} s of work for the arrays); "
        "ratio = median over rounds of dataset / arrays within a round (spread: min - max); "
        "CPU ratio: the same with process CPU time (all threads), less disturbed by other "
        "load on the machine.", "",
    ]
    for b in r["backends"]:
        lines += [f"## {b['backend']}", "",
                  "| workload | call | n | arrays (batches/s) | dataset (batches/s) | "
                  "dataset / arrays | spread | CPU ratio | PyDataset adapter / arrays |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for row in b["rows"]:
            d, p, m = row["dataset"], row["pydataset"], row["median_batches_per_s"]
            n = b["workloads"][row["workload"]]["calls_per_measurement"][row["call"]]
            lines.append(
                f"| ({row['workload']}) | `{row['call']}` | {n} | {m['arrays']:,.0f} | "
                f"{m['dataset']:,.0f} | **{d['ratio']:.3f}** | {d['min']:.2f} - {d['max']:.2f} | "
                f"{d['cpu_ratio']:.3f} | {p['ratio']:.3f} |")
        lines += ["", "Reading one epoch of batches through each feed's Keras data adapter, "
                  "without the model (microseconds per batch, best of several):", "",
                  "| workload | arrays | dataset | PyDataset adapter |", "|---|---:|---:|---:|"]
        for workload, w in b["workloads"].items():
            us = w["data_only_us_per_batch"]
            lines.append(f"| ({workload}) | {us['arrays']:.1f} | {us['dataset']:.1f} | "
                         f"{us['pydataset']:.1f} |")
        lines.append("")
    lines += ["## Verdict", ""]
    for b in r["backends"]:
        worst = min(b["rows"], key=lambda row: row["dataset"]["ratio"])
        lines.append(
            f"- {b['backend']}: `plan.dataset()` at least {TARGET}x the batches/s of arrays in "
            f"fit, evaluate and predict: {'**met**' if b['met'] else '**missed**'} (lowest: "
            f"({worst['workload']}) `{worst['call']}` {worst['dataset']['ratio']:.3f}; "
            + ", ".join(f"({row['workload']}) {row['call']} {row['dataset']['ratio']:.3f}"
                        for row in b["rows"]) + ")")
    return "\n".join(lines + [""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("both", "tensorflow", "jax"), default="both")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.seconds, args.quick)))
        return
    if args.quick:
        args.repeats, args.seconds = 2, 0.05
    started = time.perf_counter()
    backends = ("tensorflow", "jax") if args.backend == "both" else (args.backend,)
    results = {
        **header(),
        "config": {"repeats": args.repeats, "seconds": args.seconds,
                   "workloads": WORKLOADS, "feeds": FEEDS,
                   "calls": CALLS, "target": TARGET},
        "backends": [summarise(b, run_worker(__file__, b, args.repeats, "--seconds", args.seconds,
                                             *(["--quick"] if args.quick else [])))
                     for b in backends],
    }
    results["run_seconds"] = time.perf_counter() - started
    report = markdown(results)
    print(report)
    if not args.quick:
        write_results("bench_dataset", results, report)


if __name__ == "__main__":
    main()
