"""The runs of `grid_search`: models checked against their plans, runs in
this process or in joblib workers, the checkpoint file.

Internal to `keras_tbptt.timesteps.grid_search`; Keras and joblib load
inside the functions.
"""

import contextlib
import hashlib
import os
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from keras_tbptt.core.inputs import as_panel
from keras_tbptt.schemes.decoupled_split import decoupled_split
from keras_tbptt.schemes.naive_split import naive_split
from keras_tbptt.timesteps.grid_result import RESULT_COLUMNS


@dataclass
class Search:
    """Everything a run needs; pickled to the worker processes."""

    build_model: object
    series: object
    targets: object
    scheme: str
    epochs: int
    validation: float
    metric: str
    batch_size: int
    streams: int
    split_options: dict
    seed: int
    backend: str

    @property
    def keys(self):
        return ("timesteps",) if self.scheme == "naive" else ("k1", "k2")

    def label(self, candidate):
        return dict(zip(self.keys, candidate if self.scheme == "decoupled" else (candidate,)))


def plans(search, candidate):
    options = dict(search.split_options)
    options.pop("k1", None)
    if search.scheme == "naive":
        plan = naive_split(search.series, candidate, search.targets,
                           batch_size=search.batch_size, streams=search.streams, **options)
    else:
        k1, k2 = candidate
        plan = decoupled_split(search.series, k1, k2, search.targets,
                               batch_size=search.batch_size, streams=search.streams,
                               **options)
    return plan.validation_split(search.validation)


# ----------------------------------------------------------------------
# Models: built and checked against their plan
def build_checked(search, plan):
    """Call `build_model` for `plan` and refuse a model that does not fit it."""
    import keras

    from keras_tbptt.layers.stateful import stateful_layers
    from keras_tbptt.training.checks import check_model_for_plan

    model = search.build_model(plan.timesteps, plan.batch_size, **plan.layer_kwargs)
    where = f"build_model({plan.timesteps}, {plan.batch_size}"
    where += "".join(f", {k}={v}" for k, v in plan.layer_kwargs.items()) + ")"
    if not isinstance(model, keras.Model):
        raise TypeError(f"`build_model` must return a keras.Model. {where} returned {model!r}")
    if not getattr(model, "compiled", False):
        raise ValueError(f"`build_model` must return a compiled model: {where} returned "
                         "one that is not compiled. Call model.compile(...) in it.")
    try:
        shape = tuple(model.inputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        shape = None  # a subclassed model without a symbolic input
    if shape is not None:
        expected = (plan.batch_size, plan.timesteps, plan.n_features)
        if len(shape) != 3 or any(s is not None and s != e for s, e in zip(shape, expected)):
            raise ValueError(
                f"The model from {where} does not fit the plan's batches.\n"
                f"- Expected: input shape {expected} (batch_size, timesteps, features)\n"
                f"- Received: input shape {shape}\n"
                "Use keras.Input(batch_shape=(batch_size, timesteps, features)) with "
                "the arguments build_model receives."
            )
    if plan.stateful and not stateful_layers(model):
        raise ValueError(
            f"The model from {where} has no stateful recurrent layer, but the "
            f"{plan.scheme} plan carries the state from batch to batch. Build the "
            "recurrent layers with stateful=True."
        )
    # Batch size, the plan's layer_kwargs and the output against the targets:
    # the checks fit() itself runs, here before any training.
    check_model_for_plan(model, plan, needs_targets=True, call=where)
    return model


def check_models(search, candidates):
    """Build (and once, evaluate) a model per candidate before any training."""
    import keras

    for index, candidate in enumerate(candidates):
        train, val = plans(search, candidate)
        keras.backend.clear_session()
        keras.utils.set_random_seed(search.seed)
        model = build_checked(search, train)
        if index == 0:
            logs = model.evaluate(val.dataset(), callbacks=val.callbacks(), verbose=0,
                                  return_dict=True)
            score(logs, search.metric)
    keras.backend.clear_session()


def score(logs, metric):
    name = metric or "loss"
    if name not in logs:
        raise ValueError(
            f"`metric`={metric!r} is not among the model's evaluation results "
            f"{sorted(logs)}. Compile the model with it, or pass one of those."
        )
    return float(logs[name])


def check_picklable(build_model, n_jobs):
    try:  # what loky and dask use; plain pickle where it is missing
        import cloudpickle as pickler
    except ImportError:
        import pickle as pickler

    try:
        pickler.dumps(build_model)
    except Exception as error:  # pickling raises many types
        raise TypeError(
            f"`build_model` must be picklable to run in worker processes "
            f"(n_jobs={n_jobs}): {type(error).__name__}: {error}. Define it as a "
            "module-level function that builds everything it needs, or use n_jobs=1."
        ) from error


# ----------------------------------------------------------------------
# Runs
def execute(search, pending, n_jobs):
    """Yield the rows of the pending runs as they finish."""
    if n_jobs == 1:
        for candidate, repeat in pending:
            yield run_one(search, candidate, repeat, worker=False)
        return
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered", batch_size=1)
    outputs = parallel(delayed(run_one)(search, c, r, worker=True) for c, r in pending)
    try:
        yield from outputs
    finally:
        outputs.close()  # an interrupted search cancels what is still queued


def run_one(search, candidate, repeat, worker):
    """One run: plan, seed, build, fit, score. Returns one row of the table."""
    if worker:
        configure_worker(search.backend)
    import keras

    started = time.perf_counter()
    train, val = plans(search, candidate)
    keras.backend.clear_session()
    with own_python_random() if worker else contextlib.nullcontext():
        keras.utils.set_random_seed(search.seed + repeat)
        model = build_checked(search, train)
        history = model.fit(train.dataset(), epochs=search.epochs, shuffle=False,
                            verbose=0, callbacks=train.callbacks())
        logs = model.evaluate(val.dataset(), callbacks=val.callbacks(), verbose=0,
                              return_dict=True)
    row = {
        **search.label(candidate),
        "repeat": repeat,
        "seed": search.seed + repeat,
        "score": score(logs, search.metric),
        "train_loss": float(history.history["loss"][-1]),
        "epochs": len(history.epoch),
        "seconds": time.perf_counter() - started,
    }
    keras.backend.clear_session()
    return row


_RANDOM_FUNCTIONS = (
    "seed", "getstate", "setstate", "random", "uniform", "randint", "randrange",
    "choice", "choices", "shuffle", "sample", "getrandbits", "randbytes", "gauss",
    "normalvariate", "lognormvariate", "expovariate", "triangular", "betavariate",
    "gammavariate", "paretovariate", "weibullvariate", "vonmisesvariate",
)


@contextlib.contextmanager
def own_python_random():
    """Give this thread a private `random` generator for the duration of a run.

    Keras draws the seeds of unseeded initializers from Python's global
    `random` (after `keras.utils.set_random_seed` seeds it). A Dask worker
    runs tasks beside its event-loop thread, which also draws from it now
    and then: a draw between the seeding and the model's construction gives
    other initial weights (seen on a loaded machine). Within the run, calls
    of the `random` module from this thread go to a private generator; other
    threads keep the global one.
    """
    owner = threading.get_ident()
    private = random.Random()
    originals = {name: getattr(random, name) for name in _RANDOM_FUNCTIONS
                 if hasattr(random, name)}

    def routed(name, original):
        mine = getattr(private, name)

        def call(*args, **kwargs):
            use = mine if threading.get_ident() == owner else original
            return use(*args, **kwargs)

        return call

    for name, original in originals.items():
        setattr(random, name, routed(name, original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(random, name, original)


def configure_worker(backend):
    """Same backend as the caller, one thread: parallelism is across runs.

    The thread settings take effect when the backend starts its runtime
    (the first operation), so they also hold when unpickling `build_model`
    already imported Keras; they never override the environment.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    flags = os.environ.get("XLA_FLAGS", "")
    if "multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (
            flags + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        ).strip()
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend
        return
    import keras

    if keras.backend.backend() != backend:
        raise RuntimeError(
            f"This worker process runs Keras on {keras.backend.backend()!r}, "
            f"but the search runs on {backend!r}. Restart the workers (or the "
            "Dask cluster) after changing KERAS_BACKEND."
        )


# ----------------------------------------------------------------------
# Checkpoint
def fingerprint(search, higher_is_better):
    """Identify a search by its data and settings (not by `build_model`)."""
    digest = hashlib.blake2b(digest_size=8)
    settings = (search.scheme, search.epochs, search.validation, search.metric,
                higher_is_better, search.batch_size, search.streams,
                sorted((k, repr(v)) for k, v in search.split_options.items()),
                search.backend)
    digest.update(repr(settings).encode())
    panel, target_data = as_panel(
        search.series, search.targets,
        **{k: v for k, v in search.split_options.items() if k not in ("remainder", "k1")},
    )
    arrays = list(panel.arrays) + list(target_data.arrays or [target_data.per_sequence])
    for array in arrays:
        digest.update(repr((array.shape, str(array.dtype))).encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def read_checkpoint(path, keys, fingerprint):
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    table = pd.read_csv(path, dtype={"search": str})
    needed = [*keys, *RESULT_COLUMNS, "search"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(
            f"`checkpoint`={str(path)!r} is not a checkpoint of this kind of search: "
            f"it lacks the columns {missing}. Use a new file."
        )
    table = table.dropna(subset=["seconds"])  # a line cut short by a crash
    others = sorted(set(table["search"].astype(str)) - {fingerprint})
    if others:
        raise ValueError(
            f"`checkpoint`={str(path)!r} holds runs of another search (other data "
            "or settings: scheme, epochs, validation, metric, batch_size, streams, "
            "split options or backend).\n"
            f"- Expected: search id {fingerprint}\n- Received: {others}\n"
            "Use a new file for a new search."
        )
    return table


def append_row(path, row, keys, fingerprint):
    path = Path(path)
    frame = pd.DataFrame([{**row, "search": fingerprint}],
                         columns=[*keys, *RESULT_COLUMNS, "search"])
    header = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as handle:
        frame.to_csv(handle, header=header, index=False)
        handle.flush()
