"""Grid-search benchmark: `n_jobs=1` vs `n_jobs=2` on two cores.

What: the wall time of one `keras_tbptt.grid_search` call over a grid of 4
lengths x 5 repeats (20 runs), run in this process (`n_jobs=1`) and in two
joblib worker processes (`n_jobs=2`, one thread each), and the speed-up
`time(n_jobs=1) / time(n_jobs=2)`. Target (from the issue): at least 1.6x
on 2 cores.

Task: `--series` univariate random-walk series of `--length` steps, target
the next step; `naive_split` with the candidate lengths below, last 20% of
every series held out; model `Input(batch_shape=(series, timesteps, 1))` ->
`TBPTTLSTM(--units, stateful=True, return_sequences=True)` -> `Dense(1)`,
Adam, mse, `--epochs` epochs (TensorFlow: `jit_compile=False`).

How: each mode runs in a fresh Python process (the parent imports no
Keras), the two modes alternating `--rounds` times (1, 2, 1, 2, ...). The
measuring process imports Keras first, as a script that defines
`build_model` does; the time covers the whole call (argument and model
checks, worker start-up and Keras import in the workers for `n_jobs=2`,
every run). Reported: the
median over rounds per mode, the speed-up of the medians, the mean time of
one run inside each mode, and the 1-minute load average before and after
each measurement (`os.getloadavg`): a load well above 2 means other work
shared the cores and the numbers are not clean. The tables of the two modes
are also compared (every column but `seconds` must be equal).

Run: `python benchmarks/bench_grid_search.py [--backend jax] [--quick]`
(about 5 minutes on 2 quiet cores); writes
`benchmarks/results/bench_grid_search.{json,md}` (`--quick`: a small smoke
run, results not written).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from common import header, write_results

CANDIDATES = [20, 40, 60, 120]  # divide the length and the held-out part
REPEATS = 5
SAME = ["timesteps", "repeat", "seed", "score", "train_loss", "epochs"]


# Worker side: Keras is imported only here.
def build_model(timesteps, batch_size, units=32):
    import keras

    import keras_tbptt as kt

    model = keras.Sequential([
        keras.Input(batch_shape=(batch_size, timesteps, 1)),
        kt.TBPTTLSTM(units, stateful=True, return_sequences=True),
        keras.layers.Dense(1),
    ])
    jit = False if keras.backend.backend() == "tensorflow" else "auto"
    model.compile(optimizer="adam", loss="mse", jit_compile=jit)
    return model


def measure(args):
    import functools

    import keras  # noqa: F401  (a script that defines build_model has Keras loaded)
    import numpy as np

    import keras_tbptt as kt

    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(size=(args.series, args.length + 1, 1)), axis=1)
    walk = (walk / walk.std()).astype("float32")
    builder = functools.partial(build_model, units=args.units)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    result = kt.grid_search(builder, walk[:, :-1], walk[:, 1:], timesteps=CANDIDATES,
                            repeats=args.repeats, epochs=args.epochs, n_jobs=args.n_jobs,
                            progress=False)
    seconds = time.perf_counter() - started
    table = result.results
    print(json.dumps({
        "seconds": seconds,
        "run_seconds_mean": float(table["seconds"].mean()),
        "runs": len(table),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "table": table[SAME].to_dict("list"),
    }))


# Parent side.
def run_mode(args, n_jobs):
    command = [sys.executable, __file__, "--worker", "--n-jobs", str(n_jobs),
               "--series", str(args.series), "--length", str(args.length),
               "--units", str(args.units), "--epochs", str(args.epochs),
               "--repeats", str(args.repeats)]
    env = {**os.environ, "KERAS_BACKEND": args.backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def versions(backend):
    code = ("import json, numpy, keras, joblib, sys; "
            "b = keras.backend.backend(); m = __import__('tensorflow' if b == 'tensorflow' else b); "
            "print(json.dumps({'python': sys.version.split()[0], 'numpy': numpy.__version__, "
            "'keras': keras.__version__, 'joblib': joblib.__version__, b: m.__version__}))")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="tensorflow", choices=["tensorflow", "jax"])
    parser.add_argument("--series", type=int, default=16)
    parser.add_argument("--length", type=int, default=2400)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n-jobs", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return measure(args)
    if args.quick:
        args.length, args.epochs, args.repeats, args.rounds = 240, 1, 1, 1
    started = time.perf_counter()
    rounds = {1: [], 2: []}
    for round_ in range(args.rounds):
        for n_jobs in (1, 2):
            measured = run_mode(args, n_jobs)
            rounds[n_jobs].append(measured)
            print(f"round {round_ + 1}, n_jobs={n_jobs}: {measured['seconds']:.1f} s "
                  f"(load {measured['load_before']:.2f} -> {measured['load_after']:.2f})",
                  flush=True)
    same = all(m["table"] == rounds[1][0]["table"] for m in rounds[1] + rounds[2])
    median = {n: statistics.median(m["seconds"] for m in rounds[n]) for n in rounds}
    speedup = median[1] / median[2]
    loads = [m[k] for n in rounds for m in rounds[n] for k in ("load_before", "load_after")]
    report = {
        **header(),
        "versions": versions(args.backend),
        "backend": args.backend,
        "setup": {"series": args.series, "length": args.length, "units": args.units,
                  "epochs": args.epochs, "candidates": CANDIDATES, "repeats": args.repeats,
                  "rounds": args.rounds},
        "seconds": {str(n): [m["seconds"] for m in rounds[n]] for n in rounds},
        "run_seconds_mean": {str(n): statistics.mean(m["run_seconds_mean"] for m in rounds[n])
                             for n in rounds},
        "median_seconds": {str(n): median[n] for n in rounds},
        "speedup": speedup,
        "target_speedup": 1.6,
        "target_met": speedup >= 1.6,
        "tables_equal": same,
        "load_1min": {"min": min(loads), "max": max(loads),
                      "per_measurement": {str(n): [(m["load_before"], m["load_after"])
                                                   for m in rounds[n]] for n in rounds}},
        "run_time_s": time.perf_counter() - started,
    }
    print(f"speed-up {speedup:.2f}x (target 1.6x), tables equal: {same}, "
          f"load {min(loads):.2f}-{max(loads):.2f}")
    if args.quick:
        return None
    write_results("bench_grid_search", report, markdown(report))
    return None


def markdown(r):
    s = r["setup"]
    lines = [
        "# grid_search: n_jobs=1 vs n_jobs=2 on two cores",
        "",
        f"- Date: {r['date']}; machine: {r['machine']}; run time {r['run_time_s']:.0f} s",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()),
        f"- Backend: {r['backend']}",
        f"- Load (1-minute average, before/after each measurement): "
        f"{r['load_1min']['min']:.2f} to {r['load_1min']['max']:.2f}, this benchmark's own "
        "1 (n_jobs=1) or 2 (n_jobs=2) busy processes included"
        + (": no other work to speak of" if r["load_1min"]["max"] < 2.5
           else ": other work shared the cores, so the speed-up is understated or noisy"),
        "",
        f"Grid: timesteps {s['candidates']} x {s['repeats']} repeats = "
        f"{len(s['candidates']) * s['repeats']} runs; {s['series']} random-walk series of "
        f"{s['length']} steps, next-step target, 20% held out; "
        f"`TBPTTLSTM({s['units']}, stateful=True)` -> `Dense(1)`, Adam, mse, "
        f"{s['epochs']} epochs. Wall time of the whole `grid_search` call (checks, worker "
        f"start-up and every run; Keras already imported by the caller), each mode in a "
        f"fresh process, modes alternating, "
        f"median of {s['rounds']} rounds.",
        "",
        "| n_jobs | wall time (s), per round | median (s) | mean time of one run (s) |",
        "|---:|---|---:|---:|",
    ]
    for n in ("1", "2"):
        lines.append(
            f"| {n} | {', '.join(f'{t:.1f}' for t in r['seconds'][n])} | "
            f"{r['median_seconds'][n]:.1f} | {r['run_seconds_mean'][n]:.2f} |"
        )
    lines += [
        "",
        f"**Speed-up n_jobs=2 over n_jobs=1: {r['speedup']:.2f}x** (target >= "
        f"{r['target_speedup']}x: {'met' if r['target_met'] else 'NOT met'}). "
        f"Result tables of every round and mode equal (all columns but `seconds`): "
        f"{r['tables_equal']}.",
        "",
        "A run in a worker takes longer than in the caller's process (one thread "
        "instead of two), but two run at once.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
