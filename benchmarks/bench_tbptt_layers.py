"""Training benchmark: TBPTTGRU, TBPTTSimpleRNN, TBPTTRNN vs their Keras layers.

What: step time, throughput and peak memory of training
`keras.Input(batch_shape=(32, T, 8)) -> layer(64, return_sequences=True) ->
keras.layers.Dense(1)` (Adam(1e-3), mse) with `model.train_on_batch(x, y)` on
one fixed random float32 batch, for T in {100, 500} and three families of
three layers each: the Keras layer (full BPTT), the keras_tbptt layer with
`truncate_gradient=None` and with `truncate_gradient=T//10`:

- `gru`: `keras.layers.GRU` / `TBPTTGRU` (reset_after=True: Keras' fused
  GRU kernel where the backend has one: a `lax.scan` with the input
  projections of all steps in one matmul under JAX, which has no cuDNN GRU;
  TensorFlow's is cuDNN only, so on CPU the generic loop);
- `simple_rnn`: `keras.layers.SimpleRNN` / `TBPTTSimpleRNN` (generic loop);
- `rnn_lstm_cell`: `keras.layers.RNN(LSTMCell)` / `TBPTTRNN(LSTMCell)` (a
  cell: always the generic loop).

How: as `bench_tbptt_lstm.py` (whose timing and memory helpers it uses):
each backend (tensorflow, then jax) runs in worker processes with
`KERAS_BACKEND` set before Keras is imported; the parent imports no Keras.
Timing: one worker per backend, on one core with one thread per kernel
(`--all-cores` for Keras' defaults: on a shared 2-core machine two runs of
the same program then differ by up to a third); per family and T, four
models: the three above and a second Keras layer, the A/A control whose
ratio to the first shows the noise floor. Three untimed warm-up steps per
model (tracing / compilation, then the number `n` of steps per
measurement: about `--seconds` of work), an untimed interleaved round, then
`--repeats` rounds running the four models in turn, the order rotating;
reported: the median step time, throughput = 32 * T / step time, and the
ratios Keras/None, Keras/Keras (control) and full/(T//10), each the median
over rounds of the ratio within a round. Memory: a fresh process per
backend, family, T and layer (median of `--memory-repeats`): peak RSS over
four training steps minus the RSS before the first step. The worker also
checks that each family's Keras layer and `truncate_gradient=None` layer
compile to the same training program (the jaxpr under JAX, the graph's op
types under TensorFlow).

Targets (from issue 16): each layer with `truncate_gradient=None` within 5%
of its Keras layer (step time at most 5% above, at every T); with `T//10`
faster than full BPTT at T=500.

Run: `python benchmarks/bench_tbptt_layers.py [--backend jax] [--quick]`
(about 35 minutes on 2 cores); writes
`benchmarks/results/bench_tbptt_layers.{json,md}` (`--quick`: a small smoke
run, results not written).

`--kernels` (issue 26): the fused CPU kernels (`layers/fused_kernels.py`)
against the path the layers took before them and against the Keras layer,
under TensorFlow (LSTM: BlockLSTM; TensorFlow has no sequence GRU kernel)
and torch (LSTM and GRU: `torch._VF`); JAX has no fused kernel. Model
`Input(batch_shape=(32, 250, 2)) -> layer(32, return_sequences=True) ->
Dense(1)`, Adam, mse, `train_on_batch` (forward and backward). Per family
six models: the Keras layer, a second one (the A/A control), and the
keras_tbptt layer with `truncate_gradient=None` and `=25`, each on today's
path (the fused kernels patched out: Keras' own `inner_loop`) and on the
fused one. One core, one thread (`taskset`-style affinity, TensorFlow's
intra/inter-op threads 1, `torch.set_num_threads(1)`), interleaved rounds,
order rotating, medians; ratios are medians of within-round ratios. The
worker counts the kernel calls of each model (fused: > 0, today's: 0) and
checks that fused and today's paths give the same first-step loss. Writes
`benchmarks/results/bench_tbptt_layers_kernels.{json,md}` (about 5 minutes).
"""

import argparse
import json
import math
import platform
import statistics
import sys
import time

from bench_tbptt_lstm import BATCH, FEATURES, MEMORY_STEPS, UNITS, time_steps
from common import (ONE_THREAD, header, memory_rounds, peak_memory, pin_to_one_core,
                    run_worker, write_results)

FAMILIES = {
    "gru": ("keras.layers.GRU", "TBPTTGRU"),
    "simple_rnn": ("keras.layers.SimpleRNN", "TBPTTSimpleRNN"),
    "rnn_lstm_cell": ("keras.layers.RNN(LSTMCell)", "TBPTTRNN(LSTMCell)"),
}
VARIANTS = ("keras", "none", "tenth")
# Timed too: a second Keras layer, the A/A control that shows the noise floor.
TIMED = ("keras", "keras_again", "none", "tenth")


def layer_name(family, variant):
    keras_name, ours = FAMILIES[family]
    if variant == "keras":
        return keras_name
    return f"{ours}(truncate_gradient={'None' if variant == 'none' else 'T//10'})"


# Worker side: Keras is imported only here.
def build(family, variant, T):
    import keras
    import numpy as np

    import keras_tbptt as kt

    kwargs = {"return_sequences": True}
    is_keras = variant in ("keras", "keras_again")
    if not is_keras:
        kwargs["truncate_gradient"] = None if variant == "none" else max(1, T // 10)
    if family == "gru":
        rnn = (keras.layers.GRU if is_keras else kt.TBPTTGRU)(UNITS, **kwargs)
    elif family == "simple_rnn":
        cls = keras.layers.SimpleRNN if is_keras else kt.TBPTTSimpleRNN
        rnn = cls(UNITS, **kwargs)
    else:
        cls = keras.layers.RNN if is_keras else kt.TBPTTRNN
        rnn = cls(keras.layers.LSTMCell(UNITS), **kwargs)
    model = keras.Sequential([keras.Input(batch_shape=(BATCH, T, FEATURES)), rnn,
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    rng = np.random.default_rng(T)
    x = rng.standard_normal((BATCH, T, FEATURES), dtype="float32")
    y = rng.standard_normal((BATCH, T, 1), dtype="float32")
    return model, x, y


def traced_program(model, x):
    """What the backend compiles for a training step's gradient: the jaxpr
    (JAX, names dropped) or the op types of the graph and its functions
    (TensorFlow), as `tests/test_recurrent_layers.py` compares them."""
    import collections
    import re

    import keras

    if keras.backend.backend() == "jax":
        import jax

        frozen = [v.value for v in model.non_trainable_variables]

        def loss(weights, inputs):
            out, _ = model.stateless_call(weights, frozen, inputs, training=True)
            return keras.ops.mean(out ** 2)

        weights = [v.value for v in model.trainable_variables]
        return re.sub(r"name=\S+", "", str(jax.make_jaxpr(jax.grad(loss))(weights, x)))
    import tensorflow as tf

    @tf.function
    def step(inputs):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(inputs, training=True) ** 2)
        return tape.gradient(loss, model.trainable_variables)

    graph = step.get_concrete_function(tf.constant(x)).graph.as_graph_def()
    types = collections.Counter(node.op for node in graph.node)
    for function in graph.library.function:
        types.update(node.op for node in function.node_def)
    return dict(types)


def timing_worker(timesteps, repeats, seconds, families):
    import keras
    import numpy

    backend = keras.backend.backend()
    result = {"versions": {"python": platform.python_version(), "numpy": numpy.__version__,
                           "keras": keras.__version__,
                           backend: __import__(backend).__version__},
              "step_s": {}, "same_program": {}}
    for family in families:
        # With truncate_gradient=None, the same compiled program as Keras'?
        keras.utils.set_random_seed(0)
        programs = [traced_program(*build(family, variant, timesteps[0])[:2])
                    for variant in ("keras", "none")]
        result["same_program"][family] = programs[0] == programs[1]
        keras.backend.clear_session()
        for T in timesteps:
            models, n = {}, {}
            for variant in TIMED:
                keras.utils.set_random_seed(0)
                models[variant] = build(family, variant, T)
                time_steps(*models[variant], 1)  # tracing / compilation
                n[variant] = min(40, max(2, math.ceil(seconds / time_steps(*models[variant], 2))))
            for variant in TIMED:  # one untimed interleaved round
                time_steps(*models[variant], n[variant])
            steps = {variant: [] for variant in TIMED}
            for r in range(repeats):
                order = TIMED[r % 4:] + TIMED[:r % 4]
                for variant in order:
                    steps[variant].append(time_steps(*models[variant], n[variant]))
            print(f"[{backend}] {family} T={T}: median step "
                  + ", ".join(f"{k} {statistics.median(v) * 1e3:.1f} ms"
                              for k, v in steps.items()),
                  file=sys.stderr, flush=True)
            result["step_s"][f"{family}/{T}"] = steps
            del models
            keras.backend.clear_session()
    return result


def memory_worker(family, variant, T):
    model, x, y = build(family, variant, T)
    return peak_memory(lambda: [model.train_on_batch(x, y) for _ in range(MEMORY_STEPS)])


# --kernels: the fused CPU kernels.
KERNEL_BATCH, KERNEL_T, KERNEL_FEATURES, KERNEL_UNITS, KERNEL_K2 = 32, 250, 2, 32, 25
KERNEL_FAMILIES = {"lstm": ("keras.layers.LSTM", "TBPTTLSTM"),
                   "gru": ("keras.layers.GRU", "TBPTTGRU")}
KERNEL_BACKENDS = {"tensorflow": ("lstm",), "torch": ("lstm", "gru")}
KERNEL_TIMED = ("keras", "keras_again", "today", "fused", "today_k2", "fused_k2")
KERNEL_NAMES = {"keras": "{keras}", "keras_again": "{keras} (A/A control)",
                "today": "{ours}(truncate_gradient=None), today's path",
                "fused": "{ours}(truncate_gradient=None), fused kernel",
                "today_k2": f"{{ours}}(truncate_gradient={KERNEL_K2}), today's path",
                "fused_k2": f"{{ours}}(truncate_gradient={KERNEL_K2}), fused kernel"}


def build_kernel_model(family, variant):
    """The model of `variant`; today's path: the layer with the fused
    kernels patched out of its pieces (Keras' own `inner_loop`)."""
    from unittest import mock

    import keras
    import numpy as np

    import keras_tbptt as kt
    from keras_tbptt.layers import truncation

    keras_cls, ours = {"lstm": (keras.layers.LSTM, kt.TBPTTLSTM),
                       "gru": (keras.layers.GRU, kt.TBPTTGRU)}[family]

    class TodaysPath(ours):
        def _processing_order_loop(self, *args, **kwargs):
            with mock.patch.object(truncation, "fused_inner_loop", lambda *a: None):
                return super()._processing_order_loop(*args, **kwargs)

    k2 = KERNEL_K2 if variant.endswith("_k2") else None
    if variant in ("keras", "keras_again"):
        rnn = keras_cls(KERNEL_UNITS, return_sequences=True)
    else:
        cls = TodaysPath if variant.startswith("today") else ours
        rnn = cls(KERNEL_UNITS, return_sequences=True, truncate_gradient=k2)
    model = keras.Sequential([
        keras.Input(batch_shape=(KERNEL_BATCH, KERNEL_T, KERNEL_FEATURES)), rnn,
        keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    rng = np.random.default_rng(KERNEL_T)
    x = rng.standard_normal((KERNEL_BATCH, KERNEL_T, KERNEL_FEATURES), dtype="float32")
    y = rng.standard_normal((KERNEL_BATCH, KERNEL_T, 1), dtype="float32")
    return model, x, y


def kernel_timing_worker(repeats, seconds, families):
    import keras
    import numpy

    from keras_tbptt.layers import fused_kernels

    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        torch.set_num_threads(1)
    calls = {"n": 0}

    def counting(kernel):
        def counted(*args):
            calls["n"] += 1
            return kernel(*args)
        return counted

    for name in ("tensorflow_lstm", "torch_lstm", "torch_gru"):
        setattr(fused_kernels, name, counting(getattr(fused_kernels, name)))
    result = {"versions": {"python": platform.python_version(), "numpy": numpy.__version__,
                           "keras": keras.__version__,
                           backend: __import__(backend).__version__},
              "step_s": {}, "kernel_calls": {}, "first_loss": {}}
    for family in families:
        models, n = {}, {}
        for variant in KERNEL_TIMED:
            keras.utils.set_random_seed(0)
            models[variant] = build_kernel_model(family, variant)
            calls["n"] = 0
            model, x, y = models[variant]
            result["first_loss"][f"{family}/{variant}"] = float(model.train_on_batch(x, y))
            time_steps(*models[variant], 1)  # tracing
            result["kernel_calls"][f"{family}/{variant}"] = calls["n"]
            n[variant] = min(40, max(2, math.ceil(seconds / time_steps(*models[variant], 2))))
        for variant in KERNEL_TIMED:  # one untimed interleaved round
            time_steps(*models[variant], n[variant])
        steps = {variant: [] for variant in KERNEL_TIMED}
        for r in range(repeats):
            shift = r % len(KERNEL_TIMED)
            for variant in KERNEL_TIMED[shift:] + KERNEL_TIMED[:shift]:
                steps[variant].append(time_steps(*models[variant], n[variant]))
        print(f"[{backend}] {family}: median step "
              + ", ".join(f"{k} {statistics.median(v) * 1e3:.1f} ms" for k, v in steps.items()),
              file=sys.stderr, flush=True)
        result["step_s"][family] = steps
        del models
        keras.backend.clear_session()
    return result


def run_kernels(args):
    env = {**ONE_THREAD, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    backends = []
    for backend, families in KERNEL_BACKENDS.items():
        timing = run_worker(__file__, backend, "kernels", args.repeats, args.seconds,
                            ",".join(families), env=env)
        rows, ratios = [], {}
        for family in families:
            steps = timing["step_s"][family]
            rows += [{"family": family, "layer": variant, "step_s": steps[variant],
                      "median_step_s": statistics.median(steps[variant]),
                      "throughput": KERNEL_BATCH * KERNEL_T / statistics.median(steps[variant]),
                      "kernel_calls": timing["kernel_calls"][f"{family}/{variant}"],
                      "first_loss": timing["first_loss"][f"{family}/{variant}"]}
                     for variant in KERNEL_TIMED]
            ratios[family] = {"keras_over_keras": paired(steps, "keras", "keras_again"),
                              "today_over_fused": paired(steps, "today", "fused"),
                              "keras_over_fused": paired(steps, "keras", "fused"),
                              "today_k2_over_fused_k2": paired(steps, "today_k2", "fused_k2"),
                              "keras_over_fused_k2": paired(steps, "keras", "fused_k2")}
        backends.append({"backend": backend, "versions": timing["versions"], "rows": rows,
                         "ratios": ratios})
    return backends


def kernels_markdown(r):
    c = r["config"]
    v = {k: val for b in r["backends"] for k, val in b["versions"].items()}
    lines = [
        "# Fused CPU kernels of TBPTTLSTM and TBPTTGRU vs today's path and the Keras layers",
        "",
        f"- Date: {r['date']}; machine: {r['machine']}; load average at the start "
        f"{r['load_average']}; run time {r['run_seconds']:.0f} s",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()), "",
        f"Model `Input(batch_shape=({KERNEL_BATCH}, {KERNEL_T}, {KERNEL_FEATURES}))` -> "
        f"layer({KERNEL_UNITS}, return_sequences=True) -> `Dense(1)`, Adam, mse, "
        "`train_on_batch` (forward and backward) on one fixed random batch, one core, one "
        f"thread. Step time: median of {c['repeats']} interleaved rounds (order rotating) of "
        f"n consecutive steps (~{c['seconds']} s) after untimed warm-up steps and an "
        "untimed round; ratios are medians over rounds of the ratio within a round. "
        "Today's path: the layer with the fused kernels patched out (Keras' own "
        "`inner_loop`: TensorFlow's `while_loop` of steps, torch's Python loop). Kernels: "
        "TensorFlow BlockLSTM (LSTM; TensorFlow has no sequence GRU kernel, so its GRU is "
        "unchanged and not timed), torch `_VF.lstm` / `_VF.gru`; JAX has none. "
        "Kernel calls: calls of the fused kernel functions while the model's first steps "
        "were traced or run (0 on today's path and for Keras' layers).", "",
    ]
    for b in r["backends"]:
        lines += [f"## {b['backend']}", "",
                  "| layer | step (ms) | throughput (timesteps/s) | kernel calls | "
                  "first loss |", "|---|---:|---:|---:|---:|"]
        for row in b["rows"]:
            keras_name, ours = KERNEL_FAMILIES[row["family"]]
            name = KERNEL_NAMES[row["layer"]].format(keras=keras_name, ours=ours)
            lines.append(f"| `{name}` | {row['median_step_s'] * 1e3:.1f} | "
                         f"{row['throughput']:,.0f} | {row['kernel_calls']} | "
                         f"{row['first_loss']:.6f} |")
        lines += ["", "| layer | Keras/Keras (A/A control) | today/fused | Keras/fused | "
                  f"today/fused (k2={KERNEL_K2}) | Keras/fused (k2={KERNEL_K2}) |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {KERNEL_FAMILIES[family][1]} | {q['keras_over_keras']:.3f} | "
                  f"{q['today_over_fused']:.2f}x | {q['keras_over_fused']:.2f}x | "
                  f"{q['today_k2_over_fused_k2']:.2f}x | {q['keras_over_fused_k2']:.2f}x |"
                  for family, q in b["ratios"].items()]
        lines.append("")
    return "\n".join(lines + [""])


def kernels_main(args):
    if args.quick:
        args.repeats, args.seconds = 2, 0.02
    started = time.perf_counter()
    results = {**header(),
               "config": {"batch": KERNEL_BATCH, "timesteps": KERNEL_T,
                          "features": KERNEL_FEATURES, "units": KERNEL_UNITS,
                          "truncate_gradient": KERNEL_K2, "repeats": args.repeats,
                          "seconds": args.seconds, "one_core": True},
               "backends": run_kernels(args)}
    results["run_seconds"] = time.perf_counter() - started
    report = kernels_markdown(results)
    print(report)
    if not args.quick:
        write_results("bench_tbptt_layers_kernels", results, report)


# Parent side.
def paired(steps, a, b):
    """The median over rounds of `a`'s step time over `b`'s in the same round
    (neighbours in time, so slow drifts of the machine cancel)."""
    return statistics.median(x / y for x, y in zip(steps[a], steps[b], strict=True))


def within_5pct(ratios):
    """"met" when Keras/None is at least 1/1.05 at every T; "missed" when it
    falls short by more than the A/A control strays from 1 (a measured
    slowdown), "within the noise" when by less."""
    short = [q for q in ratios if q["keras_over_none"] < 1 / 1.05]
    if not short:
        return "met"
    if any(1 - q["keras_over_none"] > abs(1 - q["keras_over_keras"]) for q in short):
        return "missed"
    return "within the noise"


def run_backend(backend, args):
    cores = "all" if args.all_cores else "one"
    timing = run_worker(__file__, backend, "timing", cores, args.repeats, args.seconds,
                        ",".join(args.families), *args.timesteps,
                        env=None if args.all_cores else ONE_THREAD)
    cases = [(f, T, v) for f in args.families for T in args.timesteps for v in VARIANTS]
    memory = memory_rounds(__file__, backend, cases, args.memory_repeats)
    rows = []
    for family, T, variant in cases:
        step_s = timing["step_s"][f"{family}/{T}"][variant]
        rows.append({"family": family, "T": T, "layer": variant, "step_s": step_s,
                     "median_step_s": statistics.median(step_s),
                     "throughput": BATCH * T / statistics.median(step_s),
                     **memory[family, T, variant]})
    mem = {(r["family"], r["T"], r["layer"]): r["peak_mem_bytes"] for r in rows}
    steps = {(family, T): timing["step_s"][f"{family}/{T}"]
             for family in args.families for T in args.timesteps}
    ratios = {family: {T: {"keras_over_keras": paired(steps[family, T], "keras", "keras_again"),
                           "keras_over_none": paired(steps[family, T], "keras", "none"),
                           "full_over_tenth": paired(steps[family, T], "keras", "tenth"),
                           "mem_tenth_over_full": mem[family, T, "tenth"] / mem[family, T, "keras"]}
                       for T in args.timesteps}
              for family in args.families}
    speed_T = 500 if 500 in args.timesteps else max(args.timesteps)
    targets = {family: {"none_within_5pct": within_5pct(ratios[family].values()),
                        "tenth_faster": {"T": speed_T,
                                         "met": ratios[family][speed_T]["full_over_tenth"] > 1}}
               for family in args.families}
    return {"backend": backend, "versions": timing["versions"], "rows": rows,
            "ratios": ratios, "targets": targets, "same_program": timing["same_program"]}


def markdown(r):
    c = r["config"]
    v = {k: val for b in r["backends"] for k, val in b["versions"].items()}
    lines = [
        "# TBPTTGRU, TBPTTSimpleRNN, TBPTTRNN vs their Keras layers: training step time "
        "and memory", "",
        f"- Date: {r['date']}; machine: {r['machine']}; load average at the start "
        f"{r['load_average']}; run time {r['run_seconds']:.0f} s",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()), "",
        f"Model `Input(batch_shape=({BATCH}, T, {FEATURES}))` -> layer({UNITS}, "
        "return_sequences=True) -> `Dense(1)`, Adam, mse, `train_on_batch` on one fixed random "
        f"batch; T in {c['timesteps']}. Step time"
        + (" (one core, one thread per kernel)" if c.get("one_core") else "")
        + f": median of {c['repeats']} interleaved rounds "
        f"(order rotating) of the layers of a family and a second Keras layer (the A/A "
        f"control), n consecutive steps each (~{c['seconds']} s), after 3 untimed warm-up "
        "steps and an untimed round; ratios are medians over rounds of the ratio within a "
        f"round; throughput = {BATCH}*T / step time. Memory: peak RSS (`ru_maxrss`) over "
        f"{MEMORY_STEPS} training steps minus the RSS before the first step, in a fresh "
        f"process per backend, T and layer (median of {c['memory_repeats']}); it includes "
        "the first step's tracing / compilation. Kernels: the GRU (reset_after=True) runs on "
        "Keras' fused GRU kernel under JAX (a `lax.scan` with the input projections of all "
        "steps in one matmul; JAX has no cuDNN GRU) and, TensorFlow's being cuDNN only, on "
        "the generic loop under TensorFlow on CPU; SimpleRNN and the cell on the generic "
        "loop.", "",
    ]
    for b in r["backends"]:
        lines += [f"## {b['backend']}", "",
                  "| T | layer | step (ms) | throughput (timesteps/s) | peak memory (MiB) |",
                  "|---:|---|---:|---:|---:|"]
        lines += [f"| {row['T']} | `{layer_name(row['family'], row['layer'])}` | "
                  f"{row['median_step_s'] * 1e3:.1f} | {row['throughput']:,.0f} | "
                  f"{row['peak_mem_bytes'] / 2**20:.1f}"
                  f"{'' if row['peak_set_by_training'] else '*'} |" for row in b["rows"]]
        lines += ["", "| layer | T | Keras/None (step time) | Keras/Keras (A/A control) | "
                  "full/(T//10) speed-up | memory (T//10)/full |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {FAMILIES[family][1]} | {T} | {q['keras_over_none']:.3f} | "
                  f"{q['keras_over_keras']:.3f} | "
                  f"{q['full_over_tenth']:.2f}x | {q['mem_tenth_over_full']:.2f} |"
                  for family, by_T in b["ratios"].items() for T, q in by_T.items()]
        if not all(row["peak_set_by_training"] for row in b["rows"]):
            lines += ["", "\\* the process peaked before training: an upper bound."]
        lines.append("")
    lines += ["## Verdict", ""]
    met = {True: "**met**", False: "**missed**"}.get
    bold = "**{}**".format
    for b in r["backends"]:
        for family, t in b["targets"].items():
            q, s = b["ratios"][family], t["tenth_faster"]
            same = b["same_program"][family]
            lines.append(
                f"- {b['backend']}, {FAMILIES[family][1]}: `None` within 5% of "
                f"`{FAMILIES[family][0]}`: {bold(t['none_within_5pct'])} (Keras/None "
                + ", ".join(f"T={T} {v['keras_over_none']:.3f}" for T, v in q.items())
                + "; at least 0.952 needed; A/A control "
                + ", ".join(f"T={T} {v['keras_over_keras']:.3f}" for T, v in q.items())
                + "; the two compile to "
                + ("the same program, so any difference is timing noise"
                   if same else "**different** programs")
                + f"); `T//10` faster than full BPTT at T={s['T']}: "
                f"{met(s['met'])} ({q[s['T']]['full_over_tenth']:.2f}x)")
    return "\n".join(lines + [""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("both", "tensorflow", "jax"), default="both")
    parser.add_argument("--repeats", type=int, default=41)
    parser.add_argument("--seconds", type=float, default=0.4)
    parser.add_argument("--memory-repeats", type=int, default=2)
    parser.add_argument("--all-cores", action="store_true",
                        help="time with Keras' default threads on every core (noisier)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--kernels", action="store_true",
                        help="time the fused CPU kernels (TensorFlow and torch) instead")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:  # "timing CORES REPEATS SECONDS FAMILIES T...", "memory FAMILY T VARIANT"
        mode, *rest = args.worker  # or "kernels REPEATS SECONDS FAMILIES"
        if mode == "kernels":
            pin_to_one_core()
            result = kernel_timing_worker(int(rest[0]), float(rest[1]), rest[2].split(","))
        elif mode == "timing":
            cores, *rest = rest
            if cores == "one":
                pin_to_one_core()
            result = timing_worker([int(T) for T in rest[3:]], int(rest[0]), float(rest[1]),
                                   rest[2].split(","))
        else:
            result = memory_worker(rest[0], rest[2], int(rest[1]))
        print(json.dumps(result))
        return
    if args.kernels:
        kernels_main(args)
        return
    args.timesteps, args.families = [100, 500], list(FAMILIES)
    if args.quick:
        args.timesteps, args.repeats, args.seconds, args.memory_repeats = [40, 80], 2, 0.02, 1
    started = time.perf_counter()
    backends = ("tensorflow", "jax") if args.backend == "both" else (args.backend,)
    results = {
        **header(),
        "config": {"timesteps": args.timesteps, "batch": BATCH, "features": FEATURES,
                   "units": UNITS, "repeats": args.repeats, "seconds": args.seconds,
                   "memory_steps": MEMORY_STEPS, "memory_repeats": args.memory_repeats,
                   "families": FAMILIES, "one_core": not args.all_cores},
        "backends": [run_backend(b, args) for b in backends],
    }
    results["run_seconds"] = time.perf_counter() - started
    report = markdown(results)
    print(report)
    if not args.quick:
        write_results("bench_tbptt_layers", results, report)


if __name__ == "__main__":
    main()
