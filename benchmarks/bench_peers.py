"""Stateful TBPTT training: keras_tbptt vs a PyTorch chunk loop vs Lightning 1.9.

What: the same data, model, initial weights, optimizer (Adam(1e-3),
epsilon 1e-7, Keras' default) and number of updates on every side, three
workloads:

- `a`: 64 series x 5,000 steps x 1 feature (noisy sines), next-step MSE,
  chunks of 50, batch 64, `LSTM(64)` -> `Dense(1)`: 100 updates per epoch;
- `b`: TBPTT(1,1) on 100 series x 500 steps (the random walks of
  `bench_in_graph_resets.py`), `LSTM(32)` -> `Dense(1)`, batch 100: 499
  updates of one step each per epoch;
- `c`: long-sequence classification (the recordings of
  `bench_classification.py`): 64 recordings x 3,000 steps x 2 channels, one
  label each, chunks of 250, batch 32, `LSTM(32)` -> `Dense(1, sigmoid)`,
  binary cross-entropy on the last chunk of each recording only: 24 chunks
  and 2 updates per epoch (one per group of 32 recordings).

Sides: keras_tbptt under JAX (`jax_*`), TensorFlow (`tensorflow_*`) and
Keras' torch backend (`keras_torch_*`), each in the ways of
`docs/classification.md`:

- `*_callbacks` (chunked): `fit(plan.dataset(), callbacks=plan.callbacks())`
  (`naive_split` for a and c, `one_step` for b, stateful `TBPTTLSTM` with
  `plan.layer_kwargs`);
- `*_flags` (chunked, reset flags): `keras_tbptt.with_reset_flags(model)`
  on `plan.dataset(reset_flags=True)`, with the best `steps_per_execution`
  of `--spe` (chosen by a separate tuning process: one compiling and one
  timed epoch per value, on throwaway models; 1 under Keras' torch backend,
  which allows no other);
- `*_decoupled` (c only): one sample per recording of 3,000 steps,
  `TBPTTLSTM(32, truncate_gradient=250)`, not stateful, `fit(x, labels,
  batch_size=32)`: the same 2 updates per epoch, as `bench_classification.py`
  sets it up.

In c the two chunked ways skip the 22 unlabelled batches of an epoch with
`keras_tbptt.skip_unweighted(model)` (a forward-only step: no backward
pass, no optimizer step; `skip_unweighted(with_reset_flags(model))` with
flags) where keras_tbptt has it, else with `SkipUnweightedBatches(Adam)`
(the backward pass still runs, the update is skipped); the results record
which (`unweighted_batches`).

- `torch_loop`: the `repackage_hidden` loop of pytorch/examples
  word_language_model: `nn.LSTM(batch_first=True)` + `nn.Linear`, the
  hidden state zeroed at the start of each series and detached between
  chunks, one `zero_grad`/`backward`/`step` per chunk, `loss.item()`
  summed; c: the chunks before the last run under `torch.no_grad()`, the
  loss on the last;
- `torch_loop_again`: a second, identical `torch_loop` worker, run
  interleaved like the others: the A/A control (as in
  `bench_tbptt_layers.py`), whose ratio to `torch_loop` shows the noise
  band of every ratio;
- `lightning`: PyTorch Lightning 1.9's `truncated_bptt_steps` (the
  `training_step(batch, batch_idx, hiddens)` hook; one batch of whole
  series, split by Lightning); c with manual optimization (a split that
  returns no loss cannot be skipped under automatic optimization) and
  `tbptt_split_batch` overridden to pass the labels to every split.

Every side starts from the same weights (drawn with numpy: Glorot-uniform
kernels, orthogonal recurrent kernel, forget-gate bias 1, as Keras
initialises them; copied into `nn.LSTM`'s `weight_ih`/`weight_hh`, same
gate order), so the losses agree up to float rounding and the time to a
fixed loss is comparable.

Cores (`--cores`): `one` (the default, and the mode of the committed
results): every worker pins itself to the same single core
(`os.sched_setaffinity(0, {core})`, `--core`, default 0, before any
framework is imported) and runs one thread: TensorFlow's intra- and
inter-op pools of 1 (`tf.config.threading`, set before anything runs), JAX
with `XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1` in its environment before jax is imported,
torch with `torch.set_num_threads(1)` and `torch.set_num_interop_threads(1)`.
Why: torch's threads collapse when anything else shares the cores, which
once made a two-thread comparison look like a win; one thread on one core
measures each framework's own work, and the sides cannot slow each other.
`all`: each framework's default threads on every core (torch with
`--torch-threads`, default the CPUs). Each worker records what it got: its
affinity (`len(os.sched_getaffinity(0))`) and thread settings.

How: each side of a workload runs in its own worker process, started
before the timing (Keras sides with `KERAS_BACKEND` set before Keras is
imported); the parent sends "run one epoch" to each worker in turn, the
order rotating every round, so the sides run interleaved, one at a time.
Epoch 1 includes tracing / compilation; then `--repeats` timed rounds (3 by
default). An epoch is timed from its first to its last batch (Keras:
`on_epoch_begin` to `on_epoch_end`; Lightning: `on_train_epoch_start` to
`on_train_epoch_end`; the torch loop: the loop). Reported: throughput of
the median timed epoch (a and b: batches per second, a batch being one
chunk of `batch` rows; c: recordings per second), the ratio to
`torch_loop` (the median over rounds of the ratio within a round:
neighbours in time, so slow drifts of the machine cancel), the time to a
fixed loss (the highest final epoch loss among the sides: cumulative epoch
time, epoch 1 included, until a side's epoch loss is at or below it), and
the peak memory of each worker (`ru_maxrss`, whole process: framework,
data and model) with its rise over training (peak minus the RSS before the
first epoch).

Run: `python benchmarks/bench_peers.py [--workload a] [--side torch_loop]
[--cores all] [--quick]`; for the committed results `python
benchmarks/bench_peers.py --workload a --workload c` (one core; about 10
minutes on a quiet machine, most of it the workers' start-up, compilation
and the `steps_per_execution` tuning); writes
`benchmarks/results/bench_peers.{json,md}` (`--quick`: a smoke run on tiny
data, seconds per side plus the Keras compilations, one
`steps_per_execution`, results not written). Needs `torch` (and
`pytorch-lightning==1.9.*` for the Lightning side) in the environment; a
side whose package is missing is skipped with a message.
"""

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

from common import ONE_THREAD, ROOT, header, max_rss, write_results

# Keras side prefix -> (KERAS_BACKEND, label).
KERAS_BACKENDS = {"jax": ("jax", "JAX"), "tensorflow": ("tensorflow", "TensorFlow"),
                  "keras_torch": ("torch", "Keras' torch backend")}
WAYS = {
    "callbacks": "chunked, `plan.dataset()` + `plan.callbacks()`",
    "flags": "chunked, reset flags (`with_reset_flags`)",
    "decoupled": "decoupled (c only), one sample per recording, "
                 "`TBPTTLSTM(truncate_gradient=250)`",
}
KERAS_SIDES = {f"{prefix}_{way}": (backend, way)
               for prefix, (backend, _) in KERAS_BACKENDS.items() for way in WAYS}
SIDES = {
    **{f"{prefix}_{way}": f"keras_tbptt, {label}, {what}"
       for prefix, (_, label) in KERAS_BACKENDS.items() for way, what in WAYS.items()},
    "torch_loop": "PyTorch `repackage_hidden` loop",
    "torch_loop_again": "the same PyTorch loop again: the A/A control",
    "lightning": "PyTorch Lightning 1.9 `truncated_bptt_steps`",
}
TORCH_SIDES = ("torch_loop", "torch_loop_again", "lightning")
WORKLOADS = {
    "a": "64 series x 5,000 steps, chunks of 50, LSTM(64), next-step MSE",
    "b": "TBPTT(1,1), 100 series x 500 steps, LSTM(32), next-step MSE",
    "c": "classification, 64 recordings x 3,000 steps x 2, chunks of 250, LSTM(32)",
}
LR, EPSILON = 1e-3, 1e-7
# The parent tells its workers the mode through their environment: the core
# to pin to (absent: all cores) and torch's threads.
CORE_ENV, TORCH_THREADS_ENV = "BENCH_PEERS_CORE", "BENCH_PEERS_TORCH_THREADS"


def configs(quick):
    """Workload -> sizes. `batches`: chunks of `batch` rows per epoch."""
    if quick:
        a = {"series": 8, "length": 500, "features": 1, "chunk": 50, "batch": 8, "units": 16}
        b = {"series": 10, "length": 61, "features": 1, "chunk": 1, "batch": 10, "units": 8}
        c = {"series": 8, "length": 500, "features": 2, "chunk": 250, "batch": 4, "units": 8}
    else:
        a = {"series": 64, "length": 5000, "features": 1, "chunk": 50, "batch": 64, "units": 64}
        b = {"series": 100, "length": 500, "features": 1, "chunk": 1, "batch": 100, "units": 32}
        c = {"series": 64, "length": 3000, "features": 2, "chunk": 250, "batch": 32,
             "units": 32}
    out = {"a": a, "b": b, "c": c}
    for name, cfg in out.items():
        steps = cfg["length"] - (name == "b")  # b: inputs and targets are shifted by one
        cfg["batches"] = cfg["series"] // cfg["batch"] * (steps // cfg["chunk"])
    return out


def runs_on(side, workload):
    """Whether `side` has a way to train `workload` (decoupled: c only)."""
    return side not in KERAS_SIDES or KERAS_SIDES[side][1] != "decoupled" or workload == "c"


# Worker side: the frameworks are imported only here.
def limit_threads(side):
    """Pin to the parent's core and set one thread, before any framework
    runs (the JAX flags are in the environment the parent gave)."""
    core = os.environ.get(CORE_ENV)
    if core is None:
        return
    os.sched_setaffinity(0, {int(core)})
    backend = KERAS_SIDES[side][0] if side in KERAS_SIDES else "torch"
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    elif backend == "torch":
        import_torch()


def thread_settings():
    """What this worker runs on: its cores and each loaded framework's threads."""
    out = {"affinity_cores": (len(os.sched_getaffinity(0))
                              if hasattr(os, "sched_getaffinity") else os.cpu_count())}
    if "tensorflow" in sys.modules:
        threading = sys.modules["tensorflow"].config.threading
        out["tensorflow_intra_op"] = threading.get_intra_op_parallelism_threads()
        out["tensorflow_inter_op"] = threading.get_inter_op_parallelism_threads()
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        out["torch_threads"] = torch.get_num_threads()
        out["torch_interop_threads"] = torch.get_num_interop_threads()
    if "jax" in sys.modules:
        out["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    return out


def make_data(workload, cfg):
    """`(x, y)` as numpy float32: `y` per step for a and b, per series for c."""
    import numpy as np

    rng = np.random.default_rng(0)
    n, length = cfg["series"], cfg["length"]
    if workload == "a":
        t = np.arange(length + 1)[None, :, None]
        period = rng.uniform(20, 200, (n, 1, 1))
        phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
        s = np.sin(2 * np.pi * t / period + phase) + 0.1 * rng.standard_normal((n, length + 1, 1))
        s = s.astype("float32")
        return np.ascontiguousarray(s[:, :-1]), np.ascontiguousarray(s[:, 1:])
    if workload == "b":
        s = rng.standard_normal((n, length, 1), dtype="float32").cumsum(1) / 10
        return np.ascontiguousarray(s[:, :-1]), np.ascontiguousarray(s[:, 1:])
    labels = rng.integers(0, 2, n).astype("float32")
    x = rng.standard_normal((n, length, cfg["features"]), dtype="float32")
    x[:, :, 0] += 0.05 * (2 * labels[:, None] - 1)
    return x, labels


def initial_weights(cfg):
    """Keras' initialisation of LSTM -> Dense, drawn with numpy (one seed for all sides)."""
    import numpy as np

    rng = np.random.default_rng(1)
    f, u = cfg["features"], cfg["units"]

    def glorot(rows, cols):
        limit = np.sqrt(6 / (rows + cols))
        return rng.uniform(-limit, limit, (rows, cols))

    q, r = np.linalg.qr(rng.standard_normal((4 * u, u)))
    recurrent = (q * np.sign(np.diag(r))).T  # orthogonal, (u, 4u)
    bias = np.zeros(4 * u)
    bias[u:2 * u] = 1  # unit_forget_bias (gates i, f, c, o)
    weights = {"kernel": glorot(f, 4 * u), "recurrent": recurrent, "bias": bias,
               "dense_kernel": glorot(u, 1), "dense_bias": np.zeros(1)}
    return {k: v.astype("float32") for k, v in weights.items()}


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def keras_side(workload, cfg, way, spe):
    """`(epoch, info)`: a function training one epoch -> (seconds, loss)."""
    import warnings

    import keras

    import keras_tbptt

    x, y = make_data(workload, cfg)
    classify = workload == "c"
    optimizer = keras.optimizers.Adam(LR, epsilon=EPSILON)
    head = keras.layers.Dense(1, activation="sigmoid" if classify else None)
    info = {"steps_per_execution": spe}
    if way == "decoupled":  # one sample per recording, as bench_classification.py
        plan = None
        lstm = keras_tbptt.TBPTTLSTM(cfg["units"], truncate_gradient=cfg["chunk"])
        model = keras.Sequential([keras.Input(shape=x.shape[1:]), lstm, head])
        trained, batches = model, math.ceil(len(x) / cfg["batch"])
    else:
        if workload == "b":
            plan = keras_tbptt.one_step(x, y, batch_size=cfg["batch"])
        else:
            plan = keras_tbptt.naive_split(x, cfg["chunk"], y, batch_size=cfg["batch"])
        model = keras.Sequential([
            keras.Input(batch_shape=(plan.batch_size, plan.timesteps, cfg["features"])),
            keras_tbptt.TBPTTLSTM(cfg["units"], stateful=True, return_sequences=not classify,
                                  **plan.layer_kwargs),
            head,
        ])
        trained, batches = model, len(plan)
        if way == "flags":
            trained = keras_tbptt.with_reset_flags(model)
        if classify:
            # The forward-only step where this keras_tbptt has it; before it
            # the optimizer wrapper, which still runs the backward pass.
            skip = getattr(keras_tbptt, "skip_unweighted", None)
            if skip is not None:
                trained = skip(trained)
                info["unweighted_batches"] = "skip_unweighted"
            else:
                optimizer = keras_tbptt.SkipUnweightedBatches(optimizer)
                info["unweighted_batches"] = "SkipUnweightedBatches"
    w = initial_weights(cfg)
    lstm, dense = model.layers
    for variable, value in [(lstm.cell.kernel, w["kernel"]),
                            (lstm.cell.recurrent_kernel, w["recurrent"]),
                            (lstm.cell.bias, w["bias"]), (dense.kernel, w["dense_kernel"]),
                            (dense.bias, w["dense_bias"])]:
        variable.assign(value)
    trained.compile(optimizer=optimizer, loss="binary_crossentropy" if classify else "mse",
                    steps_per_execution=spe)

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.started

    timer = Timer()

    def epoch():
        if plan is None:
            data = {"x": x, "y": y, "batch_size": cfg["batch"], "callbacks": [timer]}
        else:
            data = {"x": plan.dataset(reset_flags=way == "flags"), "callbacks":
                    [timer] if way == "flags" else [*plan.callbacks(), timer]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            history = trained.fit(**data, shuffle=False, epochs=1, verbose=0)
        return timer.seconds, float(history.history["loss"][-1])

    backend = keras.backend.backend()
    return epoch, {**info, "batches": batches,
                   "versions": {"keras": keras.__version__,
                                backend: __import__(backend).__version__}}


def torch_net(cfg):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(cfg["features"], cfg["units"], batch_first=True)
            self.head = nn.Linear(cfg["units"], 1)

        def forward(self, x, hidden=None):
            out, hidden = self.lstm(x, hidden)
            return self.head(out), hidden

    net = Net()
    w = initial_weights(cfg)
    with torch.no_grad():
        net.lstm.weight_ih_l0.copy_(torch.from_numpy(w["kernel"].T.copy()))
        net.lstm.weight_hh_l0.copy_(torch.from_numpy(w["recurrent"].T.copy()))
        net.lstm.bias_ih_l0.copy_(torch.from_numpy(w["bias"]))
        net.lstm.bias_hh_l0.zero_()
        net.head.weight.copy_(torch.from_numpy(w["dense_kernel"].T.copy()))
        net.head.bias.copy_(torch.from_numpy(w["dense_bias"]))
    # nn.LSTM has two bias vectors (b_ih + b_hh), Keras one: Adam would move
    # their sum twice as fast. Frozen at zero, the update is Keras' update.
    net.lstm.bias_hh_l0.requires_grad_(False)
    return net


def trainable(net):
    return [p for p in net.parameters() if p.requires_grad]


def import_torch():
    """torch, with the parent's threads (one core: 1 and 1 inter-op thread)."""
    try:
        import torch
    except ImportError as error:
        raise SystemExit(f"torch is not installed ({error}): pip install torch") from None
    if torch.get_num_threads() != int(os.environ[TORCH_THREADS_ENV]):
        torch.set_num_threads(int(os.environ[TORCH_THREADS_ENV]))
    if CORE_ENV in os.environ and torch.get_num_interop_threads() != 1:
        torch.set_num_interop_threads(1)  # allowed once, before any inter-op work
    return torch


def torch_side(workload, cfg):
    torch = import_torch()
    from torch import nn

    x, y = (torch.from_numpy(a) for a in make_data(workload, cfg))
    net = torch_net(cfg)
    optimizer = torch.optim.Adam(trainable(net), lr=LR, eps=EPSILON)
    k, batch = cfg["chunk"], cfg["batch"]

    def repackage_hidden(h):
        """Wraps hidden states in new Tensors, to detach them from their history."""
        if isinstance(h, torch.Tensor):
            return h.detach()
        return tuple(repackage_hidden(v) for v in h)

    def epoch():
        net.train()
        losses = []
        started = time.perf_counter()
        for g in range(0, len(x), batch):
            xg, yg = x[g:g + batch], y[g:g + batch]
            hidden = (torch.zeros(1, len(xg), cfg["units"]),) * 2  # a new series: zeros
            if workload == "c":
                stop = xg.shape[1] - k
                with torch.no_grad():  # the chunks before the last: no loss, no gradient
                    for s in range(0, stop, k):
                        _, hidden = net.lstm(xg[:, s:s + k], hidden)
                optimizer.zero_grad()
                out, _ = net.lstm(xg[:, stop:], hidden)
                p = torch.sigmoid(net.head(out[:, -1, :]))[:, 0]
                loss = nn.functional.binary_cross_entropy(p, yg)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                continue
            for s in range(0, xg.shape[1] - k + 1, k):
                hidden = repackage_hidden(hidden)
                optimizer.zero_grad()
                out, hidden = net(xg[:, s:s + k], hidden)
                loss = nn.functional.mse_loss(out, yg[:, s:s + k])
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        return time.perf_counter() - started, sum(losses) / len(losses)

    return epoch, {"batches": cfg["batches"], "versions": {"torch": torch.__version__}}


def lightning_side(workload, cfg, epochs, protocol):
    """Runs Lightning's `fit` for `epochs` epochs, each started by the parent."""
    import logging
    import warnings

    torch = import_torch()
    try:
        import pytorch_lightning as pl
    except (ImportError, AttributeError, TypeError) as error:  # or an incompatible install
        raise SystemExit(f"pytorch_lightning cannot be imported ({type(error).__name__}: "
                         f"{error}): pip install 'pytorch-lightning==1.9.*'") from None
    from torch import nn

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    x, y = (torch.from_numpy(a) for a in make_data(workload, cfg))
    k, classify = cfg["chunk"], workload == "c"

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch_net(cfg)
            self.truncated_bptt_steps = k
            self.automatic_optimization = not classify
            self.losses = []

        if classify:
            def tbptt_split_batch(self, batch, split_size):
                xb, yb = batch
                return [[xb[:, s:s + split_size], yb, s + split_size >= xb.shape[1]]
                        for s in range(0, xb.shape[1], split_size)]

        def training_step(self, batch, batch_idx, hiddens):
            if not classify:
                xb, yb = batch
                out, hiddens = self.net(xb, hiddens)
                loss = nn.functional.mse_loss(out, yb)
                self.losses.append(loss.item())
                return {"loss": loss, "hiddens": hiddens}
            xb, yb, last = batch
            if not last:
                with torch.no_grad():
                    _, hiddens = self.net.lstm(xb, hiddens)
                return {"hiddens": hiddens}
            optimizer = self.optimizers()
            out, hiddens = self.net.lstm(xb, hiddens)
            p = torch.sigmoid(self.net.head(out[:, -1, :]))[:, 0]
            loss = nn.functional.binary_cross_entropy(p, yb)
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
            self.losses.append(loss.item())
            return {"loss": loss, "hiddens": hiddens}

        def configure_optimizers(self):
            return torch.optim.Adam(trainable(self), lr=LR, eps=EPSILON)

    class EpochServer(pl.Callback):
        """Waits for the parent's "epoch" before each epoch; reports after it."""

        def on_train_epoch_start(self, trainer, module):
            expect(sys.stdin.readline(), "epoch")
            module.losses.clear()
            self.started = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            seconds = time.perf_counter() - self.started
            send(protocol, {"seconds": seconds,
                            "loss": sum(module.losses) / len(module.losses)})

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                         batch_size=cfg["batch"], shuffle=False)
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[EpochServer()])
    module = Module()
    send(protocol, {"ready": True, "rss_before": rss(), "batches": cfg["batches"],
                    "versions": {"torch": torch.__version__, "pytorch_lightning": pl.__version__},
                    "threads": thread_settings()})
    trainer.fit(module, loader)


def send(protocol, message):
    protocol.write(json.dumps(message) + "\n")
    protocol.flush()


def expect(line, word):
    if line.strip() != word:
        raise SystemExit(f"worker: expected {word!r} from the parent, got {line!r}")


def worker(side, workload, quick, spe, epochs):
    limit_threads(side)
    # The protocol goes to the real stdout; everything the frameworks print, to stderr.
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    cfg = configs(quick)[workload]
    if side == "lightning":
        lightning_side(workload, cfg, epochs, protocol)
    else:
        if side in ("torch_loop", "torch_loop_again"):
            epoch, info = torch_side(workload, cfg)
        else:
            epoch, info = keras_side(workload, cfg, KERAS_SIDES[side][1], spe)
        send(protocol, {"ready": True, "rss_before": rss(), "threads": thread_settings(),
                        **info})
        for _ in range(epochs):
            expect(sys.stdin.readline(), "epoch")
            seconds, loss = epoch()
            send(protocol, {"seconds": seconds, "loss": loss})
    expect(sys.stdin.readline(), "quit")
    send(protocol, {"maxrss": max_rss()})


def tune_worker(side, workload, quick, values):
    """Seconds of one epoch (after a compiling one) per `steps_per_execution`."""
    limit_threads(side)
    cfg = configs(quick)[workload]
    seconds = {}
    for spe in values:
        epoch, _ = keras_side(workload, cfg, "flags", spe)
        epoch()
        seconds[spe] = epoch()[0]
        print(f"[{side} {workload}] steps_per_execution={spe}: {seconds[spe]:.3f} s",
              file=sys.stderr, flush=True)
    return seconds


# Parent side.
def worker_env(side, args):
    """The environment of `side`'s worker: its backend, cores and threads."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=path)
    env[TORCH_THREADS_ENV] = str(args.torch_threads)
    env.pop(CORE_ENV, None)
    if args.cores == "one":
        env.update(ONE_THREAD)  # XLA's flags must be set before jax is imported
        env[CORE_ENV] = str(args.core)
    if side in KERAS_SIDES:
        env["KERAS_BACKEND"] = KERAS_SIDES[side][0]
    return env


class Worker:
    def __init__(self, side, workload, args, spe, epochs):
        command = [sys.executable, __file__, "--worker", side, workload, str(int(args.quick)),
                   str(spe), str(epochs)]
        self.side = side
        self.process = subprocess.Popen(command, env=worker_env(side, args), cwd=ROOT,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)

    def receive(self):
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise RuntimeError(f"the {self.side} worker exited (status "
                               f"{self.process.returncode}); see its messages above")
        return json.loads(line)

    def ask(self, word):
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()
        return self.receive()

    def close(self):
        try:
            return self.ask("quit")["maxrss"]
        finally:
            self.process.stdin.close()
            self.process.wait()


def available(side):
    """`None`, or why the side cannot run here."""
    needs = {"lightning": ["torch", "pytorch_lightning"], "torch_loop": ["torch"],
             "torch_loop_again": ["torch"]}.get(side, [])
    if side in KERAS_SIDES:
        needs = [KERAS_SIDES[side][0]]
    pip = {"pytorch_lightning": "'pytorch-lightning==1.9.*'"}
    for module in needs:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install {pip.get(module, module)})"
    return None


def tune(side, workload, args, batches):
    values = [v for v in args.spe if v <= batches] or [1]
    if KERAS_SIDES[side][0] == "torch":  # Keras' torch trainer refuses any other
        values = [1]
    if len(values) == 1:
        return values[0], None
    out = subprocess.run([sys.executable, __file__, "--tune", side, workload,
                          str(int(args.quick)), *map(str, values)],
                         env=worker_env(side, args), cwd=ROOT, stdout=subprocess.PIPE,
                         text=True, check=True).stdout
    seconds = {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}
    return min(seconds, key=seconds.get), seconds


def run_workload(workload, cfg, args):
    epochs = 1 + args.repeats
    result = {"config": cfg, "sides": {}, "unavailable": {}}
    sides = [s for s in args.side if runs_on(s, workload)]
    for side in list(sides):
        why = available(side)
        if why is not None:
            result["unavailable"][side] = why
            sides.remove(side)
            print(f"[{workload}] {side} skipped: {why}", file=sys.stderr, flush=True)
    workers = {}
    for side in sides:
        spe, tuning = 1, None
        if KERAS_SIDES.get(side, (None, None))[1] == "flags":
            spe, tuning = tune(side, workload, args, cfg["batches"])
        workers[side] = Worker(side, workload, args, spe, epochs)
        result["sides"][side] = {"tuning_s": tuning, "epochs": []}
    for side, w in list(workers.items()):
        try:
            result["sides"][side].update(w.receive())
        except RuntimeError as error:
            result["unavailable"][side] = str(error)
            del workers[side], result["sides"][side]
    for r in range(epochs):
        names = list(workers)
        order = names[r % len(names):] + names[:r % len(names)]
        for side in order:
            result["sides"][side]["epochs"].append(workers[side].ask("epoch"))
        print(f"[{workload}] epoch {r + 1}/{epochs}: " + ", ".join(
            f"{s} {result['sides'][s]['epochs'][-1]['seconds']:.2f} s" for s in order),
            file=sys.stderr, flush=True)
    for side, w in workers.items():
        result["sides"][side]["maxrss"] = w.close()
    summarise(result, workload)
    return result


def timed(side):
    """The timed epochs' seconds, in round order (epoch 1 if none is timed)."""
    return [e["seconds"] for e in side["epochs"][1:]] or [side["epochs"][0]["seconds"]]


def summarise(result, workload):
    sides, cfg = result["sides"], result["config"]
    # c: every way reads the same 64 recordings per epoch, in different batches.
    result["unit"] = "recordings" if workload == "c" else "batches"
    per_epoch = cfg["series"] if workload == "c" else cfg["batches"]
    for s in sides.values():
        s["median_epoch_s"] = statistics.median(timed(s))
        s["per_s"] = per_epoch / s["median_epoch_s"]
        s["first_epoch_s"] = s["epochs"][0]["seconds"]
        s["final_loss"] = s["epochs"][-1]["loss"]
    if "torch_loop" in sides:
        # Within a round the sides are neighbours in time: slow drifts cancel.
        base = timed(sides["torch_loop"])
        for s in sides.values():
            s["vs_torch_loop"] = statistics.median(
                b / t for b, t in zip(base, timed(s), strict=True))
    if "torch_loop" in sides and "torch_loop_again" in sides:
        result["aa_ratio"] = sides["torch_loop_again"]["vs_torch_loop"]
    target = max(s["final_loss"] for s in sides.values())
    result["target_loss"] = target
    for s in sides.values():
        total = 0.0
        s["time_to_target_s"] = s["epochs_to_target"] = None
        for i, e in enumerate(s["epochs"]):
            total += e["seconds"]
            if e["loss"] <= target:
                s["time_to_target_s"], s["epochs_to_target"] = total, i + 1
                break
    first = [s["epochs"][0]["loss"] for s in sides.values()]
    result["first_epoch_loss_spread"] = (max(first) - min(first)) / max(abs(min(first)), 1e-12)


def mib(n):
    return f"{n / 2**20:,.0f}"


def threads_label(t):
    """A worker's cores and threads, short: `1 core; TF 1+1; XLA 1`."""
    def count(n):
        return "default" if n == 0 else str(n)  # TensorFlow's 0: its own choice

    parts = [f"{t['affinity_cores']} core{'s' if t['affinity_cores'] > 1 else ''}"]
    if "tensorflow_intra_op" in t:
        parts.append(f"TF {count(t['tensorflow_intra_op'])}+{count(t['tensorflow_inter_op'])}")
    if "torch_threads" in t:
        parts.append(f"torch {t['torch_threads']}+{t['torch_interop_threads']}")
    if "xla_flags" in t:
        one = "intra_op_parallelism_threads=1" in t["xla_flags"]
        parts.append("XLA 1" if one else "XLA default")
    return "; ".join(parts)


def side_label(side, s):
    notes = []
    if KERAS_SIDES.get(side, (None, None))[1] == "flags":
        notes.append(f"spe {s['steps_per_execution']}")
    if "unweighted_batches" in s:
        notes.append(f"`{s['unweighted_batches']}`")
    return f"`{side}`" + (f" ({', '.join(notes)})" if notes else "")


def markdown(r):
    c = r["config"]
    if c["cores"] == "one":
        mode = (f"One core, one thread: every worker pinned to core {c['core']} "
                "(`os.sched_setaffinity`), TensorFlow with intra- and inter-op pools of 1, "
                "XLA single-threaded, torch with 1 thread and 1 inter-op thread; the "
                "\"cores; threads\" column shows what each worker measured (TF and torch: "
                "intra+inter-op threads).")
    else:
        mode = (f"All cores: each framework's default threads, torch with "
                f"{c['torch_threads']} threads.")
    lines = [
        "# Stateful TBPTT training: keras_tbptt vs PyTorch", "",
        (f"- Date: {r['date']}; machine: {r['machine']}; load average at the start "
         f"{r['load_average']}; run time {r['run_seconds']:.0f} s"),
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()), "",
        ("Same data, model, initial weights, Adam(1e-3, epsilon 1e-7) and number of updates "
         "on every side; each side in its own worker process, the sides interleaved one epoch "
         f"at a time (order rotating). {mode} Epoch 1 includes tracing / compilation; then "
         f"{c['repeats']} timed rounds. Throughput: the median timed epoch (a and b: batches "
         "per second, a batch being one chunk of `batch` rows; c: recordings per second). "
         "vs torch loop: the median over rounds of the ratio within a round; the A/A control "
         "`torch_loop_again` (the same loop in a second worker) shows how far a ratio strays "
         "from 1 by noise alone. Time to loss: cumulative epoch time, epoch 1 included, until "
         "the epoch loss is at or below the highest final loss among the sides. Peak memory: "
         "`ru_maxrss` of the worker (framework, data and model), and its rise over training. "
         "In c the chunked ways skip the unlabelled batches with `skip_unweighted` (a "
         "forward-only step) or, where keras_tbptt lacks it, `SkipUnweightedBatches` (the "
         "backward pass runs, the update is skipped), as each row says. See the script's "
         "docstring for the set-up."), "",
        "| side | what |", "|---|---|",
    ]
    ran = {side for w in r["workloads"].values() for side in [*w["sides"], *w["unavailable"]]}
    lines += [f"| `{side}` | {what} |" for side, what in SIDES.items() if side in ran]
    for name, w in r["workloads"].items():
        cfg = w["config"]
        unit = w["unit"]
        lines += ["", f"## {name}: {WORKLOADS[name]}", "",
                  (f"{cfg['batches']} batches of {cfg['batch']} x {cfg['chunk']} steps per "
                   f"epoch; target loss {w['target_loss']:.5g}; epoch-1 losses agree within "
                   f"{100 * w['first_epoch_loss_spread']:.2g}% across the sides."
                   + (f" A/A control: `torch_loop_again` / `torch_loop` = {w['aa_ratio']:.2f}x."
                      if "aa_ratio" in w else "")), "",
                  (f"| side | {unit}/s | vs torch loop | epoch, median (s) | epoch 1 (s) | "
                   "time to loss (s) | final loss | cores; threads | peak memory (MiB) | "
                   "rise (MiB) |"),
                  "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
        for side, s in w["sides"].items():
            ratio = f"{s['vs_torch_loop']:.2f}x" if "vs_torch_loop" in s else "n/a"
            to_target = ("not reached" if s["time_to_target_s"] is None
                         else f"{s['time_to_target_s']:.2f} ({s['epochs_to_target']} ep.)")
            lines.append(
                f"| {side_label(side, s)} | {s['per_s']:,.1f} | {ratio} | "
                f"{s['median_epoch_s']:.3f} | {s['first_epoch_s']:.2f} | {to_target} | "
                f"{s['final_loss']:.5g} | {threads_label(s['threads'])} | "
                f"{mib(s['maxrss'])} | {mib(s['maxrss'] - s['rss_before'])} |")
        for side, why in w["unavailable"].items():
            lines.append(f"| `{side}` | not run: {why} | | | | | | | | |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", action="append", choices=list(WORKLOADS))
    parser.add_argument("--side", action="append", choices=list(SIDES))
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds")
    parser.add_argument("--spe", type=lambda s: [int(v) for v in s.split(",")],
                        default=[1, 10, 50], help="steps_per_execution values to try")
    parser.add_argument("--cores", choices=("one", "all"), default="one",
                        help="one: every worker on one core, one thread (the default); "
                             "all: each framework's default threads")
    parser.add_argument("--core", type=int, default=0, help="the core of --cores one")
    parser.add_argument("--torch-threads", type=int,
                        help="torch.set_num_threads in the torch workers (--cores one: 1; "
                             "all: default the CPUs)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--tune", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:  # SIDE WORKLOAD QUICK SPE EPOCHS
        side, workload, quick, spe, epochs = args.worker
        worker(side, workload, quick == "1", int(spe), int(epochs))
        return
    if args.tune:  # SIDE WORKLOAD QUICK SPE...
        side, workload, quick, *values = args.tune
        print(json.dumps(tune_worker(side, workload, quick == "1", [int(v) for v in values])))
        return
    if args.cores == "one":
        if not hasattr(os, "sched_setaffinity"):
            parser.error("`--cores one` needs os.sched_setaffinity (Linux). Received: "
                         f"--cores one on {sys.platform}; use --cores all")
        if args.core not in os.sched_getaffinity(0):
            parser.error("`--core` must be a CPU this process may run on, one of "
                         f"{sorted(os.sched_getaffinity(0))}. Received: --core={args.core}")
        if args.torch_threads not in (None, 1):
            parser.error("`--torch-threads` must be 1 with `--cores one`. Received: "
                         f"--torch-threads={args.torch_threads}; use --cores all")
        args.torch_threads = 1
    elif args.torch_threads is None:
        args.torch_threads = os.cpu_count()
    args.side = args.side or list(SIDES)
    if args.quick:  # one steps_per_execution: no tuning process
        args.repeats, args.spe = min(args.repeats, 1), args.spe[-1:]
    cfgs = configs(args.quick)
    started = time.perf_counter()
    results = {**header(),
               "config": {"repeats": args.repeats, "spe": args.spe, "quick": args.quick,
                          "cores": args.cores, "core": args.core if args.cores == "one" else None,
                          "torch_threads": args.torch_threads},
               "workloads": {}}
    for workload in args.workload or list(WORKLOADS):
        results["workloads"][workload] = run_workload(workload, cfgs[workload], args)
    results["run_seconds"] = time.perf_counter() - started
    versions = {"python": platform.python_version()}
    for w in results["workloads"].values():
        for s in w["sides"].values():
            versions.update(s["versions"])
    import numpy

    results["versions"] = {**versions, "numpy": numpy.__version__}
    report = markdown(results)
    print(report)
    if not args.quick:
        write_results("bench_peers", results, report)


if __name__ == "__main__":
    main()
