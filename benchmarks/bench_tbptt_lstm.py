"""Training benchmark: `keras.layers.LSTM` vs `keras_tbptt.TBPTTLSTM`.

What: step time, throughput and peak memory of training
`keras.Input(batch_shape=(32, T, 8)) -> layer(64, return_sequences=True) ->
keras.layers.Dense(1)` (Adam(1e-3), mse) with `model.train_on_batch(x, y)` on
one fixed random float32 batch, for T in {100, 500, 2000} and four layers:
`keras.layers.LSTM` (full BPTT), `TBPTTLSTM(truncate_gradient=None)`,
`TBPTTLSTM(truncate_gradient=T//10)`, `TBPTTLSTM(truncate_gradient=50)`.

How: each backend (tensorflow, then jax) runs in worker processes with
`KERAS_BACKEND` set before Keras is imported; the parent imports no Keras.

- Timing (one worker per backend): per T, each model takes three untimed
  warm-up steps (tracing / compilation, then two steps that set its number
  `n` of steps per measurement: about `--seconds` of work, 2 <= n <= 40),
  then one untimed interleaved round, then `--repeats` rounds running the
  four models in turn, the order rotating every round; a measurement is `n`
  consecutive `train_on_batch` calls (they return numpy logs: each step has
  finished, under JAX too). Reported: the median step time, throughput =
  32 * T / step time (timesteps per second), and the ratios LSTM/None and
  full/(T//10) of median step times.
- Memory (a fresh process per backend, T and layer, `--memory-repeats` runs,
  median): baseline RSS after the imports, building and compiling the model
  and making the data, before the first step; peak RSS (`ru_maxrss`) over
  four training steps minus that baseline. It includes the first step's
  tracing / compilation memory (tens of MiB, about constant in T).

Targets (from the issue): `None` within 5% of `keras.layers.LSTM` (its step
time at most 5% above LSTM's, at every T); `T//10` at least 1.8x faster
than full BPTT at T=500; `T//10` needs less memory than full BPTT (at every
T); memory for fixed k2=50 grows less than linearly with T.

Run: `python benchmarks/bench_tbptt_lstm.py [--backend jax] [--quick]` (about
6 minutes on 2 cores); writes `benchmarks/results/bench_tbptt_lstm.{json,md}`
(`--quick`: a small smoke run, results not written).
"""

import argparse
import gc
import json
import math
import platform
import statistics
import sys
import time

from common import header, memory_rounds, peak_memory, run_worker, write_results

LAYERS = {"lstm": "keras.layers.LSTM", "none": "TBPTTLSTM(truncate_gradient=None)",
          "tenth": "TBPTTLSTM(truncate_gradient=T//10)", "k50": "TBPTTLSTM(truncate_gradient=50)"}
BATCH, FEATURES, UNITS, K2 = 32, 8, 64, 50
MEMORY_STEPS = 4


# Worker side: Keras is imported only here.
def build(layer, T):
    import keras
    import numpy as np

    import keras_tbptt

    if layer == "lstm":
        rnn = keras.layers.LSTM(UNITS, return_sequences=True)
    else:
        k2 = {"none": None, "tenth": max(1, T // 10), "k50": K2}[layer]
        rnn = keras_tbptt.TBPTTLSTM(UNITS, truncate_gradient=k2, return_sequences=True)
    model = keras.Sequential([keras.Input(batch_shape=(BATCH, T, FEATURES)), rnn,
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    rng = np.random.default_rng(T)
    x = rng.standard_normal((BATCH, T, FEATURES), dtype="float32")
    y = rng.standard_normal((BATCH, T, 1), dtype="float32")
    return model, x, y


def time_steps(model, x, y, n):
    gc.collect()
    started = time.perf_counter()
    for _ in range(n):
        model.train_on_batch(x, y)
    return (time.perf_counter() - started) / n


def timing_worker(timesteps, repeats, seconds):
    import keras
    import numpy

    backend = keras.backend.backend()
    result = {"versions": {"python": platform.python_version(), "numpy": numpy.__version__,
                           "keras": keras.__version__,
                           backend: __import__(backend).__version__},
              "step_s": {}}
    for T in timesteps:
        models, n = {}, {}
        for layer in LAYERS:
            keras.utils.set_random_seed(0)
            models[layer] = build(layer, T)
            time_steps(*models[layer], 1)  # tracing / compilation
            n[layer] = min(40, max(2, math.ceil(seconds / time_steps(*models[layer], 2))))
        for layer in LAYERS:  # one untimed interleaved round
            time_steps(*models[layer], n[layer])
        steps = {layer: [] for layer in LAYERS}
        for r in range(repeats):
            order = list(LAYERS)[r % 4:] + list(LAYERS)[:r % 4]
            for layer in order:
                steps[layer].append(time_steps(*models[layer], n[layer]))
        print(f"[{backend}] T={T}: median step "
              + ", ".join(f"{k} {statistics.median(v) * 1e3:.1f} ms" for k, v in steps.items())
              + f" (steps/measurement {n})", file=sys.stderr, flush=True)
        result["step_s"][T] = steps
        del models
        keras.backend.clear_session()
    return result


def memory_worker(T, layer):
    model, x, y = build(layer, T)
    gc.collect()
    return peak_memory(lambda: [model.train_on_batch(x, y) for _ in range(MEMORY_STEPS)])


# Parent side.
def run_backend(backend, args):
    timing = run_worker(__file__, backend, "timing", args.repeats, args.seconds, *args.timesteps)
    cases = [(T, layer) for T in args.timesteps for layer in LAYERS]
    memory = memory_rounds(__file__, backend, cases, args.memory_repeats)
    rows = []
    for T, layer in cases:
        step_s = timing["step_s"][str(T)][layer]
        rows.append({"T": T, "layer": layer, "step_s": step_s,
                     "median_step_s": statistics.median(step_s),
                     "throughput": BATCH * T / statistics.median(step_s),
                     **memory[T, layer]})
    q = ratios(rows, args.timesteps)
    return {"backend": backend, "versions": timing["versions"], "rows": rows, "ratios": q,
            "targets": targets(rows, q)}


def ratios(rows, timesteps):
    step = {(row["T"], row["layer"]): row["median_step_s"] for row in rows}
    mem = {(row["T"], row["layer"]): row["peak_mem_bytes"] for row in rows}
    return {T: {"lstm_over_none": step[T, "lstm"] / step[T, "none"],
                "full_over_tenth": step[T, "lstm"] / step[T, "tenth"],
                "mem_tenth_over_full": mem[T, "tenth"] / mem[T, "lstm"]} for T in timesteps}


def targets(rows, q):
    """Met / missed per target; `q`: the ratios by T."""
    Ts = sorted(q)
    mem = {(row["T"], row["layer"]): row["peak_mem_bytes"] for row in rows}
    noise = max(max(row["peak_mem_runs"]) - min(row["peak_mem_runs"]) for row in rows)
    pairs = list(zip(Ts[:-1], Ts[1:])) + ([(Ts[0], Ts[-1])] if len(Ts) > 2 else [])
    speed_T = 500 if 500 in Ts else Ts[-1]

    def growth(layer):
        return [{"T": [a, b], "T_ratio": b / a, "mem_ratio": mem[b, layer] / mem[a, layer]}
                for a, b in pairs]

    def slope(layer):  # MiB per 1,000 steps between the two largest T
        return (mem[Ts[-1], layer] - mem[Ts[-2], layer]) / (Ts[-1] - Ts[-2]) * 1000 / 2**20

    return {
        "none_within_5pct": all(q[T]["lstm_over_none"] >= 1 / 1.05 for T in Ts),
        "tenth_speedup": {"T": speed_T, "met": q[speed_T]["full_over_tenth"] >= 1.8},
        "tenth_less_memory": {
            "met": all(q[T]["mem_tenth_over_full"] < 1 for T in Ts), "noise_mib": noise / 2**20,
            "within_noise_T": [T for T in Ts if abs(mem[T, "lstm"] - mem[T, "tenth"]) <= noise]},
        "k50_sublinear": {"k50": growth("k50"), "full": growth("lstm"),
                          "met": all(p["mem_ratio"] < p["T_ratio"] for p in growth("k50")),
                          "mib_per_1000_steps": {"k50": slope("k50"), "full": slope("lstm")}},
    }


def markdown(r):
    c = r["config"]
    v = {k: val for b in r["backends"] for k, val in b["versions"].items()}
    lines = [
        "# TBPTTLSTM vs keras.layers.LSTM: training step time and memory", "",
        f"- Date: {r['date']}; machine: {r['machine']}; run time {r['run_seconds']:.0f} s",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()), "",
        f"Model `Input(batch_shape=({BATCH}, T, {FEATURES}))` -> layer({UNITS}, "
        "return_sequences=True) -> `Dense(1)`, Adam, mse, `train_on_batch` on one fixed random "
        f"batch; T in {c['timesteps']}. Step time: median of {c['repeats']} interleaved rounds "
        f"(order rotating) of n consecutive steps (~{c['seconds']} s) after 3 untimed warm-up "
        f"steps and an untimed round; throughput = {BATCH}*T / step time. Memory: peak RSS "
        f"(`ru_maxrss`) over {MEMORY_STEPS} training steps minus the RSS before the first step, "
        f"in a fresh process per backend, T and layer (median of {c['memory_repeats']}); it "
        "includes the first step's tracing / compilation.", "",
    ]
    for b in r["backends"]:
        lines += [f"## {b['backend']}", "",
                  "| T | layer | step (ms) | throughput (timesteps/s) | peak memory (MiB) |",
                  "|---:|---|---:|---:|---:|"]
        lines += [f"| {row['T']} | `{LAYERS[row['layer']]}` | {row['median_step_s'] * 1e3:.1f} | "
                  f"{row['throughput']:,.0f} | {row['peak_mem_bytes'] / 2**20:.1f}"
                  f"{'' if row['peak_set_by_training'] else '*'} |" for row in b["rows"]]
        lines += ["", "| T | LSTM/None (step time) | full/(T//10) speed-up | "
                  "memory (T//10)/full |", "|---:|---:|---:|---:|"]
        lines += [f"| {T} | {q['lstm_over_none']:.3f} | {q['full_over_tenth']:.2f}x | "
                  f"{q['mem_tenth_over_full']:.2f} |" for T, q in b["ratios"].items()]
        if not all(row["peak_set_by_training"] for row in b["rows"]):
            lines += ["", "\\* the process peaked before training: an upper bound."]
        lines.append("")
    lines += ["## Verdict", ""] + verdict(r) + [""]
    return "\n".join(lines)


def verdict(r):
    met = {True: "**met**", False: "**missed**"}.get
    out = []
    for b in r["backends"]:
        t, q, name = b["targets"], b["ratios"], b["backend"]
        s, m, k = t["tenth_speedup"], t["tenth_less_memory"], t["k50_sublinear"]
        out.append(f"- {name}, `None` within 5% of LSTM: {met(t['none_within_5pct'])} "
                   "(LSTM/None " + ", ".join(f"T={T} {v['lstm_over_none']:.3f}"
                                             for T, v in q.items()) + "; at least 0.952 needed)")
        out.append(f"- {name}, `T//10` at least 1.8x faster than full BPTT at T={s['T']}: "
                   f"{met(s['met'])} ({q[s['T']]['full_over_tenth']:.2f}x)")
        close = m["within_noise_T"]
        out.append(f"- {name}, `T//10` needs less memory: {met(m['met'])} ((T//10)/full "
                   + ", ".join(f"T={T} {v['mem_tenth_over_full']:.2f}" for T, v in q.items())
                   + (f"; at T={', '.join(map(str, close))} the difference is within the "
                      f"run-to-run noise of {m['noise_mib']:.1f} MiB" if close else "") + ")")
        sl = k["mib_per_1000_steps"]
        out.append(f"- {name}, memory for k2=50 grows less than linearly with T: {met(k['met'])} "
                   "(growth " + ", ".join(f"x{p['mem_ratio']:.2f} for T x{p['T_ratio']:g}"
                                          for p in k["k50"])
                   + "; full BPTT " + ", ".join(f"x{p['mem_ratio']:.2f}" for p in k["full"])
                   + f"; {sl['k50']:.1f} MiB per 1,000 steps vs {sl['full']:.1f} for full BPTT"
                   + ("; still affine in T: the T-independent compile memory helps the ratios"
                      if sl["k50"] > 0.1 * sl["full"] else "") + ")")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("both", "tensorflow", "jax"), default="both")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.4)
    parser.add_argument("--memory-repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:  # "timing REPEATS SECONDS T..." or "memory T LAYER"
        mode, *rest = args.worker
        if mode == "timing":
            result = timing_worker([int(T) for T in rest[2:]], int(rest[0]), float(rest[1]))
        else:
            result = memory_worker(int(rest[0]), rest[1])
        print(json.dumps(result))
        return
    args.timesteps = [100, 500, 2000]
    if args.quick:
        args.timesteps, args.repeats, args.seconds, args.memory_repeats = [60, 120], 2, 0.02, 1
    started = time.perf_counter()
    backends = ("tensorflow", "jax") if args.backend == "both" else (args.backend,)
    results = {
        **header(),
        "config": {"timesteps": args.timesteps, "batch": BATCH, "features": FEATURES,
                   "units": UNITS, "fixed_k2": K2, "repeats": args.repeats,
                   "seconds": args.seconds, "memory_steps": MEMORY_STEPS,
                   "memory_repeats": args.memory_repeats, "layers": LAYERS},
        "backends": [run_backend(b, args) for b in backends],
    }
    results["run_seconds"] = time.perf_counter() - started
    report = markdown(results)
    print(report)
    if not args.quick:
        write_results("bench_tbptt_lstm", results, report)


if __name__ == "__main__":
    main()
