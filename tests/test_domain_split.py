"""suggest_timesteps and domain_split on the series that ship with statsmodels (no Keras)."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import keras_tbptt as kt
from conftest import unit_weights

sm = pytest.importorskip("statsmodels.api")
stattools = pytest.importorskip("statsmodels.tsa.stattools")


def sunspots():
    return sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"]


def co2():
    return sm.datasets.co2.load_pandas().data["co2"]


def elnino():
    # 61 years x 12 month columns -> one monthly series, in time order.
    table = sm.datasets.elnino.load_pandas().data.drop(columns="YEAR")
    return table.to_numpy().ravel()


def nile():
    return sm.datasets.nile.load_pandas().data["volume"]


def cycles(n_series=3, length=400, period=24, noise=1.0, seed=0):
    """Noisy sines sharing one period, with different phases."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return [
        np.sin(2 * np.pi * t / period + phase) + rng.normal(scale=noise, size=length)
        for phase in rng.uniform(0, 2 * np.pi, n_series)
    ]


# ---------------------------------------------------------------------------
# Known answers on real series
@pytest.mark.parametrize(
    "load, kwargs, periods, detrend",
    [
        (sunspots, {}, range(9, 13), "difference"),  # the ~11-year solar cycle
        (co2, {"nan": "interpolate"}, range(51, 54), "difference"),  # 52 weeks
        (elnino, {}, [12], "none"),  # monthly sea temperature
    ],
    ids=["sunspots", "co2", "elnino"],
)
def test_finds_the_known_cycle(load, kwargs, periods, detrend):
    suggestion = kt.suggest_timesteps(load(), **kwargs)
    assert suggestion.period in periods
    assert suggestion.timesteps == suggestion.period  # one window = one cycle
    assert suggestion.detrend == detrend
    assert suggestion.rule.startswith("cycle:")
    assert f"window of {suggestion.period} steps" in suggestion.rule


def test_nile_has_short_memory_and_no_cycle():
    suggestion = kt.suggest_timesteps(nile())
    assert suggestion.period is None
    assert 1 <= suggestion.ar_order <= 2
    assert suggestion.timesteps == max(suggestion.ar_order, 5)
    assert suggestion.rule.startswith("no cycle:")
    assert suggestion.ljung_box_pvalue < 0.05  # it is not white noise


def test_trend_hides_the_cycle_unless_differenced():
    series = co2().interpolate()
    # Undifferenced, the trend keeps the ACF positive: no cycle to find.
    raw = kt.suggest_timesteps(series, detrend="none")
    assert raw.period is None and (raw.table["acf"] > 0.25).all()
    auto = kt.suggest_timesteps(series)
    pvalues = auto.stationarity.iloc[0]
    assert pvalues["adf_pvalue"] >= 0.05 and pvalues["kpss_pvalue"] < 0.05
    assert bool(pvalues["difference"]) and auto.detrend == "difference"
    forced = kt.suggest_timesteps(series, detrend="difference")
    assert forced.period == auto.period and forced.stationarity is None


def test_co2_missing_weeks_need_a_nan_policy():
    with pytest.raises(ValueError, match="nan='ffill', 'interpolate'"):
        kt.suggest_timesteps(co2())
    filled = kt.suggest_timesteps(co2(), nan="ffill", detrend="difference")
    assert filled.period in range(51, 54)


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_white_noise_gets_a_small_window_and_says_so(seed):
    noise = np.random.default_rng(seed).normal(size=600)
    suggestion = kt.suggest_timesteps(noise)
    assert suggestion.period is None
    assert suggestion.timesteps == 5
    assert suggestion.rule.startswith("no structure:")
    assert suggestion.ljung_box_pvalue >= 0.05


def test_red_noise_is_not_a_cycle():
    from statsmodels.tsa.arima_process import arma_generate_sample

    rng = np.random.default_rng(7)
    series = arma_generate_sample([1, -0.9], [1], 800, distrvs=rng.standard_normal)
    suggestion = kt.suggest_timesteps(series)
    assert suggestion.period is None
    assert suggestion.ar_order >= 1 and not suggestion.rule.startswith("no structure")


# ---------------------------------------------------------------------------
# The statistics are statsmodels'
def test_table_matches_statsmodels_for_one_series():
    x = sunspots().to_numpy()
    suggestion = kt.suggest_timesteps(x, detrend="none", max_lag=30, alpha=0.1)
    table = suggestion.table
    assert table["lag"].tolist() == list(range(1, 31))
    r, confint = stattools.acf(x, nlags=30, alpha=0.1, result_object=False)
    p, pconfint = stattools.pacf(x, nlags=30, alpha=0.1, method="ywm")
    np.testing.assert_allclose(table["acf"], r[1:], atol=1e-12)
    np.testing.assert_allclose(table["acf_band"], (confint[:, 1] - r)[1:], atol=1e-12)
    np.testing.assert_allclose(table["pacf"], p[1:], atol=1e-10)
    np.testing.assert_allclose(table["band"], (pconfint[:, 1] - p)[1:], atol=1e-12)
    assert (table["significant"] == (table["pacf"].abs() > table["band"])).all()
    ljung_box = sm.stats.acorr_ljungbox(x, lags=[10])["lb_pvalue"].iloc[0]
    assert suggestion.ljung_box_pvalue == pytest.approx(ljung_box, rel=1e-9, abs=1e-300)


def test_ar_order_is_the_last_significant_pacf_lag_before_a_gap():
    suggestion = kt.suggest_timesteps(sunspots(), detrend="none")
    significant = suggestion.table["significant"].to_numpy()
    order = suggestion.ar_order
    assert significant[order - 1]
    # No three insignificant lags in a row before it, three right after it.
    runs = "".join("x" if s else "." for s in significant[:order])
    assert "..." not in runs and not significant[order : order + 3].any()


def test_panel_pools_length_weighted():
    series = cycles(n_series=3, length=400)
    series[2] = series[2][:300]  # different lengths
    suggestion = kt.suggest_timesteps(series, detrend="none", max_lag=40)
    lengths = np.array([400, 400, 300])
    expected = sum(
        w * stattools.acf(s, nlags=40) for w, s in zip(lengths / lengths.sum(), series)
    )
    np.testing.assert_allclose(suggestion.table["acf"], expected[1:], atol=1e-12)
    # The band uses every step of the panel.
    z = 1.959963984540054
    np.testing.assert_allclose(suggestion.table["band"], z / np.sqrt(1100), rtol=1e-9)
    assert suggestion.lengths == (400, 400, 300)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_long_format_panel_finds_the_shared_period(seed):
    series = cycles(n_series=3, length=400, period=24, noise=1.0, seed=seed)
    frame = pd.concat(
        [pd.DataFrame({"id": f"s{i}", "t": np.arange(400), "y": s}) for i, s in enumerate(series)]
    ).sample(frac=1.0, random_state=seed)  # rows shuffled: time_col restores the order
    suggestion = kt.suggest_timesteps(frame, id_col="id", time_col="t")
    assert suggestion.period in (23, 24, 25)
    assert suggestion.timesteps == suggestion.period
    # Each series alone is noisier than the pool; the pool uses all steps.
    assert suggestion.table["band"].iloc[0] == pytest.approx(1.96 / np.sqrt(1200), rel=1e-3)
    # Same answer from the same data as a 3-D array.
    stacked = kt.suggest_timesteps(np.stack(series)[..., None])
    np.testing.assert_allclose(stacked.table["acf"], suggestion.table["acf"], atol=1e-12)


# ---------------------------------------------------------------------------
# Methods, limits, features
def test_methods():
    x = sunspots()
    pacf = kt.suggest_timesteps(x, method="pacf")
    assert pacf.timesteps == max(pacf.ar_order, 5) and pacf.rule.startswith("the PACF")
    assert pacf.period == kt.suggest_timesteps(x).period  # reported by every method
    acf = kt.suggest_timesteps(x, method="acf")
    band = acf.table
    memory = int(np.argmax(band["acf"].abs() <= band["acf_band"]))
    assert acf.timesteps == max(memory, 5) and acf.rule.startswith("ACF memory")
    assert kt.suggest_timesteps(x, method="period").period == kt.suggest_timesteps(x).period
    with pytest.raises(ValueError, match="method='period' found no significant cycle"):
        kt.suggest_timesteps(np.random.default_rng(0).normal(size=500), method="period")


def test_long_period_warns_and_points_to_decoupled_split():
    series = cycles(n_series=1, length=5000, period=500, noise=0.5)[0]
    with pytest.warns(UserWarning, match=r"decoupled_split\(series, k1=\d+, k2=\d+\)"):
        suggestion = kt.suggest_timesteps(series)
    assert suggestion.period in range(490, 511)
    assert "practical BPTT limit" in suggestion.rule


def test_multivariate_series_need_a_feature():
    frame = pd.DataFrame({"noise": np.random.default_rng(0).normal(size=309),
                          "sun": sunspots().to_numpy()})
    with pytest.raises(ValueError, match=r"`feature` must say which feature.*\['noise', 'sun'\]"):
        kt.suggest_timesteps(frame)
    by_name = kt.suggest_timesteps(frame, feature="sun")
    by_position = kt.suggest_timesteps(frame.to_numpy(), feature=1)
    alone = kt.suggest_timesteps(sunspots())
    assert by_name.timesteps == by_position.timesteps == alone.timesteps
    np.testing.assert_allclose(by_name.table["acf"], alone.table["acf"])


def test_candidates_rank_the_suggestion_first_and_divide_the_length():
    suggestion = kt.suggest_timesteps(sunspots().iloc[:-1])  # 308 = 4 * 7 * 11
    first, *rest = suggestion.candidates
    assert first == (suggestion.timesteps, "suggested")
    values = [c.timesteps for c in suggestion.candidates]
    assert len(values) == len(set(values)) and len(values) <= 6
    assert 2 * suggestion.period in values
    for candidate in rest:
        if candidate.reason.startswith("divides"):
            assert 308 % candidate.timesteps == 0


def test_printable_block_and_repr():
    suggestion = kt.suggest_timesteps(sunspots())
    text = str(suggestion)
    assert text.splitlines()[0] == f"suggested timesteps: {suggestion.timesteps}"
    for part in ("rule:", suggestion.rule, "period:", "AR order:", "candidates:", "309 steps"):
        assert part in text
    assert repr(suggestion).startswith(
        f"TimestepsSuggestion(timesteps={suggestion.timesteps}, period={suggestion.period}"
    )


def test_plot_marks_the_chosen_lag_and_the_period(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    suggestion = kt.suggest_timesteps(sunspots(), method="pacf")  # timesteps != period
    assert suggestion.timesteps != 11
    fig = suggestion.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    for ax in fig.axes:
        vertical = {line.get_label(): line.get_xdata()[0] for line in ax.get_lines()
                    if line.get_label().startswith("timesteps")}
        assert vertical == {f"timesteps={suggestion.timesteps}": suggestion.timesteps}
        assert [line.get_xdata()[0] for line in ax.get_lines()
                if line.get_label() == f"period={suggestion.period}"] == [suggestion.period]
    # When the window is the period, one line marks both.
    cyclic = kt.suggest_timesteps(sunspots())
    labels = [line.get_label() for line in cyclic.plot().axes[0].get_lines()]
    assert "timesteps=11" in labels and not any(label.startswith("period") for label in labels)
    path = tmp_path / "acf.png"
    fig.savefig(path)
    assert path.stat().st_size > 10_000


# ---------------------------------------------------------------------------
# domain_split
def test_domain_split_uses_a_divisor_and_no_padding():
    x = sunspots().to_numpy()
    plan = kt.domain_split(x[:-1], x[1:])
    assert plan.scheme == "domain_split" and plan.timesteps == 11
    assert plan.x.shape == (28, 11, 1) and (unit_weights(plan) == 1).all()
    assert isinstance(plan.suggestion, kt.TimestepsSuggestion)
    assert re.search(r"timesteps_from='cycle of 11 steps in the ACF; 11 divides 308'\)$", repr(plan))
    np.testing.assert_array_equal(plan.unsplit(plan.y).ravel(), x[1:])
    # The same layout as naive_split with that length.
    np.testing.assert_array_equal(plan.x, kt.naive_split(x[:-1], 11, x[1:]).x)


def test_domain_split_rounds_to_a_nearby_divisor():
    series = cycles(n_series=1, length=300, period=11, noise=0.3)[0]
    assert kt.suggest_timesteps(series).timesteps == 11
    plan = kt.domain_split(series, series)
    assert plan.timesteps == 12 and 300 % 12 == 0  # 11 <= 12 <= 11 * 1.2
    assert "rounded up from 11 to 12, which divides 300" in plan.timesteps_from
    plan = kt.domain_split(series, series, tolerance=0.05)  # no divisor in [10.45, 11.55]
    assert plan.timesteps == 11 and "last chunk padded" in plan.timesteps_from
    weight = unit_weights(plan)
    assert weight.sum() == 300 and (weight[-1, 300 - 27 * 11:] == 0).all()


def test_domain_split_pads_unless_the_user_says_otherwise():
    x = sunspots().to_numpy()  # 309 = 3 * 103: no divisor near 11
    padded = kt.domain_split(x, x)
    assert padded.timesteps == 11 and padded.x.shape == (29, 11, 1)
    assert unit_weights(padded).sum() == 309
    with pytest.raises(ValueError, match="do not split evenly"):
        kt.domain_split(x, x, remainder="error")
    with pytest.warns(UserWarning, match="dropped 1 trailing"):
        dropped = kt.domain_split(x, x, remainder="drop")
    assert dropped.x.shape == (28, 11, 1) and "tail dropped" in dropped.timesteps_from


def test_domain_split_panel_long_format_and_validation_split():
    series = cycles(n_series=4, length=480, period=24)
    frame = pd.concat(
        [pd.DataFrame({"id": i, "t": np.arange(480), "y": s, "target": np.roll(s, -1)})
         for i, s in enumerate(series)]
    )
    plan = kt.domain_split(frame, "target", id_col="id", time_col="t", batch_size=2)
    assert plan.timesteps == 24 and plan.batch_size == 2
    assert plan.x.shape == (80, 24, 1)
    assert np.flatnonzero(plan.resets).tolist() == [0, 20]
    # The statistics read the feature column only, never the target column.
    np.testing.assert_allclose(
        plan.suggestion.table["acf"], kt.suggest_timesteps(series).table["acf"]
    )
    train, validation = plan.validation_split(0.2)
    for part in (train, validation):
        assert part.suggestion is plan.suggestion and part.timesteps_from == plan.timesteps_from
    assert "timesteps_from=" in repr(validation)


def test_domain_split_with_streams_divides_each_stream():
    series = cycles(n_series=1, length=960, period=24)[0]
    plan = kt.domain_split(series, streams=4)  # streams of 240 steps
    assert plan.timesteps == 24 and plan.batch_size == 4 and len(plan) == 10
    with pytest.raises(ValueError, match="`streams`=60 cuts the series into streams of 16"):
        kt.domain_split(series, streams=60)


def test_plain_plans_say_nothing_about_a_suggestion():
    plan = kt.naive_split(np.zeros(20), 5)
    assert plan.suggestion is None and "timesteps_from" not in repr(plan)


# ---------------------------------------------------------------------------
# Every argument is validated first, with a message naming it
x309 = np.random.default_rng(0).normal(size=309)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"method": "spectral"}, ValueError, "`method` must be one of 'auto', 'period', 'pacf', 'acf'"),
        ({"max_lag": 0}, ValueError, r"`max_lag` must be None or an integer >= 1\. Received: max_lag=0"),
        ({"max_lag": 5.0}, TypeError, "`max_lag` must be None or an integer"),
        ({"max_lag": 200}, ValueError, r"`max_lag` must be less than half.*\n- Expected: max_lag <= 153.*\n- Received: max_lag=200"),
        ({"alpha": 0}, ValueError, r"`alpha` must be strictly between 0 and 1.*alpha=0"),
        ({"alpha": 1.5}, ValueError, "`alpha` must be strictly between 0 and 1"),
        ({"alpha": "0.05"}, TypeError, "`alpha` must be a number"),
        ({"alpha": True}, TypeError, "`alpha` must be a number"),
        ({"detrend": "seasonal"}, ValueError, "`detrend` must be one of 'auto', 'difference', 'linear', 'none'"),
        ({"nan": "drop"}, ValueError, "nan='drop', which removes steps and so shifts every lag"),
        ({"nan": "zero"}, ValueError, "`nan` must be one of 'error', 'ffill', 'interpolate'"),
        ({"feature": 1.5}, TypeError, "`feature` must be None, a feature position"),
        ({"feature": 3}, ValueError, r"`feature` must be a position between 0 and 0"),
        ({"feature": "sun"}, ValueError, "`feature` names a column that is not a feature"),
        ({"id_col": "id"}, TypeError, "`id_col` and `time_col` need a pandas DataFrame"),
    ],
    ids=lambda v: str(v)[:40] if isinstance(v, dict) else None,
)
@pytest.mark.parametrize("function", ["suggest_timesteps", "domain_split"])
def test_invalid_arguments(function, kwargs, error, match):
    with pytest.raises(error, match=match):
        getattr(kt, function)(x309, **kwargs)


@pytest.mark.parametrize(
    "series, match",
    [
        (np.arange(8.0), "too short for autocorrelation statistics: every series needs at least 10"),
        (np.ones(50), "constant series"),
        ([np.arange(50.0), np.arange(5.0)], "too short"),
        (np.array(["a"] * 20), "`series` must hold numbers"),
    ],
    ids=["short", "constant", "short_in_panel", "text"],
)
def test_invalid_series(series, match):
    with pytest.raises((ValueError, TypeError), match=match):
        kt.suggest_timesteps(series, detrend="none")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"tolerance": -0.1}, ValueError, "`tolerance` must be between 0"),
        ({"tolerance": 1}, ValueError, r"`tolerance` must be between 0.*tolerance=1"),
        ({"tolerance": "0.2"}, TypeError, "`tolerance` must be a number"),
        ({"remainder": "trim"}, ValueError, "`remainder` must be one of 'error', 'pad', 'drop'"),
        ({"batch_size": 0}, ValueError, "`batch_size` must be None or an integer >= 1"),
        ({"streams": 0}, ValueError, "`streams` must be an integer >= 1"),
    ],
)
def test_invalid_domain_split_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        kt.domain_split(x309, **kwargs)


def test_arguments_are_checked_before_the_data():
    # A bad argument is reported even when the data is bad too.
    with pytest.raises(ValueError, match="`alpha`"):
        kt.suggest_timesteps("not a series", alpha=2)
    with pytest.raises(ValueError, match="`tolerance`"):
        kt.domain_split("not a series", tolerance=2)


def test_no_warning_on_ordinary_series():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kt.suggest_timesteps(sunspots())
        kt.domain_split(sunspots().iloc[:-1])


# ----------------------------------------------------------------------
# A gradient horizon as a second source (issue 29): the model's k2 next to
# the correlogram's length.
def one_peak_horizon(lag, timesteps=16, candidates=(2, 4, 8, 16)):
    """A measured horizon whose input gradient sits at one lag."""
    from keras_tbptt.timesteps.horizon import GradientHorizon

    norms = np.zeros(timesteps)
    norms[lag] = 1.0
    ones = [1.0] * len(candidates)
    return GradientHorizon(candidates, ones, ones, ones, ones, norms, threshold=0.95,
                           batches=1)


def test_a_horizon_is_reported_next_to_the_correlogram():
    horizon = one_peak_horizon(lag=9)  # lags 0-15 hold it, 0-7 do not: k2 = 16
    plain = kt.suggest_timesteps(sunspots())
    suggestion = kt.suggest_timesteps(sunspots(), horizon=horizon)
    assert suggestion.timesteps == plain.timesteps == 11  # the data's choice stays
    assert suggestion.horizon is horizon and suggestion.horizon_k2 == 16
    assert plain.horizon is None and plain.horizon_k2 is None
    assert "horizon_k2=16" in repr(suggestion) and "horizon_k2" not in repr(plain)
    assert "gradient k2:         16 (gradient_horizon: smallest k2" in str(suggestion)
    assert suggestion.candidates[:-1] == plain.candidates
    assert suggestion.candidates[-1].timesteps == 16
    # Per lag, the horizon's norm next to the ACF/PACF; NaN past its 16 lags.
    column = suggestion.table.set_index("lag")["input_gradient_norm"]
    assert column[9] == 1.0 and column[[1, 2, 15]].tolist() == [0.0, 0.0, 0.0]
    assert column.loc[16:].isna().all() and len(column) == plain.max_lag
    pd.testing.assert_frame_equal(suggestion.table.drop(columns="input_gradient_norm"),
                                  plain.table)
    labels = [line.get_label() for line in suggestion.plot().axes[0].get_lines()]
    assert "gradient k2=16" in labels


def test_a_horizon_k2_already_among_the_candidates_is_not_repeated():
    plain = kt.suggest_timesteps(sunspots())
    k2 = plain.candidates[0].timesteps  # the suggestion itself
    suggestion = kt.suggest_timesteps(
        sunspots(), horizon=one_peak_horizon(k2 - 1, timesteps=32, candidates=(k2, 32)))
    assert suggestion.horizon_k2 == k2 and suggestion.candidates == plain.candidates


@pytest.mark.parametrize("horizon", [16, [8, 16], "horizon"])
def test_a_horizon_must_be_a_gradient_horizon(horizon):
    with pytest.raises(TypeError, match="`horizon` must be None or a GradientHorizon.*"
                                        f"Received: horizon of type {type(horizon).__name__}"):
        kt.suggest_timesteps(sunspots(), horizon=horizon)
