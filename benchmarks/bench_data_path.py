"""Data-path benchmark: `naive_split` vs `keras.utils.timeseries_dataset_from_array`.

What: build the batches of 128 series x 8,000 steps x 4 features (timesteps
500, batch 128: 16 batches) and read every batch as a numpy array, with

- keras_tbptt: `plan = naive_split(data, 500, batch_size=128)`, then
  `np.asarray(x)` for each `x` of `plan.batches()` (views of `data`);
- Keras: `timeseries_dataset_from_array(data.reshape(-1, 4), None,
  sequence_length=500, sequence_stride=500, batch_size=128)`, then
  `batch.numpy()` for each batch.

Both give the same 2,048 windows (checked through `plan.positions`) in a
different order: the plan's batch j holds chunk j of every series (the
stateful layout), Keras' batch b holds 128 consecutive windows.

Timing includes building the plan (with its NaN/inf validation) or the
dataset. Both run side by side in one process, interleaved, after a warm-up
run, and a 200 MB buffer is touched before every run so the data is not in
cache. A second measurement also sums every value of every batch
(`float(x.sum())`), a consumer that reads the values.

Memory: peak extra memory of the plan path with `tracemalloc` (numpy
allocations are traced), in units of one batch (128 x 500 x 4 x 4 bytes).

Targets (issue 3): at least 100x faster than Keras; peak extra memory no
more than one batch.

Run: `python benchmarks/bench_data_path.py [--repeats N] [--quick]`; writes
`benchmarks/results/bench_data_path.{json,md}` (`--quick`: a small smoke
run, results not written).
"""

import argparse
import os
import platform
import statistics
import time
import tracemalloc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import header, write_results  # noqa: E402

import keras_tbptt  # noqa: E402


def plan_path(data, timesteps, batch_size, consume):
    plan = keras_tbptt.naive_split(data, timesteps, batch_size=batch_size)
    return [consume(np.asarray(x)) for x, _, _ in plan.batches()]


def keras_path(data, timesteps, batch_size, consume):
    dataset = keras.utils.timeseries_dataset_from_array(
        data.reshape(-1, data.shape[-1]), None, sequence_length=timesteps,
        sequence_stride=timesteps, batch_size=batch_size,
    )
    return [consume(batch.numpy()) for batch in dataset]


def check_same_windows(data, timesteps, batch_size):
    plan = keras_tbptt.naive_split(data, timesteps, batch_size=batch_size)
    keras_windows = np.concatenate(keras_path(data, timesteps, batch_size, lambda a: a))
    per_series = data.shape[1] // timesteps
    for sample, (series, start) in enumerate(plan.positions):
        window = keras_windows[series * per_series + start // timesteps]
        np.testing.assert_array_equal(plan.x[sample], window)
    return len(plan), len(keras_windows)


def interleaved(functions, repeats):
    """Median and min seconds of each function, run in turn `repeats` times."""
    flush = np.ones(50_000_000, dtype=np.float32)  # 200 MB, larger than caches
    times = {name: [] for name in functions}
    for function in functions.values():
        function()  # warm-up: imports, tf.function tracing
    for repeat in range(repeats):
        order = list(functions) if repeat % 2 == 0 else list(functions)[::-1]
        for name in order:
            flush += 1
            started = time.perf_counter()
            functions[name]()
            times[name].append(time.perf_counter() - started)
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def plan_peak_bytes(data, timesteps, batch_size):
    tracemalloc.start()
    plan_path(data, timesteps, batch_size, lambda a: a)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    series, steps, features, timesteps, batch_size = (128, 8000, 4, 500, 128)
    if args.quick:
        series, steps, batch_size, args.repeats = 8, 1000, 8, 2
    data = np.random.default_rng(0).normal(size=(series, steps, features)).astype("float32")
    batch_bytes = batch_size * timesteps * features * 4

    n_plan, n_keras = check_same_windows(data, timesteps, batch_size)
    print(f"same {n_plan * batch_size} windows in {n_plan} (plan) and "
          f"{-(-n_keras // batch_size)} (Keras) batches")

    def read(a):
        return a

    def total(a):
        return float(a.sum())

    timings = interleaved(
        {
            "plan, read": lambda: plan_path(data, timesteps, batch_size, read),
            "keras, read": lambda: keras_path(data, timesteps, batch_size, read),
            "plan, read + sum": lambda: plan_path(data, timesteps, batch_size, total),
            "keras, read + sum": lambda: keras_path(data, timesteps, batch_size, total),
        },
        args.repeats,
    )
    peak = plan_peak_bytes(data, timesteps, batch_size)
    results = {
        **header(),
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "keras": keras.__version__, "backend": keras.backend.backend()},
        "config": {"series": series, "steps": steps, "features": features,
                   "timesteps": timesteps, "batch_size": batch_size,
                   "batches": n_plan, "repeats": args.repeats},
        "seconds": {name: {"median": m, "min": lo} for name, (m, lo) in timings.items()},
        "speedup": {
            kind: timings[f"keras, {kind}"][0] / timings[f"plan, {kind}"][0]
            for kind in ("read", "read + sum")
        },
        "plan_peak_bytes": peak,
        "plan_peak_in_batches": peak / batch_bytes,
    }
    report = markdown(results)
    print(report)
    if not args.quick:
        write_results("bench_data_path", results, report)


def markdown(r):
    c, s, speed = r["config"], r["seconds"], r["speedup"]
    rows = "\n".join(
        f"| {name} | {v['median'] * 1e3:.2f} | {v['min'] * 1e3:.2f} |" for name, v in s.items()
    )
    read_ok = speed["read"] >= 100
    memory_ok = r["plan_peak_in_batches"] <= 1
    return f"""# Data path: `naive_split` vs `timeseries_dataset_from_array`

- Date: {r['date']}; machine: {r['machine']}
- Versions: {r['versions']}
- Data: {c['series']} series x {c['steps']} steps x {c['features']} features (float32),
  timesteps {c['timesteps']}, batch {c['batch_size']}: {c['batches']} batches; the same
  windows on both paths (checked). {c['repeats']} interleaved repeats, cold cache.

| path | median (ms) | min (ms) |
|---|---:|---:|
{rows}

- **Build and read every batch as a numpy array: {speed['read']:.0f}x faster than Keras**
  (target 100x: {'met' if read_ok else 'missed'}).
- Also summing every value (a consumer that reads the data): {speed['read + sum']:.0f}x;
  the sums themselves cost about the same on both paths, which bounds this ratio.
- **Peak extra memory of the plan path: {r['plan_peak_bytes']:,} bytes =
  {r['plan_peak_in_batches']:.3f} batch** (target at most 1 batch:
  {'met' if memory_ok else 'missed'}): batches are views of the data, and
  validation (a NaN/inf screen by a dot product of the data with itself) allocates
  nothing the size of the data.
"""


if __name__ == "__main__":
    main()
