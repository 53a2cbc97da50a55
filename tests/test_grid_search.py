"""grid_search: the systematic split, its statistics, parallel runs, resuming.

Tiny models (TBPTTLSTM(4), one epoch, short series): the point is that the
machinery is right (paired seeds, identical tables whatever runs them,
checkpoints, refusals), not that the models learn. The delayed-recall test
is the one place where learning matters: there the right answer is known.
"""

import sys
import threading

import numpy as np
import pandas as pd
import pytest
from scipy import stats

keras = pytest.importorskip("keras")

import keras_tbptt as kt  # noqa: E402
from keras_tbptt.timesteps.grid_result import GridSearchResult  # noqa: E402

pytestmark = pytest.mark.keras
# TensorFlow's XLA compile costs seconds per model; JAX is only fast jitted.
JIT = False if keras.backend.backend() == "tensorflow" else "auto"
COLUMNS = ["timesteps", "repeat", "seed", "score", "train_loss", "epochs", "seconds"]
SAME = COLUMNS[:-1]  # everything but the wall time is reproducible
SEARCH = {"timesteps": [4, 12], "repeats": 2, "epochs": 1, "progress": False}
X = np.random.default_rng(0).normal(size=(4, 60, 1)).astype("float32")
Y = np.cumsum(X, axis=1) / 4  # a target that needs memory


def build_model(timesteps, batch_size, **layer_kwargs):
    """Module level, so that worker processes can unpickle it."""
    model = keras.Sequential([
        keras.Input(batch_shape=(batch_size, timesteps, 1)),
        kt.TBPTTLSTM(4, stateful=True, return_sequences=True, **layer_kwargs),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"],
                  jit_compile=JIT)
    return model


@pytest.fixture(scope="module")
def reference():
    return kt.grid_search(build_model, X, Y, **SEARCH)


def assert_same_runs(got, expected):
    pd.testing.assert_frame_equal(got.results[SAME], expected.results[SAME])


# ----------------------------------------------------------------------
# The table and its statistics
def test_table_has_one_row_per_run_with_paired_seeds(reference):
    table = reference.results
    assert table.columns.tolist() == COLUMNS
    assert table["timesteps"].tolist() == [4, 4, 12, 12]
    assert table["repeat"].tolist() == [0, 1, 0, 1]
    assert table["seed"].tolist() == [0, 1, 0, 1]  # repeat r: seed r for every length
    assert (table["epochs"] == 1).all() and (table["seconds"] > 0).all()
    assert np.isfinite(table[["score", "train_loss"]]).all().all()
    assert reference.complete and reference.metric == "loss"
    # Different lengths train different models: the scores differ.
    assert table["score"].nunique() == 4


def test_summary_matches_scipy(reference):
    summary = reference.summary(confidence=0.9)
    assert summary.columns.tolist() == ["n", "mean", "std", "sem", "ci_low", "ci_high", "median"]
    for timesteps, row in summary.iterrows():
        scores = reference.results.loc[reference.results["timesteps"] == timesteps, "score"]
        low, high = stats.t.interval(0.9, len(scores) - 1, loc=scores.mean(), scale=stats.sem(scores))
        assert row["n"] == len(scores)
        np.testing.assert_allclose(
            row[["mean", "std", "median", "ci_low", "ci_high"]].astype(float),
            [scores.mean(), scores.std(ddof=1), scores.median(), low, high], rtol=1e-12)
    assert reference.best == summary["mean"].idxmin()


def test_a_seed_gives_the_same_run_in_any_call(reference):
    # Repeat 0 of a search with seed=1 is repeat 1 of the reference (seed 1).
    again = kt.grid_search(build_model, X, Y, **{**SEARCH, "repeats": 1}, seed=1)
    expected = reference.results[reference.results["repeat"] == 1].reset_index(drop=True)
    got = again.results.assign(repeat=1)
    pd.testing.assert_frame_equal(got[SAME], expected[SAME])


def test_repeat_r_starts_every_length_from_the_same_weights():
    initial = []

    def recording(timesteps, batch_size):
        model = build_model(timesteps, batch_size)
        initial.append((timesteps, model.get_weights()))
        return model

    kt.grid_search(recording, X, Y, **SEARCH, seed=7)
    runs = initial[2:]  # after one check per length
    assert [t for t, _ in runs] == [4, 4, 12, 12]  # repeats 0, 1 of each length
    for repeat in (0, 1):
        for a, b in zip(runs[repeat][1], runs[2 + repeat][1], strict=True):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(runs[0][1][0], runs[1][1][0])  # seeds 7 and 8 differ


def _table(scores, keys=("timesteps",)):
    """A results table from {candidate: [score per repeat]}."""
    rows = [
        {**dict(zip(keys, c if isinstance(c, tuple) else (c,))), "repeat": r, "seed": r,
         "score": s, "train_loss": 0.0, "epochs": 1, "seconds": 1.0}
        for c, values in scores.items() for r, s in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_compare_is_a_one_sided_paired_test_with_holm_correction():
    rng = np.random.default_rng(3)
    seed_noise = rng.normal(size=8)  # shared by every length: the paired design
    scores = {5: 1.0 + seed_noise + rng.normal(0, 0.05, 8),
              10: 0.5 + seed_noise + rng.normal(0, 0.05, 8),
              20: 0.52 + seed_noise + rng.normal(0, 0.05, 8)}
    result = GridSearchResult(_table(scores))
    assert result.best == 10
    table = result.compare()
    assert table.index.tolist() == [10, 20, 5]  # best first
    raw = {c: stats.ttest_rel(scores[c], scores[10], alternative="greater").pvalue for c in (5, 20)}
    np.testing.assert_allclose(table.loc[[5, 20], "p_value"], [raw[5], raw[20]])
    smaller, larger = sorted(raw.values())  # Holm: 2 * smallest, then max(that, 1 * next)
    expected = {c: min(1, 2 * p) if p == smaller else max(min(1, 2 * smaller), p)
                for c, p in raw.items()}
    np.testing.assert_allclose(table.loc[[5, 20], "p_adjusted"], [expected[5], expected[20]])
    assert table["worse"].tolist() == [False, False, True]
    # Unpaired, the seed noise would swamp the 0.5 gap; paired, it does not.
    assert stats.ttest_ind(scores[5], scores[10]).pvalue > table.loc[5, "p_value"]
    np.testing.assert_allclose(
        result.compare(test="wilcoxon", correction=None).loc[5, "p_value"],
        stats.wilcoxon(scores[5] - scores[10], alternative="greater").pvalue)


def test_higher_is_better_for_accuracy_like_metrics():
    result = GridSearchResult(_table({4: [0.9, 0.8, 0.85], 8: [0.6, 0.45, 0.6]}),
                              metric="accuracy", higher_is_better=True)
    assert result.best == 4
    table = result.compare()
    assert table.index.tolist() == [4, 8] and table.loc[8, "difference"] < 0
    assert table.loc[8, "p_value"] < 0.05


def test_plot_and_csv(reference, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    figure = reference.plot()
    figure.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 1000
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4", "12"]
    reference.to_csv(tmp_path / "grid.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "grid.csv"), reference.results)


# ----------------------------------------------------------------------
# Parallel: the same table whatever runs it
def test_two_worker_processes_give_the_same_table(reference):
    parallel = kt.grid_search(build_model, X, Y, **SEARCH, n_jobs=2)
    assert_same_runs(parallel, reference)


def test_a_local_dask_cluster_gives_the_same_table(reference):
    distributed = pytest.importorskip("distributed")
    import cloudpickle
    import joblib

    # Dask's workers do not have tests/ on their path: send the builder by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                           dashboard_address=None)
        with cluster, distributed.Client(cluster):
            with joblib.parallel_config(backend="dask"):
                on_dask = kt.grid_search(build_model, X, Y, **SEARCH, n_jobs=-1)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert_same_runs(on_dask, reference)


# ----------------------------------------------------------------------
# Checkpoints and Ctrl-C
def test_interrupted_search_returns_its_runs_and_resumes_from_the_checkpoint(
    reference, tmp_path
):
    checkpoint = tmp_path / "grid.csv"
    calls = []

    def interrupted_after_two_runs(timesteps, batch_size):
        calls.append(timesteps)
        if len(calls) == 5:  # 2 checks (one per length), 2 runs, then Ctrl-C
            raise KeyboardInterrupt
        return build_model(timesteps, batch_size)

    with pytest.warns(UserWarning, match="interrupted: returning the 2 of 4 runs"):
        partial = kt.grid_search(interrupted_after_two_runs, X, Y, **SEARCH,
                                 checkpoint=checkpoint)
    assert not partial.complete
    pd.testing.assert_frame_equal(partial.results[SAME], reference.results[SAME].iloc[:2])
    assert len(pd.read_csv(checkpoint)) == 2

    built = []

    def refuses_finished_lengths(timesteps, batch_size):
        assert timesteps != 4, "both runs of timesteps=4 are in the checkpoint"
        built.append(timesteps)
        return build_model(timesteps, batch_size)

    resumed = kt.grid_search(refuses_finished_lengths, X, Y, **SEARCH, checkpoint=checkpoint)
    assert built == [12, 12, 12]  # the check, then the two runs
    assert resumed.complete
    assert_same_runs(resumed, reference)
    assert len(pd.read_csv(checkpoint)) == 4

    def builds_nothing(timesteps, batch_size):
        raise AssertionError("every run is in the checkpoint")

    finished = kt.grid_search(builds_nothing, X, Y, **SEARCH, checkpoint=checkpoint)
    assert_same_runs(finished, reference)


def test_a_checkpoint_of_another_search_is_refused(tmp_path):
    checkpoint = tmp_path / "grid.csv"
    pd.DataFrame({**{c: [1] for c in COLUMNS}, "search": ["0123456789abcdef"]}).to_csv(
        checkpoint, index=False)
    with pytest.raises(ValueError, match="holds runs of another search"):
        kt.grid_search(build_model, X, Y, **SEARCH, checkpoint=checkpoint)
    pd.DataFrame({"x": [1]}).to_csv(checkpoint, index=False)
    with pytest.raises(ValueError, match="lacks the columns"):
        kt.grid_search(build_model, X, Y, **SEARCH, checkpoint=checkpoint)


# ----------------------------------------------------------------------
# Refusals, all before any training
def _model(batch_size, timesteps, stateful=True, compiled=True):
    model = keras.Sequential([
        keras.Input(batch_shape=(batch_size, timesteps, 1)),
        kt.TBPTTLSTM(2, stateful=stateful, return_sequences=True),
    ])
    if compiled:
        model.compile(loss="mse", jit_compile=JIT)
    return model


def _unpicklable_builder():
    lock = threading.Lock()  # no pickler can send a lock to a worker

    def build(timesteps, batch_size):
        with lock:
            return build_model(timesteps, batch_size)

    return build


REFUSALS = {  # case: (arguments changed, error, message)
    "batch size": ({"build_model": lambda t, b: _model(2, t)},
                   ValueError, r"Expected: input shape \(4, 4, 1\)"),
    "timesteps": ({"build_model": lambda t, b: _model(b, 10)},
                  ValueError, "does not fit the plan"),
    "not stateful": ({"build_model": lambda t, b: _model(None, t, stateful=False)},
                     ValueError, "no stateful recurrent layer"),
    "not compiled": ({"build_model": lambda t, b: _model(b, t, compiled=False)},
                     ValueError, "compiled model"),
    "not a model": ({"build_model": lambda t, b: "model"}, TypeError, "must return a keras.Model"),
    "signature": ({"build_model": lambda t: None}, TypeError, "cannot be called as build_model"),
    "longer than the series": ({"timesteps": [4, 61]}, ValueError,
                               "timesteps=61 does not fit the data: `timesteps` must be <= "),
    "not a divisor": ({"timesteps": [4, 7]}, ValueError, "remainder='pad'"),
    "duplicates": ({"timesteps": [4, 4]}, ValueError, "must not repeat"),
    "metric": ({"metric": "accuracy"}, ValueError, r"'accuracy' is not among .*'mae'"),
    "repeats": ({"repeats": 0}, ValueError, "`repeats` must be"),
    "validation": ({"validation": 1.0}, ValueError, "`validation` must be a fraction"),
    "scheme": ({"scheme": "random"}, ValueError, "`scheme` must be one of"),
    "n_jobs": ({"n_jobs": 0}, ValueError, "`n_jobs` must be a non-zero integer"),
    "unknown option": ({"k1": 4}, TypeError, r"unexpected keyword arguments \['k1'\]"),
    "no targets": ({"targets": None}, ValueError, "`targets` must be given"),
    "decoupled without k1": ({"scheme": "decoupled", "timesteps": None},
                             ValueError, r"\(k1, k2\) pairs"),
    "unpicklable": ({"build_model": _unpicklable_builder(), "n_jobs": 2},
                    TypeError, "must be picklable"),
    "timesteps type": ({"timesteps": 4.0}, TypeError,
                       "`timesteps` must be None, a list of candidates or a GradientHorizon"),
    "horizon without k1": ({"scheme": "decoupled", "timesteps": "horizon"}, ValueError,
                           "gives k2 values: with scheme='decoupled', pass k1="),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_before_any_training(case, monkeypatch, tmp_path):
    changes, error, message = REFUSALS[case]
    if changes.get("timesteps") == "horizon":
        changes = {**changes, "timesteps": horizon_at(8)}

    def no_training(*args, **kwargs):
        raise AssertionError("grid_search trained before refusing")

    monkeypatch.setattr(keras.Model, "fit", no_training)
    arguments = {"build_model": build_model, "targets": Y, **SEARCH, **changes}
    with pytest.raises(error, match=message):
        kt.grid_search(arguments.pop("build_model"), X, arguments.pop("targets"),
                       checkpoint=tmp_path / "grid.csv", **arguments)
    assert not (tmp_path / "grid.csv").exists()


def test_default_candidates_divide_the_series_and_the_held_out_part(monkeypatch):
    built = []

    class Checked(Exception):
        pass

    def stop(*args, **kwargs):
        raise Checked  # every candidate has been built and checked by now

    def recording(timesteps, batch_size):
        built.append(timesteps)
        return build_model(timesteps, batch_size)

    monkeypatch.setattr(keras.Model, "fit", stop)
    with pytest.raises(Checked):
        kt.grid_search(recording, X, Y, repeats=1, progress=False)
    # 60 steps, 12 held out: the divisors of 12 from 2 on (then the first run).
    assert built == [2, 3, 4, 6, 12, 2]


def test_padding_is_explicit_and_unequal_held_out_parts_are_flagged(monkeypatch):
    def stop(*args, **kwargs):
        raise RuntimeError("stop")  # the checks are done: no need to train

    monkeypatch.setattr(keras.Model, "fit", stop)
    with pytest.warns(UserWarning, match="scored on different held-out steps"):
        with pytest.raises(RuntimeError, match="stop"):
            kt.grid_search(build_model, X, Y, timesteps=[4, 7], remainder="pad",
                           repeats=1, progress=False)


# ----------------------------------------------------------------------
# A gradient horizon as the candidate source (issue 29)
def horizon_at(k2, candidates=(2, 4, 8, 16)):
    """A measured horizon (no model needed) that suggests `k2`."""
    from keras_tbptt.timesteps.horizon import GradientHorizon

    norms = np.zeros(max(candidates))
    norms[k2 - 1] = 1.0  # the last lag k2 keeps
    ones = [1.0] * len(candidates)
    return GradientHorizon(candidates, ones, ones, ones, ones, norms, threshold=0.95,
                           batches=1)


@pytest.mark.parametrize("suggested, k1, spread, expected", [
    (4, 1, 1, (2, 4, 8)),  # the suggestion itself
    (4, 4, 1, (4, 8, 16)),  # windows advancing by 4 keep 4 lags from k2 = 7 on: 8
    (4, 5, 0, (8,)),  # 4 + 5 - 1 = 8 exactly
    (4, 6, 1, (8, 16)),  # 9: 16, the longest candidate, has one neighbour
    (2, 1, 2, (2, 4, 8)),
])
def test_candidates_around_keep_the_suggested_lags_for_every_trained_output(
        suggested, k1, spread, expected):
    assert horizon_at(suggested).candidates_around(spread=spread, k1=k1) == expected


@pytest.mark.parametrize("kwargs, message", [
    ({"k1": 14}, r"k2 >= suggested \+ k1 - 1 = 17 .* longest candidate is 16.*smaller `k1`"),
    ({"k1": 0}, r"`k1` must be an integer >= 1. Received: k1=0"),
    ({"k1": True}, r"`k1` must be an integer >= 1"),
    ({"spread": -1}, r"`spread` must be an integer >= 0. Received: spread=-1"),
])
def test_candidates_around_refuses_what_it_cannot_give(kwargs, message):
    with pytest.raises(ValueError, match=message):
        horizon_at(4).candidates_around(**kwargs)


@pytest.mark.parametrize("scheme, options, candidates, k2, expected", [
    ("naive", {}, (2, 4, 6, 12), 6, [4, 6, 12]),
    # k2 values: windows advancing by 2 keep 4 lags from k2 = 4 + 2 - 1 = 5 on
    ("decoupled", {"k1": 2}, (2, 4, 6, 12), 4, [4, 6, 12]),
    ("decoupled", {"k1": 1}, (2, 4, 6, 12), 4, [2, 4, 6]),
], ids=["naive", "decoupled", "decoupled-k1-1"])
def test_a_horizon_gives_its_suggestion_and_neighbours(scheme, options, candidates, k2,
                                                       expected, monkeypatch):
    class Checked(Exception):
        pass

    def stop(*args, **kwargs):
        raise Checked  # every candidate has been built and checked by now

    built = []

    def recording(timesteps, batch_size, **layer_kwargs):
        built.append((timesteps, layer_kwargs))
        return build_model(timesteps, batch_size, **layer_kwargs)

    horizon = horizon_at(k2, candidates)
    assert horizon.suggested == k2
    monkeypatch.setattr(keras.Model, "fit", stop)
    runs = {}
    for name, timesteps in [("horizon", horizon), ("list", expected)]:
        built.clear()
        with pytest.raises(Checked):
            kt.grid_search(recording, X, Y, timesteps=timesteps, scheme=scheme, repeats=1,
                           progress=False, **options)
        runs[name] = list(built)
    assert runs["horizon"] == runs["list"] and len(runs["list"]) == len(expected) + 1


# ----------------------------------------------------------------------
# Decoupled k1/k2
def test_decoupled_scheme_passes_the_layer_kwargs():
    seen = []

    def recording(timesteps, batch_size, **layer_kwargs):
        seen.append((timesteps, layer_kwargs))
        return build_model(timesteps, batch_size, **layer_kwargs)

    result = kt.grid_search(recording, X, Y, scheme="decoupled", k1=4, timesteps=[2, 8],
                            repeats=1, epochs=1, progress=False)
    assert result.results.columns.tolist()[:2] == ["k1", "k2"]
    assert result.results[["k1", "k2"]].values.tolist() == [[4, 2], [4, 8]]
    assert result.best in [(4, 2), (4, 8)]
    # k2 < k1: chunks of k1, truncated in the layer; k2 > k1: windows of k2.
    assert seen[-2:] == [(4, {"truncate_gradient": 2}), (8, {"state_step": 4})]
    assert result.compare().index.names == ["k1", "k2"]

    def ignores_layer_kwargs(timesteps, batch_size, **layer_kwargs):
        return build_model(timesteps, batch_size)

    with pytest.raises(ValueError, match=r"(?s)does not match the decoupled_split plan.*truncate_gradient=2"):
        kt.grid_search(ignores_layer_kwargs, X, Y, scheme="decoupled", k1=4,
                       timesteps=[2], repeats=1, progress=False)


# ----------------------------------------------------------------------
# The known answer: a delayed recall needs a gradient that reaches back
DELAY = 6


def build_recall_model(timesteps, batch_size):
    model = keras.Sequential([
        keras.Input(batch_shape=(batch_size, timesteps, 1)),
        kt.TBPTTLSTM(16, stateful=True, return_sequences=True),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse", jit_compile=JIT)
    return model


def test_delayed_recall_ranks_lengths_that_reach_the_delay_first():
    # Target at step t: the input at step t - 6. With truncation by
    # timesteps, a chunk of 3 steps never links an output to the input 6
    # steps back, so the delay cannot be learned (the loss stays near the
    # input variance, 1); a chunk of 12 can.
    inputs = np.random.default_rng(0).normal(size=(8, 240, 1)).astype("float32")
    targets = np.zeros_like(inputs)
    targets[:, DELAY:] = inputs[:, :-DELAY]
    result = kt.grid_search(build_recall_model, inputs, targets, timesteps=[3, 12],
                            repeats=3, epochs=3, progress=False)
    summary = result.summary()
    assert result.best == 12
    assert summary.loc[3, "mean"] > 0.9
    assert summary.loc[12, "mean"] < summary.loc[3, "mean"] - 0.05
    compared = result.compare()
    assert compared["worse"].tolist() == [False, True]  # 12 (best), then 3: worse
    assert compared.loc[3, "p_adjusted"] < 0.05


# ----------------------------------------------------------------------
# The KerasTuner recipe of docs/grid_search.md
def test_keras_tuner_recipe_tunes_timesteps(tmp_path):
    keras_tuner = pytest.importorskip("keras_tuner")

    class TimestepsHyperModel(keras_tuner.HyperModel):
        def __init__(self, series, targets, candidates, validation=0.2):
            super().__init__()
            self.series, self.targets = series, targets
            self.candidates, self.validation = candidates, validation

        def plans(self, hp):
            timesteps = hp.Choice("timesteps", self.candidates)
            plan = kt.naive_split(self.series, timesteps, self.targets)
            return plan.validation_split(self.validation)

        def build(self, hp):
            train, _ = self.plans(hp)
            model = keras.Sequential([
                keras.Input(batch_shape=(train.batch_size, train.timesteps, 1)),
                kt.TBPTTLSTM(hp.Choice("units", [4, 8]), stateful=True, return_sequences=True),
                keras.layers.Dense(1),
            ])
            model.compile(optimizer="adam", loss="mse", jit_compile=JIT)
            return model

        def fit(self, hp, model, *args, callbacks=(), **kwargs):
            train, val = self.plans(hp)
            return model.fit(train.dataset(), validation_data=val.dataset(), shuffle=False,
                             callbacks=[*callbacks, *train.callbacks(validation=val)], **kwargs)

    tuner = keras_tuner.GridSearch(
        TimestepsHyperModel(X, Y, [4, 12]), objective="val_loss", max_trials=4,
        directory=tmp_path, project_name="timesteps", overwrite=True,
    )
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        # keras-tuner 1.4 imports tensorboard for every trial under TensorFlow,
        # TensorBoard callback or not (docs: install it); the recipe is the same.
        tuner._configure_tensorboard_dir = lambda *args, **kwargs: None
    tuner.search(epochs=1, verbose=0)
    trials = tuner.oracle.get_best_trials(num_trials=4)
    tried = {(t.hyperparameters.get("timesteps"), t.hyperparameters.get("units")) for t in trials}
    assert tried == {(4, 4), (4, 8), (12, 4), (12, 8)}  # the whole grid
    assert all(np.isfinite(t.score) for t in trials)
    assert [t.score for t in trials] == sorted(t.score for t in trials)  # best first
    best = tuner.get_best_hyperparameters()[0]
    assert best.get("timesteps") == trials[0].hyperparameters.get("timesteps")
