"""Stateful training loop: callback resets vs reset flags in the graph; packing.

What:
1. TBPTT(1,1) (`keras_tbptt.one_step`) on 100 series x 500 steps x 1
   feature, per-step targets, `TBPTTLSTM(32, stateful=True,
   return_sequences=True)` -> `Dense(1)`, Adam(1e-3), batch 100: 500 tiny
   batches per epoch, where the per-batch overhead dominates. Compared, in
   one process, one epoch each from the same initial weights:
   - `callbacks_as_filed`: the callback path as the issue measured it: the
     plan's batches through Keras' own `PyDataset` adapter (how
     `plan.dataset()` was read before it became its own data adapter);
   - `callbacks`: `fit(plan.dataset(), callbacks=plan.callbacks())`,
     `steps_per_execution=1` (the callback path: a callback cannot reset
     between the batches of one execution);
   - `flags_spe1`: `with_reset_flags(model)` on `plan.dataset(reset_flags=True)`,
     `steps_per_execution=1`;
   - `flags_spe50`: the same with `steps_per_execution=50`;
   - `none_spe50`: the bare model with `steps_per_execution=50` and no resets
     at all (wrong results: the ceiling any reset mechanism can reach).
   Reported: batches per second (median over interleaved rounds), the ratio
   to `callbacks`, and the training loss after one epoch from the same
   weights (must agree: same computation, only the reset mechanism moved).
2. A ragged panel (100 series of 37 to 500 steps, seed 0) cut into chunks of
   50 (`naive_split(remainder="pad")`), batch 16, same model: the grouped
   layout (rows of a group wait for its longest series, filler rows at the
   end) against `pack=True` (lanes run through series back to back). Both
   run in the graph (`reset_flags=True`, `steps_per_execution=10`).
   Reported: fill ratio (real steps / all steps), batches per epoch and
   seconds per epoch.

How: each backend (jax, then tensorflow) runs in a worker process with
`KERAS_BACKEND` set before Keras is imported. Each configuration runs one
untimed epoch (tracing / compilation), then `--repeats` interleaved rounds
(order rotating) of one timed epoch each.

Target (from the issue): under JAX, `flags_spe50` at least 3x the batches
per second of the callback path as the issue measured it (3,350 batches/s,
before `plan.dataset()` got its own data adapter), close to the no-reset
ceiling, and the same loss after one epoch as `callbacks`.

Run: `python benchmarks/bench_in_graph_resets.py [--backend jax] [--quick]`
(about 4 minutes on 2 cores); writes
`benchmarks/results/bench_in_graph_resets.{json,md}` (`--quick`: a smoke
run, results not written).
"""

import argparse
import json
import platform
import statistics
import sys
import time
import warnings

from common import header, run_worker, write_results

UNITS = 32
LOOP = {
    "callbacks_as_filed": "callbacks, steps_per_execution=1, read by Keras' PyDataset adapter (the path as filed)",
    "callbacks": "callbacks, steps_per_execution=1",
    "flags_spe1": "reset flags, steps_per_execution=1",
    "flags_spe50": "reset flags, steps_per_execution=50",
    "none_spe50": "no resets at all, steps_per_execution=50 (ceiling)",
}
LAYOUTS = {"grouped": "grouped (filler rows)", "packed": "pack=True"}


# Worker side: Keras is imported only here.
def build(plan, flags, steps_per_execution):
    import keras

    import keras_tbptt

    model = keras.Sequential([
        keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 1)),
        keras_tbptt.TBPTTLSTM(UNITS, stateful=True, return_sequences=True),
        keras.layers.Dense(1),
    ])
    if flags:
        model = keras_tbptt.with_reset_flags(model)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="mse",
        steps_per_execution=steps_per_execution,
    )
    return model


def as_filed(plan):
    """The plan's batches as a plain `keras.utils.PyDataset`."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return len(plan)

        def __getitem__(self, index):
            return plan.batch(index)

    return Batches()


def epoch(model, plan, name):
    """One epoch of configuration `name`; returns (seconds, loss)."""
    flags = name.startswith("flags")
    data = as_filed(plan) if name == "callbacks_as_filed" else plan.dataset(reset_flags=flags)
    kwargs = {"callbacks": plan.callbacks()} if name.startswith("callbacks") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # none_spe50: no callbacks, on purpose
        started = time.perf_counter()
        history = model.fit(data, shuffle=False, verbose=0, **kwargs)
        return time.perf_counter() - started, float(history.history["loss"][-1])


def loop_worker(repeats, n_series, length):
    import keras
    import numpy as np

    import keras_tbptt

    rng = np.random.default_rng(0)
    series = rng.standard_normal((n_series, length, 1), dtype="float32").cumsum(1) / 10
    plan = keras_tbptt.one_step(series[:, :-1], series[:, 1:], batch_size=n_series)
    configs = {"callbacks_as_filed": (False, 1), "callbacks": (False, 1), "flags_spe1": (True, 1),
               "flags_spe50": (True, 50), "none_spe50": (False, 50)}
    keras.utils.set_random_seed(0)
    initial = build(plan, False, 1).get_weights()
    models, losses = {}, {}
    for name, (flags, spe) in configs.items():
        models[name] = build(plan, flags, spe)
        models[name].set_weights(initial)
        # The first (untimed) epoch compiles; its loss is from the initial weights.
        losses[name] = epoch(models[name], plan, name)[1]
    seconds = {name: [] for name in configs}
    for r in range(repeats):
        order = list(configs)[r % len(configs):] + list(configs)[:r % len(configs)]
        for name in order:
            seconds[name].append(epoch(models[name], plan, name)[0])
    print(f"[{keras.backend.backend()}] loop: " + ", ".join(
        f"{k} {len(plan) / statistics.median(v):.0f} batches/s" for k, v in seconds.items()
    ), file=sys.stderr, flush=True)
    return {"batches": len(plan), "seconds": seconds, "first_epoch_loss": losses}


def packing_worker(repeats, n_series):
    import keras
    import numpy as np

    import keras_tbptt

    rng = np.random.default_rng(0)
    lengths = rng.integers(37, 501, size=n_series)
    series = [rng.standard_normal((n + 1, 1), dtype="float32").cumsum(0) / 10 for n in lengths]
    inputs, targets = [s[:-1] for s in series], [s[1:] for s in series]
    plans = {
        name: keras_tbptt.naive_split(inputs, 50, targets, batch_size=16, remainder="pad",
                                      pack=name == "packed")
        for name in LAYOUTS
    }
    keras.utils.set_random_seed(0)
    models = {name: build(plan, True, 10) for name, plan in plans.items()}
    for name in LAYOUTS:
        epoch(models[name], plans[name], "flags")
    seconds = {name: [] for name in LAYOUTS}
    for r in range(repeats):
        for name in list(LAYOUTS)[r % 2:] + list(LAYOUTS)[:r % 2]:
            seconds[name].append(epoch(models[name], plans[name], "flags")[0])
    return {
        "lengths": [int(lengths.min()), int(lengths.max()), int(lengths.sum())],
        "layouts": {
            name: {"fill_ratio": plan.fill_ratio, "batches": len(plan),
                   "seconds": seconds[name]}
            for name, plan in plans.items()
        },
    }


def worker(repeats, n_series, length):
    import keras
    import numpy

    backend = keras.backend.backend()
    return {
        "versions": {"python": platform.python_version(), "numpy": numpy.__version__,
                     "keras": keras.__version__, backend: __import__(backend).__version__},
        "loop": loop_worker(repeats, n_series, length),
        "packing": packing_worker(repeats, n_series),
    }


# Parent side.
def report(results, args, elapsed):
    lines = [
        "# Stateful training loop: callback resets vs reset flags in the graph; packing",
        "",
        f"- Date: {results['date']}; machine: {results['machine']}; "
        f"run time {elapsed:.0f} s",
        "",
        "Median of interleaved rounds (order rotating) of one timed epoch each, after "
        "an untimed epoch; see the script's docstring for the set-up.",
    ]
    for backend, result in results["backends"].items():
        versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        loop = result["loop"]
        base = statistics.median(loop["seconds"]["callbacks"])
        lines += [
            "", f"## {backend}", "", f"Versions: {versions}", "",
            f"### TBPTT(1,1), {args.series} series x {args.length} steps "
            f"({loop['batches']} batches per epoch)", "",
            "| loop | batches/s | vs callbacks as filed | vs callbacks | loss after the first epoch |",
            "|---|---:|---:|---:|---:|",
        ]
        filed = statistics.median(loop["seconds"]["callbacks_as_filed"])
        for name, label in LOOP.items():
            median = statistics.median(loop["seconds"][name])
            lines.append(
                f"| {label} | {loop['batches'] / median:,.0f} | {filed / median:.2f}x | "
                f"{base / median:.2f}x | {loop['first_epoch_loss'][name]:.7f} |"
            )
        packing = result["packing"]
        low, high, total = packing["lengths"]
        lines += [
            "", f"### Ragged panel: {args.series} series of {low} to {high} steps "
            f"({total:,} steps), chunks of 50, batch 16", "",
            "| layout | fill ratio | batches per epoch | s per epoch |",
            "|---|---:|---:|---:|",
        ]
        for name, label in LAYOUTS.items():
            layout = packing["layouts"][name]
            lines.append(
                f"| {label} | {layout['fill_ratio']:.3f} | {layout['batches']} | "
                f"{statistics.median(layout['seconds']):.2f} |"
            )
        grouped, packed = (statistics.median(packing["layouts"][n]["seconds"]) for n in LAYOUTS)
        lines.append(f"\nPacked epoch time / grouped: {packed / grouped:.2f}.")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=["jax", "tensorflow"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs="*")
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(*map(int, args.worker))))
        return
    if args.quick:
        args.repeats, args.series, args.length = 1, 20, 60
    started = time.perf_counter()
    results = {**header(),
               "args": {"repeats": args.repeats, "series": args.series, "length": args.length},
               "backends": {}}
    for backend in args.backend or ["jax", "tensorflow"]:
        results["backends"][backend] = run_worker(__file__, backend, args.repeats, args.series,
                                                  args.length)
    text = report(results, args, time.perf_counter() - started)
    print(text)
    if not args.quick:
        write_results("bench_in_graph_resets", results, text)


if __name__ == "__main__":
    main()
