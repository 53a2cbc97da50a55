"""Moving cut points: a dependency that always straddles the fixed cuts.

What: the input is white noise `u`; the target at every step `t` with
`t mod 10 == 1` is `u[t - 3]` (weight 0 elsewhere: NaN targets). With
`naive_split(..., 10)` each such target sits 1 step into a chunk and its
input 3 steps back, in the previous chunk: the gradient never links them,
so fixed cuts cannot learn the task (the loss stays near var(u) = 1). With
`offsets="random"` the target and its input share a chunk at 7 of the 10
offsets. A stateful `TBPTTLSTM(16)` (`with_reset_flags`, Adam(1e-2), mse)
trains `--epochs` epochs on 32 series of 400 steps (one group of 32 rows),
fixed vs random offsets, over `--seeds` seeds (the seed of the weights and
of the offsets); the validation loss is `evaluate` on 32 fresh series, cut
at the fixed points (what the task asks for: the straddling targets).

Second, the cost of the hold's `ops.cond` for batches without holds: the
epoch time of the fixed plan's reset-flag training with the layer as it is
against the layer with the hold switched off (`_held_loop` replaced by the
plain loop), interleaved rounds of 20 epochs, best of `--repeats`.

Run: `KERAS_BACKEND=jax python benchmarks/bench_moving_cuts.py` (about
2 minutes on one core); writes `benchmarks/results/bench_moving_cuts.{json,md}`
(`--quick`: a smoke run, results not written).
"""

import argparse
import os
import platform
import statistics
import sys
import time
import warnings

from common import header, pin_to_one_core, write_results

LENGTH, SERIES, T, LAG, UNITS = 400, 32, 10, 3, 16


def task(seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    u = rng.normal(size=(SERIES, LENGTH, 1)).astype("float32")
    y = np.full_like(u, np.nan)
    steps = np.arange(LENGTH)
    at = steps[(steps % T == 1) & (steps >= LAG)]
    y[:, at] = u[:, at - LAG]
    return u, y


def model_for(plan, seed):
    import keras

    import keras_tbptt as kt

    keras.utils.set_random_seed(seed)
    inner = keras.Sequential([
        keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 1)),
        kt.TBPTTLSTM(UNITS, stateful=True, return_sequences=True),
        keras.layers.Dense(1),
    ])
    model = kt.with_reset_flags(inner)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


def learn(offsets, seed, epochs):
    import keras_tbptt as kt

    u, y = task(1000 + seed)
    plan = kt.naive_split(
        u, T, y, nan="interpolate", offsets=offsets,
        seed=seed if offsets == "random" else None,
    )
    u_val, y_val = task(2000 + seed)
    validation = kt.naive_split(u_val, T, y_val, nan="interpolate")
    model = model_for(plan, seed)
    data = plan.dataset(reset_flags=True)
    model.fit(data, epochs=epochs, shuffle=False, verbose=0)
    return model.evaluate(validation.dataset(reset_flags=True), verbose=0), data.offsets


def cond_cost(repeats, epochs):
    """Epoch seconds of fixed-plan training with the hold's cond and
    without it (the layer's plain loop), best of `repeats` rounds."""
    import keras_tbptt as kt
    from keras_tbptt.layers.truncation import TruncatedRNN

    held = TruncatedRNN._held_loop

    def plain(self, sequences, initial_state, mask, training):
        self._hold_flags = None
        return self.inner_loop(sequences, initial_state, mask, training)

    u, y = task(7)
    plan = kt.naive_split(u, T, y, nan="interpolate")
    loops = {"with the hold's cond": held, "without (plain loop)": plain}
    times, models = {name: [] for name in loops}, {}
    for name, loop in loops.items():  # untimed: trace / compile each
        TruncatedRNN._held_loop = loop
        models[name] = model_for(plan, 0)
        models[name].fit(plan.dataset(reset_flags=True), epochs=1, shuffle=False, verbose=0)
    for round_ in range(repeats):
        names = list(loops)[round_ % 2:] + list(loops)[: round_ % 2]
        for name in names:
            TruncatedRNN._held_loop = loops[name]
            data = plan.dataset(reset_flags=True)
            start = time.perf_counter()
            models[name].fit(data, epochs=epochs, shuffle=False, verbose=0)
            times[name].append((time.perf_counter() - start) / epochs)
    TruncatedRNN._held_loop = held
    return {name: min(t) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.seeds, args.repeats = 2, 1, 1
    pin_to_one_core()
    # The first chunk holds no target (t - 3 < 0): Keras' optimizer steps on
    # it in both ways alike; the warning says so once per fit.
    warnings.filterwarnings("ignore", "1 of the plan's", UserWarning)
    import keras
    import numpy as np

    began = time.perf_counter()
    runs = {"fixed": [], "random": []}
    offsets_seen = {}
    for seed in range(args.seeds):
        for offsets in runs:
            loss, drawn = learn(offsets, seed, args.epochs)
            runs[offsets].append(float(loss))
            if drawn is not None:
                offsets_seen[seed] = drawn[: args.epochs]
    cost = cond_cost(args.repeats, 2 if args.quick else 20)
    elapsed = time.perf_counter() - began
    versions = {
        "python": platform.python_version(), "numpy": np.__version__,
        "keras": keras.__version__, "backend": keras.backend.backend(),
    }
    results = {
        **header(), "versions": versions, "run_seconds": round(elapsed),
        "settings": {"epochs": args.epochs, "seeds": args.seeds, "length": LENGTH,
                     "series": SERIES, "timesteps": T, "lag": LAG, "units": UNITS},
        "validation_loss": runs, "offsets": offsets_seen, "epoch_seconds": cost,
    }
    summary = {
        name: (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0)
        for name, v in runs.items()
    }
    lines = [
        "# Moving cut points: a dependency that straddles every fixed cut",
        "",
        f"- Date: {results['date']}; machine: {results['machine']}; "
        f"run time {results['run_seconds']} s; one core",
        f"- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "",
        f"Target at t mod {T} == 1 is the input {LAG} steps back; chunks of {T}; "
        f"{SERIES} series of {LENGTH} steps, TBPTTLSTM({UNITS}), Adam(1e-2), "
        f"{args.epochs} epochs; validation: fresh series at the fixed cuts "
        "(var of the target: 1). See the script's docstring.",
        "",
        "| offsets | validation mse, mean | std over seeds | per seed |",
        "|---|---:|---:|---|",
    ]
    for name, (mean, std) in summary.items():
        per_seed = ", ".join(f"{v:.3f}" for v in runs[name])
        lines.append(f"| {name} | {mean:.3f} | {std:.3f} | {per_seed} |")
    ratio = summary["random"][0] / summary["fixed"][0]
    lines += [
        "",
        f"Random / fixed validation mse: {ratio:.2f}.",
        "",
        "## The hold's cond on batches without holds (fixed plan, reset flags)",
        "",
        "| layer | s per epoch (best) | vs without |",
        "|---|---:|---:|",
    ]
    base = cost["without (plain loop)"]
    for name, seconds in cost.items():
        lines.append(f"| {name} | {seconds:.4f} | {seconds / base:.2f}x |")
    report = "\n".join(lines) + "\n"
    print(report)
    if not args.quick:
        write_results("bench_moving_cuts", results, report)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
