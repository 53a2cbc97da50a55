"""Scheme 4, the systematic split: a grid search over `timesteps`.

Keras, scipy, matplotlib, tqdm and joblib load inside the functions, so
importing the package stays light. Every run goes through the public API, as
a user would: a scheme builds the plan, `validation_split` holds out the end
of every series, the model trains on `plan.dataset()` with
`plan.callbacks()`.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keras_tbptt.core.inputs import as_panel
from keras_tbptt.core.layout import factors
from keras_tbptt.core.validation import check_choice, check_int
from keras_tbptt.timesteps import grid_runs as runs
from keras_tbptt.timesteps.grid_result import RESULT_COLUMNS, GridSearchResult
from keras_tbptt.timesteps.horizon import GradientHorizon

if TYPE_CHECKING:  # Keras loads inside the runs
    import keras

SCHEMES = ("naive", "decoupled")
SPLIT_OPTIONS = ("remainder", "id_col", "time_col", "time_format", "nan")
MIN_TIMESTEPS = 2  # one step is TBPTT(1, 1): `one_step`, not a chunk length
MAX_TIMESTEPS = 400  # the practical limit of BPTT for an LSTM
MAX_CANDIDATES = 10
_HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1", "r2", "iou")


def grid_search(
    build_model: Callable[..., keras.Model],
    series: np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame,
    targets: (
        np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame | str
        | Sequence[str] | None
    ) = None,
    *,
    timesteps: Sequence[int] | Sequence[tuple[int, int]] | GradientHorizon | None = None,
    scheme: str = "naive",
    repeats: int = 30,
    epochs: int = 10,
    validation: float = 0.2,
    metric: str | None = None,
    mode: str = "auto",
    batch_size: int | None = None,
    streams: int = 1,
    n_jobs: int = 1,
    seed: int = 0,
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = True,
    **split_options: Any,
) -> GridSearchResult:
    """Train a model for every candidate `timesteps`, `repeats` times each.

    The systematic split: evaluate a set of chunk lengths and keep the one
    with the best average held-out score. For each candidate and repeat
    `r`, a run builds the plan (`naive_split`, or `decoupled_split`), holds
    out the last `validation` of every series by time
    (`plan.validation_split`), seeds Keras with `seed + r`
    (`keras.utils.set_random_seed`, after `keras.backend.clear_session()`),
    calls `build_model`, trains for `epochs` epochs on the plan's dataset
    with its reset callbacks (`shuffle=False`) and scores the model on the
    held-out part. Repeat `r` uses the same seed for every candidate (a
    paired design), so `GridSearchResult.compare` can tell real differences
    from seed noise.

    ```
                 repeat 0    repeat 1    ...   repeat R-1
    timesteps 5  seed s      seed s+1          seed s+R-1    -> mean, interval
    timesteps 10 seed s      seed s+1          seed s+R-1    -> mean, interval
    ...                                           paired by repeat: compare()
    ```

    Before any training, every argument is checked, every candidate's plan
    and validation split are built, and one model per candidate is built
    and checked against its plan (batch size, timesteps, features,
    stateful layers, `layer_kwargs`; the first one is also evaluated once,
    which checks `metric`).

    Args:
        build_model: a function `build_model(timesteps, batch_size,
            **layer_kwargs)` returning a compiled Keras model whose input is
            `batch_shape=(batch_size, timesteps, features)` and whose
            recurrent layers are stateful. `layer_kwargs` are the plan's
            (`truncate_gradient`, `state_step` for the decoupled scheme:
            pass them to `TBPTTLSTM`); a function without `**kwargs` or
            those parameters may be used with the naive scheme. With
            `n_jobs != 1` it must be picklable by cloudpickle (a module-level
            function is safest). Set global Keras options (dtype policy)
            inside it: each run starts from `clear_session()`, and worker
            processes do not share the caller's settings.
        series: the data, as for `naive_split`.
        targets: as for `naive_split` (per-step targets: every run trains
            and scores on them).
        timesteps: the candidates. `None` (default): the divisors of the
            series length between 2 and 400 that also divide the held-out
            length (so every candidate is scored on the same steps), at most
            10, spread evenly on a log scale. Other values need
            `remainder="pad"` (zero padding, `sample_weight` 0; mask it with
            `keras.layers.Masking` if the padding must not reach the state).
            For `scheme="decoupled"`: `(k1, k2)` pairs, or `k2` values with
            a fixed `k1=` (default then: the divisors of `k1` from 2 and the
            multiples of `k1` up to 400 that fit). A `GradientHorizon` (from
            `kt.gradient_horizon`) stands for its
            `candidates_around(k1=k1)`: the shortest candidate whose every
            trained output keeps the suggested lags and the candidates next
            to it, as k2 values (`scheme="decoupled"` with `k1=`: windows of
            k2 advancing by k1 need k2 >= suggested + k1 - 1) or as chunk
            lengths around the suggestion (`scheme="naive"`).
        scheme: `"naive"` (default; `naive_split`, k1 = k2 = timesteps) or
            `"decoupled"` (`decoupled_split`; `build_model` gets the
            window length as `timesteps` and the plan's `layer_kwargs`).
        repeats: runs per candidate (default 30; single LSTM runs are noisy).
        epochs: training epochs per run.
        validation: fraction of every series held out by time for scoring.
        metric: name of a compiled metric to score with (default: the
            loss).
        mode: `"auto"` (default: higher is better for names containing
            acc, auc, precision, recall, f1, r2 or iou; lower otherwise),
            `"min"` or `"max"`.
        batch_size, streams: as for `naive_split`.
        n_jobs: runs in parallel, each in a worker process with its own
            Keras session and one thread (joblib; `-1`: one per core).
            `1` (default) runs in this process. Under
            `joblib.parallel_config(backend="dask")` (or Ray's joblib
            backend) pass `n_jobs=-1` to use every worker of the cluster.
            The results for a seed do not depend on `n_jobs`.
        seed: seed of repeat 0; repeat `r` uses `seed + r`.
        checkpoint: a CSV path. Every finished run is appended at once; a
            later call with the same data and settings skips the runs it
            finds there (building no model for them). Rows of a different
            search (other data or settings) in the file raise an error.
        progress: show a progress bar with an ETA (tqdm).
        **split_options: `remainder`, `id_col`, `time_col`, `time_format`,
            `nan` (as for `naive_split`) and, for the decoupled scheme, `k1`.

    Returns:
        A `GridSearchResult`. Ctrl-C (`KeyboardInterrupt`) stops the search
        and returns the runs finished so far (`complete=False`, with a
        warning); with a checkpoint, the same call resumes it.

    Example: two lengths, two repeats, one epoch (a real search uses more
    of each, and a slightly over-provisioned model).

    >>> import numpy as np, keras, keras_tbptt
    >>> x = np.random.default_rng(0).normal(size=(4, 60, 1)).astype("float32")
    >>> def build_model(timesteps, batch_size):
    ...     model = keras.Sequential([
    ...         keras.Input(batch_shape=(batch_size, timesteps, 1)),
    ...         keras_tbptt.TBPTTLSTM(4, stateful=True, return_sequences=True),
    ...         keras.layers.Dense(1)])
    ...     model.compile(optimizer="adam", loss="mse")
    ...     return model
    >>> result = keras_tbptt.grid_search(build_model, x, x, timesteps=[4, 12],
    ...                                  repeats=2, epochs=1, progress=False)
    >>> result.results.columns.tolist()
    ['timesteps', 'repeat', 'seed', 'score', 'train_loss', 'epochs', 'seconds']
    >>> result.summary().index.tolist(), result.best in (4, 12)
    ([4, 12], True)
    """
    search, candidates, repeats, n_jobs, checkpoint, progress, mode = _validate(
        build_model, series, targets, timesteps, scheme, repeats, epochs, validation,
        metric, mode, batch_size, streams, n_jobs, seed, checkpoint, progress,
        split_options,
    )
    higher_is_better = _higher_is_better(metric, mode)
    keys = search.keys
    fingerprint = runs.fingerprint(search, higher_is_better) if checkpoint else None
    finished = runs.read_checkpoint(checkpoint, keys, fingerprint) if checkpoint else None
    wanted = [(c, r) for c in candidates for r in range(repeats)]
    done = {}
    if finished is not None:
        for row in finished.to_dict("records"):
            candidate = _candidate_of(row, search.scheme)
            done[(candidate, int(row["repeat"]))] = row
        wanted_set = set(wanted)
        done = {
            k: v for k, v in done.items()
            if k in wanted_set and int(v["seed"]) == search.seed + k[1]
        }
    pending = [task for task in wanted if task not in done]
    pending_candidates = list(dict.fromkeys(c for c, _ in pending))
    if pending and n_jobs != 1:
        runs.check_picklable(search.build_model, n_jobs)
    if pending_candidates:
        runs.check_models(search, pending_candidates)
    rows = list(done.values())
    interrupted = False

    def record(row):
        rows.append(row)
        if checkpoint:
            runs.append_row(checkpoint, row, keys, fingerprint)

    if pending:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(wanted), initial=len(done), disable=not progress,
                   desc="grid search", unit="run", dynamic_ncols=True)
        try:
            for row in runs.execute(search, pending, n_jobs):
                record(row)
                bar.set_postfix_str(f"last {_describe(search, row)}", refresh=False)
                bar.update()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
        if interrupted:
            warnings.warn(
                f"grid_search was interrupted: returning the {len(rows)} of "
                f"{len(wanted)} runs that finished."
                + (f" Re-run the same call to resume from {checkpoint}." if checkpoint
                   else " Pass checkpoint='grid.csv' to keep runs across calls."),
                stacklevel=2,
            )
    columns = [*keys, *RESULT_COLUMNS]
    table = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    table = table.astype({**{k: "int64" for k in (*keys, "repeat", "seed", "epochs")},
                          "score": float, "train_loss": float, "seconds": float})
    return GridSearchResult(table, keys=keys, metric=metric or "loss",
                            higher_is_better=higher_is_better, complete=not interrupted)


# ----------------------------------------------------------------------
# Validation, before anything runs
def _validate(build_model, series, targets, timesteps, scheme, repeats, epochs,
              validation, metric, mode, batch_size, streams, n_jobs, seed,
              checkpoint, progress, split_options):
    if not callable(build_model):
        raise TypeError(
            "`build_model` must be a function build_model(timesteps, batch_size, "
            f"**layer_kwargs) returning a compiled model. Received: {build_model!r}"
        )
    check_choice(scheme, "scheme", SCHEMES)
    repeats = check_int(repeats, "repeats")
    epochs = check_int(epochs, "epochs")
    if isinstance(validation, bool) or not isinstance(validation, (int, float)) or not (
        0 < validation < 1
    ):
        raise ValueError(
            "`validation` must be a fraction strictly between 0 and 1 (the end "
            f"of every series held out for scoring). Received: validation={validation!r}"
        )
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise TypeError(
            "`metric` must be None (score with the loss) or the name of a compiled "
            f"metric, e.g. 'mae'. Received: metric={metric!r}"
        )
    check_choice(mode, "mode", ("auto", "min", "max"))
    batch_size = check_int(batch_size, "batch_size", allow_none=True)
    streams = check_int(streams, "streams")
    if n_jobs is not None and (
        isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0
    ):
        raise ValueError(
            "`n_jobs` must be a non-zero integer (1: in this process; -1: one "
            f"worker per core) or None (joblib's setting). Received: n_jobs={n_jobs!r}"
        )
    seed = check_int(seed, "seed", minimum=0)
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(
            "`checkpoint` must be None or a path to a CSV file. "
            f"Received: checkpoint={checkpoint!r} of type {type(checkpoint).__name__}"
        )
    if not isinstance(progress, bool):
        raise TypeError(f"`progress` must be True or False. Received: progress={progress!r}")
    allowed = SPLIT_OPTIONS + (("k1",) if scheme == "decoupled" else ())
    unknown = sorted(set(split_options) - set(allowed))
    if unknown:
        raise TypeError(
            f"grid_search() got unexpected keyword arguments {unknown}. Split "
            f"options for scheme={scheme!r}: {', '.join(allowed)}."
        )
    if targets is None:
        raise ValueError(
            "`targets` must be given: grid_search trains and scores a model on "
            "them (per-step targets, like the series; for a DataFrame, column "
            "name(s)). Received: targets=None"
        )
    import keras

    search = runs.Search(
        build_model, series, targets, scheme, epochs, float(validation), metric,
        batch_size, streams, dict(split_options), seed, keras.backend.backend(),
    )
    candidates = _candidates(search, timesteps)
    if seed + repeats >= 2**32:
        raise ValueError(
            f"`seed` + `repeats` must stay below 2**32 (Keras seeds). Received: "
            f"seed={seed}, repeats={repeats}"
        )
    return search, candidates, repeats, n_jobs, checkpoint, progress, mode


def _panel(search):
    options = {k: v for k, v in search.split_options.items() if k != "remainder" and k != "k1"}
    panel, _ = as_panel(search.series, search.targets, **options)
    return panel


def _candidates(search, timesteps):
    """Validated candidates (ints, or (k1, k2) pairs), each with a working plan."""
    fixed_k1 = search.split_options.get("k1")
    if fixed_k1 is not None:
        fixed_k1 = check_int(fixed_k1, "k1")
    if timesteps is None:
        candidates, explicit = _default_candidates(search, fixed_k1), False
    else:
        candidates, explicit = _explicit_candidates(search, timesteps, fixed_k1), True
    held_out, working = {}, []
    for candidate in candidates:
        try:
            train, val = runs.plans(search, candidate)
        except ValueError as error:
            if not explicit:
                continue  # a default k2 that does not fit: not a candidate
            raise ValueError(
                f"Candidate {_describe(search, search.label(candidate))} does not "
                f"fit the data: {error}"
            ) from error
        _check_signature(search.build_model, train)
        positions = val.positions
        real = positions[:, 0] >= 0
        first = pd.Series(positions[real, 1]).groupby(positions[real, 0]).min()
        held_out[candidate] = tuple(first.items())
        working.append(candidate)
    if not working:
        raise ValueError(
            "No default candidate fits the data and the validation fraction "
            f"(lengths {sorted(set(_panel(search).lengths.tolist()))[:3]}, "
            f"validation={search.validation}). Pass `timesteps` explicitly "
            "(with remainder='pad' for lengths that do not divide the series)."
        )
    if len(set(held_out.values())) > 1:
        starts = {_describe(search, search.label(c)): dict(v) for c, v in held_out.items()}
        warnings.warn(
            "The candidates are scored on different held-out steps, because "
            "validation_split rounds the held-out part to whole windows: first "
            f"held-out step per series: {starts}. Prefer candidates that divide "
            "the held-out length, or compare with care.",
            stacklevel=4,
        )
    return working


def _explicit_candidates(search, timesteps, fixed_k1):
    if isinstance(timesteps, GradientHorizon):
        if search.scheme == "decoupled" and fixed_k1 is None:
            raise ValueError(
                "A GradientHorizon as `timesteps` gives k2 values: with "
                "scheme='decoupled', pass k1= too (the steps each window advances "
                f"by, e.g. k1=4). Received: timesteps={timesteps!r}, k1=None"
            )
        k1 = fixed_k1 if search.scheme == "decoupled" else 1
        timesteps = list(timesteps.candidates_around(k1=k1))
    if isinstance(timesteps, (int, np.integer, tuple)) and not isinstance(timesteps, bool):
        timesteps = [timesteps]
    try:
        values = list(timesteps)
    except TypeError:
        raise TypeError(
            "`timesteps` must be None, a list of candidates or a GradientHorizon "
            f"(kt.gradient_horizon). Received: timesteps={timesteps!r} of type "
            f"{type(timesteps).__name__}"
        ) from None
    if not values:
        raise ValueError("`timesteps` must hold at least one candidate. Received: []")
    candidates = []
    for i, value in enumerate(values):
        name = f"timesteps[{i}]"
        if search.scheme == "naive":
            candidates.append(check_int(value, name))
        elif fixed_k1 is not None:
            if isinstance(value, (tuple, list)):
                raise ValueError(
                    f"With a fixed `k1`, `timesteps` holds k2 values. Received: "
                    f"{name}={value!r}. Pass either k1= and k2 values, or (k1, k2) pairs."
                )
            candidates.append((fixed_k1, check_int(value, name)))
        else:
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise ValueError(
                    "With scheme='decoupled', `timesteps` holds (k1, k2) pairs, or "
                    f"k2 values together with k1=. Received: {name}={value!r}"
                )
            candidates.append((check_int(value[0], f"{name}[0] (k1)"),
                               check_int(value[1], f"{name}[1] (k2)")))
    duplicates = sorted({c for c in candidates if candidates.count(c) > 1})
    if duplicates:
        raise ValueError(
            f"`timesteps` must not repeat candidates. Received duplicates: {duplicates}"
        )
    return candidates


def _default_candidates(search, fixed_k1):
    if search.scheme == "decoupled":
        if fixed_k1 is None:
            raise ValueError(
                "With scheme='decoupled', pass `timesteps` as (k1, k2) pairs, or "
                "k1= (the default candidates are then k2 values)."
            )
        values = [d for d in factors(fixed_k1) if d >= MIN_TIMESTEPS]
        values += list(range(2 * fixed_k1, MAX_TIMESTEPS + 1, fixed_k1))
        return [(fixed_k1, k2) for k2 in _spread(values)]
    panel = _panel(search)
    lengths = panel.lengths
    held = np.round(search.validation * lengths).astype(np.int64)
    common = int(np.gcd.reduce(np.concatenate([lengths, held])))
    if common % search.streams:
        return []
    values = [d for d in factors(common // search.streams)
              if MIN_TIMESTEPS <= d <= MAX_TIMESTEPS]
    return _spread(values)


def _spread(values):
    """At most MAX_CANDIDATES of `values`, evenly on a log scale, ends kept."""
    values = sorted(set(values))
    if len(values) <= MAX_CANDIDATES:
        return values
    logs = np.log(values)
    targets = np.linspace(logs[0], logs[-1], MAX_CANDIDATES)
    picked = {values[int(np.argmin(np.abs(logs - t)))] for t in targets}
    return sorted(picked)


def _check_signature(build_model, plan):
    try:
        signature = inspect.signature(build_model)
    except (TypeError, ValueError):
        return  # a builtin or C function: nothing to inspect
    try:
        signature.bind(plan.timesteps, plan.batch_size, **plan.layer_kwargs)
    except TypeError as error:
        expected = ", ".join(["timesteps", "batch_size", *plan.layer_kwargs])
        extra = ", **layer_kwargs" if plan.layer_kwargs else ""
        raise TypeError(
            f"`build_model` cannot be called as build_model({expected}) ({error}).\n"
            f"- Expected: def build_model(timesteps, batch_size{extra})\n"
            f"- Received: {getattr(build_model, '__name__', build_model)}{signature}"
        ) from None


def _higher_is_better(metric, mode):
    if mode != "auto":
        return mode == "max"
    return metric is not None and any(w in metric.lower() for w in _HIGHER_IS_BETTER)


def _describe(search, row):
    return ", ".join(f"{k}={row[k]}" for k in search.keys)


def _candidate_of(row, scheme):
    if scheme == "naive":
        return int(row["timesteps"])
    return (int(row["k1"]), int(row["k2"]))
