"""What the benchmark scripts share: workers in fresh processes, peak
memory, and the header and files of their results.

A benchmark runs its measurements in worker processes started from its own
script with `KERAS_BACKEND` set before Keras is imported (the parent imports
no Keras), so that one backend's threads, caches and memory never reach
another's figures.
"""

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


# One core, one thread: on a shared machine a kernel that spreads over every
# core is slowed by whatever else runs there (two runs of the same program
# then differ by up to a third); one thread on one core is much steadier.
ONE_THREAD = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
              "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def run_worker(script, backend, *args, env=None):
    """Run `script --worker ARGS...` under `backend` (with `env` added to the
    environment); returns the JSON object the worker prints on its last line
    of stdout (stderr passes through)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=path,
               **(env or {}))
    out = subprocess.run([sys.executable, str(script), "--worker", *map(str, args)], env=env,
                         cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def max_rss():
    """The process' peak resident set size so far, in bytes."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes / KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def peak_memory(run):
    """Call `run()`; returns its peak RSS above the RSS before it.

    `peak_delta`: bytes; `set_by_training`: False when the process had
    peaked before `run` (building the model, making the data), so that
    `peak_delta` is then an upper bound.
    """
    import psutil

    baseline = psutil.Process().memory_info().rss
    before = max_rss()
    run()
    peak = max_rss()
    return {"peak_delta": peak - baseline, "set_by_training": peak > before}


def memory_rounds(script, backend, cases, repeats):
    """Peak memory of each case (a tuple of worker arguments), each run in a
    fresh `script --worker memory *case` process, in `repeats` interleaved
    rounds. Returns per case: `peak_mem_bytes` (the median of the runs),
    `peak_mem_runs` and `peak_set_by_training` (True when every run's peak
    came from training: see `peak_memory`)."""
    runs = {case: [] for case in cases}
    for r in range(repeats):
        for case in cases:
            runs[case].append(run_worker(script, backend, "memory", *case))
        print(f"[{backend}] memory round {r + 1}/{repeats} done", flush=True)
    return {case: {"peak_mem_bytes": statistics.median(m["peak_delta"] for m in ms),
                   "peak_mem_runs": [m["peak_delta"] for m in ms],
                   "peak_set_by_training": all(m["set_by_training"] for m in ms)}
            for case, ms in runs.items()}


def header():
    """The date (UTC), machine and load average every result starts with."""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPUs, {platform.platform()}",
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def write_results(name, results, report):
    """Write `results/<name>.json` and `results/<name>.md`."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(report)


def pin_to_one_core():
    """Run this process (and the threads it starts from now on) on the last
    core; with `ONE_THREAD` in its environment, Keras' kernels then use one
    thread. Call before importing Keras."""
    if hasattr(os, "sched_setaffinity"):  # Linux; elsewhere one thread per kernel only
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
