"""Data path benchmark: `keras_tbptt.naive_split` vs `timeseries_dataset_from_array`.

What is measured
----------------
The time and peak extra memory of *building a plan and reading every batch
as a numpy array*, for a float32 panel `data` of shape
`[series, steps, features]` (default 128 x 8,000 x 4, random normal):

* keras_tbptt path::

      plan = keras_tbptt.naive_split(data, timesteps, batch_size=batch)
      for x, _, _ in plan.batches():
          consume(np.asarray(x))

* Keras path, over the same `series * steps` x `features` values
  (`data.reshape(-1, features)`)::

      ds = keras.utils.timeseries_dataset_from_array(
          flat, None, sequence_length=timesteps, sequence_stride=timesteps,
          batch_size=batch)
      for batch in ds:
          consume(batch.numpy())

`consume(a)` is `float(a.sum())` for both paths, so lazy views (the plan's
batches are strided views of `data`) are really read. With the defaults
(timesteps 500, batch 128) both paths yield 16 batches of `[128, 500, 4]`.

Same windows, different order
-----------------------------
Because `steps` is a multiple of `timesteps`, stride-`timesteps` windows over
the flattened array never straddle two series, so both paths produce the
same 2,048 windows `data[s, c*500:(c+1)*500]` (s = series, c = chunk):

* Keras takes windows in memory order: window `w` is series `w // 16`,
  chunk `w % 16`, so batch `b` holds windows `128b .. 128b+127`, i.e. all
  16 chunks of series `8b .. 8b+7`.
* The plan uses the stateful layout: batch `j` holds chunk `j` of every one
  of the 128 series (row `i` of batch `j+1` continues row `i` of batch `j`,
  so an LSTM can carry its state), i.e. `plan.positions[k] = (k % 128,
  500 * (k // 128))`.

The script checks (outside the timed runs) that both yield the expected
number of batches, that every plan sample equals the Keras window
`w = (s * steps + start) // timesteps` given by `plan.positions`, that these
`w` are a permutation of all windows, and that each plan sample equals
`data[s, start:start + timesteps]`.

How
---
One process, the default TensorFlow backend (`--backend` to change). One
untimed cold run of each path first (reported as "cold": the first Keras run
pays tf.data's one-off setup), then `--repeats` timed rounds, interleaved
(plan then Keras, Keras then plan, alternating), `time.perf_counter`,
`gc.collect()` before every run. Reported: median and min seconds per path
and the ratio Keras / plan (of the medians, and of the mins). An
informational breakdown times the plan's parts (build only, batches as views
without consumption, consumption alone) and Keras without consumption.

Memory: the plan path's peak extra memory is measured with `tracemalloc`
(numpy reports its array buffers to it) from just before `naive_split` to
the end of the loop, split into the build and the read phases, and compared
with one batch (`batch * timesteps * features * 4` bytes, 1,024,000 by
default). For both paths the peak RSS increase is also sampled with psutil
(a thread reading RSS every 0.5 ms) as information; TensorFlow's allocations
are invisible to tracemalloc. A memory-only scaling check repeats the plan
measurement for longer series (`--scaling-steps`) with the same batch shape:
a data path whose extra memory is bounded by one batch must not grow there.

Target (from the issue)
-----------------------
At least 100x faster than the Keras path, and peak extra memory no more
than one batch.

Usage: `python benchmarks/bench_data_path.py [--quick]` from the repo root;
writes `benchmarks/results/bench_data_path.{json,md}` (`--quick` writes
`bench_data_path_quick.*` so the committed full-size results are kept).
"""

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import threading
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_SPEEDUP = 100.0
TARGET_MEMORY_BATCHES = 1.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--series", type=int, default=128)
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--features", type=int, default=4)
    p.add_argument("--timesteps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=7, help="timed rounds")
    p.add_argument(
        "--scaling-steps",
        type=int,
        nargs="*",
        default=[32000],
        help="extra series lengths for the memory-only scaling check",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="tensorflow", choices=["tensorflow", "jax"])
    p.add_argument("--out-dir", default=str(HERE / "results"))
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny smoke run (16 x 1,000 x 4, timesteps 100, batch 16, 2 repeats)",
    )
    if p.parse_known_args(argv)[0].quick:  # smoke sizes; explicit flags still win
        p.set_defaults(series=16, steps=1000, features=4, timesteps=100, batch_size=16,
                       repeats=2, scaling_steps=[4000])
    args = p.parse_args(argv)
    if args.steps % args.timesteps:
        p.error("--steps must be a multiple of --timesteps (same windows in both paths)")
    if args.series % args.batch_size:
        p.error("--series must be a multiple of --batch-size (same batch count)")
    for s in args.scaling_steps:
        if s % args.timesteps:
            p.error("--scaling-steps must be multiples of --timesteps")
    return args


# ----------------------------------------------------------------------
# The two paths (identical consumption)
def consume(a):
    return float(a.sum())


def plan_path(data, timesteps, batch_size):
    import keras_tbptt

    plan = keras_tbptt.naive_split(data, timesteps, batch_size=batch_size)
    n, total = 0, 0.0
    for x, _, _ in plan.batches():
        total += consume(np.asarray(x))
        n += 1
    return n, total


def keras_path(flat, timesteps, batch_size):
    ds = keras.utils.timeseries_dataset_from_array(
        flat,
        None,
        sequence_length=timesteps,
        sequence_stride=timesteps,
        batch_size=batch_size,
    )
    n, total = 0, 0.0
    for batch in ds:
        total += consume(batch.numpy())
        n += 1
    return n, total


# Informational parts of the plan path and Keras without consumption.
def plan_build_only(data, timesteps, batch_size):
    import keras_tbptt

    return keras_tbptt.naive_split(data, timesteps, batch_size=batch_size)


def validation_only(data):
    """`naive_split`'s input validation alone (private API; None if it moved)."""
    try:
        from keras_tbptt._inputs import as_panel
    except ImportError:  # pragma: no cover
        return None
    return as_panel(data)


def plan_views_only(plan):
    n = 0
    for x, _, _ in plan.batches():
        np.asarray(x)
        n += 1
    return n


def consume_only(batches):
    return sum(consume(b) for b in batches)


def keras_no_consume(flat, timesteps, batch_size):
    ds = keras.utils.timeseries_dataset_from_array(
        flat, None, sequence_length=timesteps, sequence_stride=timesteps,
        batch_size=batch_size,
    )
    return sum(1 for b in ds if b.numpy() is not None)


def timed(fn, *a):
    gc.collect()
    t0 = time.perf_counter()
    out = fn(*a)
    return time.perf_counter() - t0, out


def package_fingerprint():
    """sha256 (first 12 hex) of keras_tbptt's .py sources: which code was measured."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted((ROOT / "keras_tbptt").rglob("*.py")):
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


class BackgroundLoad:
    """CPU used by *other* processes while we run (a shared machine skews timings).

    System-wide busy CPU seconds (psutil) minus this process' and its waited-for
    children's CPU seconds, divided by wall time: average cores used by others.
    """

    def __enter__(self):
        self._b0, self._o0 = self._busy(), self._own()
        self._w0 = time.perf_counter()
        self.loadavg_start = os.getloadavg()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self._w0
        others = (self._busy() - self._b0) - (self._own() - self._o0)
        self.result = {
            "wall_s": wall,
            "others_avg_cores": max(0.0, others / wall) if wall > 0 else 0.0,
            "loadavg_start": list(self.loadavg_start),
            "loadavg_end": list(os.getloadavg()),
        }

    @staticmethod
    def _busy():
        import psutil

        t = psutil.cpu_times()
        return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)

    @staticmethod
    def _own():
        import resource

        s = resource.getrusage(resource.RUSAGE_SELF)
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


# ----------------------------------------------------------------------
# Memory helpers
class RSSPeak:
    """Sample this process' RSS every `interval` s in a thread; keep the max."""

    def __init__(self, interval=0.0005):
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()

    def __enter__(self):
        gc.collect()
        self.base = self._proc.memory_info().rss
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self._interval)

    def __exit__(self, *exc):
        self.peak = max(self.peak, self._proc.memory_info().rss)
        self._stop.set()
        self._thread.join()

    @property
    def extra(self):
        return self.peak - self.base


def plan_tracemalloc(data, timesteps, batch_size):
    """Peak traced bytes above the start: build phase, read phase, overall."""
    import keras_tbptt

    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        plan = keras_tbptt.naive_split(data, timesteps, batch_size=batch_size)
        build_current, build_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        n, total = 0, 0.0
        for x, _, _ in plan.batches():
            total += consume(np.asarray(x))
            n += 1
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return {
        "build_peak": build_peak - base,
        "plan_retained": build_current - base,
        "read_peak": read_peak - base,
        "overall_peak": max(build_peak, read_peak) - base,
        "batches": n,
    }


# ----------------------------------------------------------------------
# Correctness: same windows
def check_same_windows(data, flat, args, n_plan, n_keras):
    import keras_tbptt

    expected = (args.series // args.batch_size) * (args.steps // args.timesteps)
    assert n_plan == expected, f"plan yielded {n_plan} batches, expected {expected}"
    assert n_keras == expected, f"keras yielded {n_keras} batches, expected {expected}"
    plan = keras_tbptt.naive_split(data, args.timesteps, batch_size=args.batch_size)
    plan_x = np.concatenate([np.asarray(x) for x, _, _ in plan.batches()])
    ds = keras.utils.timeseries_dataset_from_array(
        flat, None, sequence_length=args.timesteps,
        sequence_stride=args.timesteps, batch_size=args.batch_size,
    )
    keras_batches = [b.numpy() for b in ds]
    keras_x = np.concatenate(keras_batches)
    assert plan_x.shape == keras_x.shape, (plan_x.shape, keras_x.shape)
    pos = plan.positions
    assert (pos >= 0).all(), "no filler rows expected"
    w = (pos[:, 0] * args.steps + pos[:, 1]) // args.timesteps
    assert np.array_equal(np.sort(w), np.arange(len(keras_x))), "not a permutation"
    assert np.array_equal(plan_x, keras_x[w]), "plan samples differ from Keras windows"
    for k in range(0, len(pos), max(1, len(pos) // 64)):
        s, start = pos[k]
        assert np.array_equal(plan_x[k], data[s, start : start + args.timesteps])
    same_order = bool(np.array_equal(w, np.arange(len(w))))
    return {
        "batches": int(n_plan),
        "windows": int(len(w)),
        "same_set_of_windows": True,
        "same_order": same_order,
        "plan_batch0_positions": pos[: min(3, len(pos))].tolist(),
        "keras_batch0_windows_series": sorted(
            set((np.arange(args.batch_size) * args.timesteps // args.steps).tolist())
        ),
    }


# ----------------------------------------------------------------------
def machine_info():
    import numpy

    info = {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "keras_tbptt_sources_sha256": package_fingerprint(),
    }
    try:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
    except ImportError:  # pragma: no cover
        pass
    if info["backend"] == "jax":
        import jax

        info["jax"] = jax.__version__
    try:
        import psutil

        info["ram_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover
        pass
    return info


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt_s(x):
    return f"{x * 1e3:.2f} ms" if x < 1 else f"{x:.3f} s"


def fmt_b(x):
    return f"{x / 2**20:.2f} MiB"


def main(argv=None):
    args = parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quiet TF start-up logs
    global np, keras
    import numpy as np
    import keras

    t_script = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    shape = (args.series, args.steps, args.features)
    data = rng.standard_normal(shape, dtype=np.float32)
    flat = data.reshape(-1, args.features)
    batch_bytes = args.batch_size * args.timesteps * args.features * data.itemsize
    info = machine_info()
    print(
        f"data {shape} float32 ({fmt_b(data.nbytes)}), timesteps {args.timesteps}, "
        f"batch {args.batch_size}; one batch = {batch_bytes:,} bytes"
    )
    print(
        f"python {info['python']}, keras {info['keras']} ({info['backend']}), "
        f"numpy {info['numpy']}, {info['cpu_count']} CPUs"
    )

    # Cold runs (untimed for the table, reported), with RSS sampling.
    with RSSPeak() as rss_plan_cold:
        t_plan_cold, (n_plan, sum_plan) = timed(plan_path, data, args.timesteps, args.batch_size)
    with RSSPeak() as rss_keras_cold:
        t_keras_cold, (n_keras, sum_keras) = timed(keras_path, flat, args.timesteps, args.batch_size)
    print(f"cold run: plan {fmt_s(t_plan_cold)}, keras {fmt_s(t_keras_cold)}")
    check = check_same_windows(data, flat, args, n_plan, n_keras)
    rel = abs(sum_plan - sum_keras) / max(1.0, abs(sum_keras))
    assert rel < 1e-4, (sum_plan, sum_keras)
    print(
        f"check: {check['batches']} batches each, same set of {check['windows']} "
        f"windows (same order: {check['same_order']}), sums agree ({sum_plan:.3f})"
    )

    # Timed, interleaved rounds.
    times = {"plan": [], "keras": []}
    load = BackgroundLoad().__enter__()
    print(f"\n{'round':>5} {'plan':>12} {'keras':>12} {'keras/plan':>11}")
    for r in range(args.repeats):
        order = ("plan", "keras") if r % 2 == 0 else ("keras", "plan")
        got = {}
        for name in order:
            if name == "plan":
                dt, (n, _) = timed(plan_path, data, args.timesteps, args.batch_size)
            else:
                dt, (n, _) = timed(keras_path, flat, args.timesteps, args.batch_size)
            assert n == check["batches"]
            got[name] = dt
            times[name].append(dt)
        print(
            f"{r:>5} {fmt_s(got['plan']):>12} {fmt_s(got['keras']):>12} "
            f"{got['keras'] / got['plan']:>10.1f}x"
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    mn = {k: min(v) for k, v in times.items()}
    ratio_med = med["keras"] / med["plan"]
    ratio_min = mn["keras"] / mn["plan"]
    print(
        f"{'median':>5} {fmt_s(med['plan']):>12} {fmt_s(med['keras']):>12} {ratio_med:>10.1f}x"
    )
    print(f"{'min':>5} {fmt_s(mn['plan']):>12} {fmt_s(mn['keras']):>12} {ratio_min:>10.1f}x")

    # Informational breakdown, interleaved as well.
    parts = {k: [] for k in ("plan_build", "validation", "plan_views", "consume",
                             "keras_no_consume")}
    views = [np.asarray(x) for x, _, _ in
             plan_build_only(data, args.timesteps, args.batch_size).batches()]
    for r in range(args.repeats):
        dt, plan = timed(plan_build_only, data, args.timesteps, args.batch_size)
        parts["plan_build"].append(dt)
        parts["validation"].append(timed(validation_only, data)[0])
        parts["plan_views"].append(timed(plan_views_only, plan)[0])
        parts["consume"].append(timed(consume_only, views)[0])
        parts["keras_no_consume"].append(
            timed(keras_no_consume, flat, args.timesteps, args.batch_size)[0]
        )
    load.__exit__(None, None, None)
    breakdown = {k: statistics.median(v) for k, v in parts.items()}
    views_ratio = breakdown["keras_no_consume"] / (
        breakdown["plan_build"] + breakdown["plan_views"]
    )
    print(
        f"\nother processes used {load.result['others_avg_cores']:.2f} CPU cores on "
        f"average during the timed rounds (load average {load.result['loadavg_start'][0]:.2f}"
        f" -> {load.result['loadavg_end'][0]:.2f})"
    )
    print("breakdown (medians):")
    print(f"  plan: naive_split (build)          {fmt_s(breakdown['plan_build'])}")
    print(f"  - of which input validation        {fmt_s(breakdown['validation'])}")
    print(f"  plan: all batches as views         {fmt_s(breakdown['plan_views'])}")
    print(f"  consumption float(x.sum()) x{check['batches']}     {fmt_s(breakdown['consume'])}")
    print(f"  keras: iterate + .numpy(), no sum   {fmt_s(breakdown['keras_no_consume'])}")
    print(f"  keras(no sum) / plan(build + views) {views_ratio:.1f}x")

    # Memory.
    mem = plan_tracemalloc(data, args.timesteps, args.batch_size)
    gc.collect()
    tracemalloc.start()
    validation_only(data)
    mem["validation_peak"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    with RSSPeak() as rss_plan_warm:
        plan_path(data, args.timesteps, args.batch_size)
    with RSSPeak() as rss_keras_warm:
        keras_path(flat, args.timesteps, args.batch_size)
    mem_ratio = mem["overall_peak"] / batch_bytes
    print("\nmemory:")
    print(
        f"  plan tracemalloc peak extra {mem['overall_peak']:,} B = "
        f"{mem_ratio:.3f} batch (build {mem['build_peak']:,} B, "
        f"read {mem['read_peak']:,} B, plan object keeps {mem['plan_retained']:,} B)"
    )
    print(
        f"  RSS peak increase: plan cold {fmt_b(rss_plan_cold.extra)}, warm "
        f"{fmt_b(rss_plan_warm.extra)}; keras cold {fmt_b(rss_keras_cold.extra)}, "
        f"warm {fmt_b(rss_keras_warm.extra)}"
    )

    # Memory-only scaling check: longer series, same batch shape.
    scaling = [{
        "steps": args.steps,
        "data_bytes": int(data.nbytes),
        "plan_peak_bytes": mem["overall_peak"],
        "build_peak_bytes": mem["build_peak"],
        "read_peak_bytes": mem["read_peak"],
        "peak_in_batches": mem_ratio,
        "plan_path_median_s": med["plan"],
    }]
    del views, plan
    for steps in args.scaling_steps:
        big = rng.standard_normal((args.series, steps, args.features), dtype=np.float32)
        m = plan_tracemalloc(big, args.timesteps, args.batch_size)
        ts = [timed(plan_path, big, args.timesteps, args.batch_size)[0] for _ in range(3)]
        scaling.append({
            "steps": steps,
            "data_bytes": int(big.nbytes),
            "plan_peak_bytes": m["overall_peak"],
            "build_peak_bytes": m["build_peak"],
            "read_peak_bytes": m["read_peak"],
            "peak_in_batches": m["overall_peak"] / batch_bytes,
            "plan_path_median_s": statistics.median(ts),
        })
        del big
    print("\nscaling (plan path, same batch shape):")
    print(f"  {'steps':>7} {'data':>11} {'peak extra':>12} {'in batches':>10} {'build peak':>12} {'time':>10}")
    for row in scaling:
        print(
            f"  {row['steps']:>7} {fmt_b(row['data_bytes']):>11} "
            f"{row['plan_peak_bytes']:>12,} {row['peak_in_batches']:>10.3f} "
            f"{row['build_peak_bytes']:>12,} {fmt_s(row['plan_path_median_s']):>10}"
        )

    info["keras_tbptt_sources_changed_during_run"] = (
        package_fingerprint() != info["keras_tbptt_sources_sha256"])
    speed_met = ratio_med >= TARGET_SPEEDUP
    memory_met = mem_ratio <= TARGET_MEMORY_BATCHES
    total_s = time.perf_counter() - t_script
    results = {
        "benchmark": "bench_data_path",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": info,
        "config": {
            "data_shape": list(shape),
            "dtype": "float32",
            "timesteps": args.timesteps,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "seed": args.seed,
            "quick": args.quick,
            "consumption": "float(x.sum())",
            "plan_call": f"keras_tbptt.naive_split(data, {args.timesteps}, batch_size={args.batch_size})",
            "keras_call": (
                f"keras.utils.timeseries_dataset_from_array(data.reshape(-1, {args.features}), "
                f"None, sequence_length={args.timesteps}, sequence_stride={args.timesteps}, "
                f"batch_size={args.batch_size})"
            ),
            "one_batch_bytes": batch_bytes,
        },
        "check": check,
        "timing_s": {
            "plan": times["plan"],
            "keras": times["keras"],
            "plan_median": med["plan"],
            "keras_median": med["keras"],
            "plan_min": mn["plan"],
            "keras_min": mn["keras"],
            "plan_cold": t_plan_cold,
            "keras_cold": t_keras_cold,
        },
        "ratios": {
            "keras_over_plan_median": ratio_med,
            "keras_over_plan_min": ratio_min,
            "keras_no_consume_over_plan_build_plus_views": views_ratio,
            "plan_peak_over_one_batch": mem_ratio,
        },
        "breakdown_median_s": breakdown,
        "background_load_during_timing": load.result,
        "memory": {
            "plan_tracemalloc": mem,
            "rss_peak_increase_bytes": {
                "plan_cold": rss_plan_cold.extra,
                "plan_warm": rss_plan_warm.extra,
                "keras_cold": rss_keras_cold.extra,
                "keras_warm": rss_keras_warm.extra,
            },
            "scaling": scaling,
        },
        "targets": {
            "speedup_min": TARGET_SPEEDUP,
            "speedup_met": speed_met,
            "peak_memory_max_batches": TARGET_MEMORY_BATCHES,
            "peak_memory_met": memory_met,
        },
        "total_run_seconds": total_s,
    }
    write_results(args, results)
    print(
        f"\ntarget >= {TARGET_SPEEDUP:.0f}x: {'MET' if speed_met else 'MISSED'} "
        f"({ratio_med:.1f}x); peak <= 1 batch: {'MET' if memory_met else 'MISSED'} "
        f"({mem_ratio:.3f} batch); total {total_s:.1f} s"
    )


def write_results(args, r):
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = "bench_data_path" + ("_quick" if args.quick else "")
    (out / f"{stem}.json").write_text(json.dumps(r, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown(r))
    print(f"wrote {out / stem}.json and .md")


def markdown(r):
    m, c, t, ra = r["machine"], r["config"], r["timing_s"], r["ratios"]
    mem, bd = r["memory"], r["breakdown_median_s"]
    tm = mem["plan_tracemalloc"]
    rss = mem["rss_peak_increase_bytes"]
    versions = f"python {m['python']}, numpy {m['numpy']}, keras {m['keras']}"
    if "tensorflow" in m:
        versions += f", tensorflow {m['tensorflow']}"
    if "jax" in m:
        versions += f", jax {m['jax']}"
    ms = lambda x: f"{x * 1e3:.2f}"  # noqa: E731
    mib = lambda x: f"{x / 2**20:.2f}"  # noqa: E731
    lines = [
        "# bench_data_path: naive_split vs timeseries_dataset_from_array",
        "",
        f"- Date: {r['date']}",
        f"- Machine: {m['cpu_count']} CPUs ({m['cpu_model']}), "
        f"{m.get('ram_gib', '?')} GiB RAM, {m['platform']}, no GPU",
        f"- Versions: {versions}; Keras backend: **{m['backend']}**; keras_tbptt "
        f"sources sha256 {m['keras_tbptt_sources_sha256']} (of `keras_tbptt/**/*.py`)"
        + (" **(the sources changed during the run)**"
           if m.get("keras_tbptt_sources_changed_during_run") else ""),
        f"- Command: `python benchmarks/bench_data_path.py"
        f"{' --quick' if c['quick'] else ''}`; total run time {r['total_run_seconds']:.1f} s",
        "",
        "## Configuration",
        "",
        f"- Data: random normal float32 `data` of shape {tuple(c['data_shape'])} "
        f"(seed {c['seed']}); one batch = {c['batch_size']} x {c['timesteps']} x "
        f"{c['data_shape'][2]} x 4 B = {c['one_batch_bytes']:,} bytes.",
        f"- keras_tbptt path: `plan = {c['plan_call']}`, then "
        f"`for x, _, _ in plan.batches(): {c['consumption'].replace('x', 'np.asarray(x)', 1)}`.",
        f"- Keras path: `ds = {c['keras_call']}`, then "
        "`for b in ds: float(b.numpy().sum())`.",
        f"- Both yield {r['check']['batches']} batches; checked: the same set of "
        f"{r['check']['windows']} windows (every plan sample equals the Keras window "
        "given by `plan.positions`), in a different order (plan batch j = chunk j "
        "of every series; Keras batch b = all chunks of consecutive series).",
        f"- Timing: one untimed cold run each, then {c['repeats']} interleaved rounds "
        "(order alternating), `time.perf_counter`, `gc.collect()` before each run; "
        "time includes building the plan / dataset.",
        "- Memory: plan path peak extra memory with `tracemalloc` (build + read); "
        "RSS peak increase sampled every 0.5 ms with psutil (information).",
        "",
        "## Time (plan build + read all batches)",
        "",
        background_note(r["background_load_during_timing"], os_cpus=m["cpu_count"]),
        "",
        "| path | median (ms) | min (ms) | cold first run (ms) |",
        "|---|---:|---:|---:|",
        f"| keras_tbptt `naive_split` + `batches()` | {ms(t['plan_median'])} | "
        f"{ms(t['plan_min'])} | {ms(t['plan_cold'])} |",
        f"| `timeseries_dataset_from_array` | {ms(t['keras_median'])} | "
        f"{ms(t['keras_min'])} | {ms(t['keras_cold'])} |",
        "",
        f"**Ratio Keras / plan: {ra['keras_over_plan_median']:.1f}x (medians), "
        f"{ra['keras_over_plan_min']:.1f}x (mins).**",
        "",
        "Breakdown (medians, information):",
        "",
        "| part | ms |",
        "|---|---:|",
        f"| plan: `naive_split` only (validation + layout) | {ms(bd['plan_build'])} |",
        f"| - of which input validation (`keras_tbptt._inputs.as_panel`) | {ms(bd['validation'])} |",
        f"| plan: all batches as views (`np.asarray(x)`, no sum) | {ms(bd['plan_views'])} |",
        f"| consumption `float(x.sum())` over the {r['check']['batches']} plan batches | {ms(bd['consume'])} |",
        f"| Keras: iterate + `.numpy()`, no sum | {ms(bd['keras_no_consume'])} |",
        "",
        f"Without the consumption, Keras / plan (build + views) = "
        f"{ra['keras_no_consume_over_plan_build_plus_views']:.1f}x.",
        "",
        "## Memory",
        "",
        "| measure | bytes | MiB | in batches |",
        "|---|---:|---:|---:|",
        f"| plan path peak extra (tracemalloc), overall | {tm['overall_peak']:,} | "
        f"{mib(tm['overall_peak'])} | **{ra['plan_peak_over_one_batch']:.3f}** |",
        f"| - during `naive_split` (build) | {tm['build_peak']:,} | {mib(tm['build_peak'])} | "
        f"{tm['build_peak'] / c['one_batch_bytes']:.3f} |",
        f"| - of which input validation (`as_panel`) alone | {tm['validation_peak']:,} | "
        f"{mib(tm['validation_peak'])} | {tm['validation_peak'] / c['one_batch_bytes']:.3f} |",
        f"| - while reading the batches | {tm['read_peak']:,} | {mib(tm['read_peak'])} | "
        f"{tm['read_peak'] / c['one_batch_bytes']:.3f} |",
        f"| plan path RSS peak increase, cold / warm | {rss['plan_cold']:,} / {rss['plan_warm']:,} | "
        f"{mib(rss['plan_cold'])} / {mib(rss['plan_warm'])} | |",
        f"| Keras path RSS peak increase, cold / warm | {rss['keras_cold']:,} / {rss['keras_warm']:,} | "
        f"{mib(rss['keras_cold'])} / {mib(rss['keras_warm'])} | |",
        "",
        "Scaling check (plan path only, same batch shape, longer series):",
        "",
        "| steps per series | data (MiB) | peak extra (bytes) | in batches | build peak (bytes) | plan path time (ms) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in mem["scaling"]:
        lines.append(
            f"| {row['steps']:,} | {mib(row['data_bytes'])} | {row['plan_peak_bytes']:,} | "
            f"{row['peak_in_batches']:.3f} | {row['build_peak_bytes']:,} | "
            f"{ms(row['plan_path_median_s'])} |"
        )
    lines += ["", "## Verdict", "", verdict(r), ""]
    return "\n".join(lines)


def background_note(load, os_cpus):
    note = (
        f"Other processes used {load['others_avg_cores']:.2f} of {os_cpus} CPU cores on "
        f"average during the timed rounds (1-min load average "
        f"{load['loadavg_start'][0]:.2f} -> {load['loadavg_end'][0]:.2f})."
    )
    if load["others_avg_cores"] > 0.1:
        note += " **Warning: the machine was not idle; timings are noisier and slower than on an idle machine.**"
    return note


def verdict(r):
    ra, tg, bd = r["ratios"], r["targets"], r["breakdown_median_s"]
    t, c = r["timing_s"], r["config"]
    scaling = r["memory"]["scaling"]
    speed = (
        f"Speed: **{'met' if tg['speedup_met'] else 'missed'}**: the plan path takes "
        f"{t['plan_median'] * 1e3:.2f} ms against {t['keras_median'] * 1e3:.2f} ms for "
        f"`timeseries_dataset_from_array`, {ra['keras_over_plan_median']:.1f}x faster "
        f"(target at least {tg['speedup_min']:.0f}x)."
    )
    if not tg["speedup_met"]:
        floor = bd["consume"] + bd["plan_views"]
        speed += (
            f" The plan path splits into building the plan (`naive_split`, "
            f"{bd['plan_build'] * 1e3:.2f} ms, of which input validation "
            f"(`keras_tbptt._inputs.as_panel`, the NaN/inf checks) "
            f"{bd['validation'] * 1e3:.2f} ms), reading the {r['check']['batches']} batches "
            f"as views ({bd['plan_views'] * 1e3:.2f} ms) and the consumption shared by both "
            f"paths (summing every value, {bd['consume'] * 1e3:.2f} ms). The consumption "
            f"alone caps the ratio at about {t['keras_median'] / max(floor, 1e-12):.0f}x "
            "here, so with a consumption that reads every value the target is out of "
            "reach on this machine whatever the plan costs; without any consumption "
            f"Keras / plan (build + views) is "
            f"{ra['keras_no_consume_over_plan_build_plus_views']:.1f}x."
        )
    mem = (
        f"Memory: **{'met' if tg['peak_memory_met'] else 'missed'}**: the plan path's peak "
        f"extra memory is {ra['plan_peak_over_one_batch']:.3f} batch "
        f"({r['memory']['plan_tracemalloc']['overall_peak']:,} bytes against "
        f"{c['one_batch_bytes']:,}; target at most 1 batch)."
    )
    tm = r["memory"]["plan_tracemalloc"]
    if tm["build_peak"] > tm["read_peak"]:
        mem += (
            f" The peak is reached while building the plan "
            f"({tm['build_peak']:,} bytes) rather than while reading batches "
            f"({tm['read_peak']:,} bytes); input validation alone peaks at "
            f"{tm['validation_peak']:,} bytes"
        )
        mem += "."
    if len(scaling) > 1:
        first, last = scaling[0], scaling[-1]
        grows = last["plan_peak_bytes"] > 1.5 * first["plan_peak_bytes"]
        mem += (
            f" Scaling check: with {last['steps']:,}-step series "
            f"({last['data_bytes'] / first['data_bytes']:.0f}x the data, same batch) the peak "
            f"is {last['peak_in_batches']:.3f} batch"
            + (": it grows with the data, not the batch." if grows
               else ", so it does not grow with the data.")
        )
    return speed + " " + mem


if __name__ == "__main__":
    main()
