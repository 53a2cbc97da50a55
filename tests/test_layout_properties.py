"""Property-based tests of the layout invariants (hypothesis, no Keras).

Over random numbers of series, ragged lengths, features, batch sizes,
streams, remainder policies and window lengths/hops, for `naive_split`,
`decoupled_split` (k2 <= k1 and k2 > k1), `one_step` and `random_windows`:

- `unsplit(x)` gives the input back (NaN exactly where no window reaches);
- `positions` name the data each sample of each batch holds;
- resets fall exactly where rows start (a new group), never mid-row;
- `sample_weight` is 1 exactly once on every step that a window trains and
  0 on padding, filler rows, already-trained steps and NaN targets.

Every series holds distinct non-zero values (`1000 * series + step + 1`), so
padding (zeros) and misplaced steps cannot pass for data.
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_tbptt as kt
from conftest import unit_weights

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)


def _data(lengths, features):
    return [
        (1000.0 * s + np.arange(n, dtype=float)[:, None] + 1) * np.ones(features)
        for s, n in enumerate(lengths)
    ]


@st.composite
def plans(draw):
    scheme = draw(st.sampled_from(["naive_split", "decoupled_long", "decoupled_short",
                                   "one_step", "random_windows"]))
    n_series = draw(st.integers(1, 4))
    lengths = draw(st.lists(st.integers(1, 40), min_size=n_series, max_size=n_series))
    features = draw(st.integers(1, 2))
    streams = draw(st.integers(1, 3))
    batch_size = draw(st.one_of(st.none(), st.integers(1, 6)))
    remainder = draw(st.sampled_from(["pad", "drop", "error"]))
    nan_targets = draw(st.booleans())
    data = _data(lengths, features)
    targets = [d.copy() for d in data]
    if nan_targets:  # some targets unknown: they must get weight 0
        for t in targets:
            t[draw(st.lists(st.integers(0, len(t) - 1), max_size=3)), 0] = np.nan
    shortest = max(1, min(lengths) // streams)
    longest = max(lengths) if remainder == "pad" else shortest
    options = dict(batch_size=batch_size, streams=streams, nan="interpolate")
    if scheme == "naive_split":
        args = (draw(st.integers(1, longest)),)
        options["remainder"] = remainder
    elif scheme.startswith("decoupled"):
        k = draw(st.integers(1, longest))
        other = draw(st.integers(1, k))
        args = (other, k) if scheme == "decoupled_long" else (k, other)
        options["remainder"] = remainder
    elif scheme == "one_step":
        args = ()
    else:
        args = (draw(st.integers(1, min(lengths))), draw(st.integers(1, 30)))
        options = dict(batch_size=batch_size or 4, seed=draw(st.integers(0, 9)),
                       nan="interpolate")
    make = getattr(kt, "decoupled_split" if scheme.startswith("decoupled") else scheme)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # filler shares, dropped tails
        try:
            plan = make(data, *args, targets, **options)
        except ValueError as error:  # a layout the arguments cannot make
            message = str(error)
            expected = ("do not split evenly", "leaves empty streams",
                        "would drop whole series", "must be <= the series length")
            if any(text in message for text in expected):
                from hypothesis import reject

                reject()
            raise
    observed = [~np.isnan(t[:, 0]) for t in targets]
    return plan, data, observed


def _hop(plan):
    if plan.layer_kwargs.get("state_step"):
        return plan.layer_kwargs["state_step"]
    return plan.timesteps


@SETTINGS
@given(plans())
def test_unsplit_gives_the_input_back(case):
    plan, data, _ = case
    back = plan.unsplit(plan.x)
    for original, restored in zip(data, back, strict=True):
        covered = ~np.isnan(restored[:, 0])
        np.testing.assert_array_equal(restored[covered], original[covered])
        if plan.scheme != "random_windows":  # only a dropped tail is missing
            assert covered[: covered.sum()].all()


@SETTINGS
@given(plans())
def test_positions_name_the_data_of_every_batch(case):
    plan, data, _ = case
    samples = iter(plan.positions)
    for x, _, _ in plan.batches():
        if plan.stateful:
            assert x.shape[0] == plan.batch_size
        for row in range(x.shape[0]):
            series, start = next(samples)
            if series < 0:  # filler row
                assert (x[row] == 0).all()
                continue
            # Real steps from `start` on, then zero padding (a row may end
            # before the window does: a stream boundary or the series end).
            real = int((x[row, :, 0] != 0).sum())
            assert real >= 1 and (x[row, :real, 0] != 0).all()
            np.testing.assert_array_equal(x[row, :real], data[series][start : start + real])
    assert next(samples, None) is None


@SETTINGS
@given(plans())
def test_resets_fall_exactly_where_rows_start(case):
    plan, _, _ = case
    if not plan.stateful:
        assert plan.resets.all()
        return
    size, hop = plan.batch_size, _hop(plan)
    positions = plan.positions.reshape(len(plan), size, 2)
    assert plan.resets[0]
    # One reset per group of `batch_size` rows (series x streams).
    streams = plan._layout.streams
    assert plan.resets.sum() == -(-plan.n_series * streams // size)
    for b in range(1, len(plan)):
        before, now = positions[b - 1], positions[b]
        continues = [
            s >= 0 and before[row, 0] == s and before[row, 1] + hop == p
            for row, (s, p) in enumerate(now)
        ]
        if plan.resets[b] and streams == 1:
            # A new group of series: no row continues the batch before.
            assert not any(continues)
        elif not plan.resets[b]:
            # Within a group every real row continues its row, and rows that
            # ended stay empty until the group ends.
            assert all(c or s < 0 for c, (s, _) in zip(continues, now))
            assert all(before[row, 0] >= 0 or now[row, 0] < 0 for row in range(size))


@SETTINGS
@given(plans())
def test_weights_are_one_exactly_once_per_trained_step(case):
    plan, data, observed = case
    weights = unit_weights(plan)
    count = [np.zeros(len(d)) for d in data]
    x = plan.x
    for sample, (series, start) in enumerate(plan.positions):
        for step in np.flatnonzero(weights[sample]):
            assert weights[sample, step] == 1
            assert series >= 0 and start + step < len(data[series])  # not padding, not filler
            np.testing.assert_array_equal(x[sample, step], data[series][start + step])
            count[series][start + step] += 1
    back = plan.unsplit(plan.x)
    for c, seen, restored in zip(count, observed, back, strict=True):
        covered = ~np.isnan(restored[:, 0])
        if plan.scheme == "random_windows":  # windows may overlap: each counts
            assert (c[covered & seen] >= 1).all()
        else:  # trained exactly once, NaN targets never
            np.testing.assert_array_equal(c, covered & seen)
        assert (c[~seen] == 0).all()
    # Zero weights inside real data are steps some other window trains (or
    # unknown targets), never a step left untrained.
    for sample, (series, start) in enumerate(plan.positions):
        if series < 0:
            assert (weights[sample] == 0).all()
            continue
        for step in np.flatnonzero(weights[sample] == 0):
            where = start + step
            if where < len(data[series]) and observed[series][where]:
                assert count[series][where] == 1


@pytest.mark.parametrize("remainder", ["pad", "drop"])
def test_properties_cover_streams_with_a_remainder(remainder):
    """A fixed example the strategies above also reach: 3 streams, ragged."""
    data = _data([23, 17], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = kt.naive_split(data, 4, data, streams=3, batch_size=4, remainder=remainder)
    back = plan.unsplit(plan.x)
    for original, restored in zip(data, back, strict=True):
        covered = ~np.isnan(restored[:, 0])
        np.testing.assert_array_equal(restored[covered], original[covered])
    assert unit_weights(plan).sum() == sum((~np.isnan(r[:, 0])).sum() for r in back)


def test_a_row_out_of_windows_holds_zeros_with_overlapping_windows():
    """Found by the properties above: with k2 > k1, a row whose series has no
    window left still received the steps an overlapping window would reach."""
    data = _data([2, 3], 1)
    plan = kt.decoupled_split(data, 1, 2, data, batch_size=2, remainder="pad")
    x, _, weight = plan.batch(1)
    assert plan.positions[2].tolist() == [-1, -1]  # series 0 has one window only
    assert (x[0] == 0).all() and (weight[0] == 0).all()
    np.testing.assert_array_equal(x[1, :, 0], [1002, 1003])
