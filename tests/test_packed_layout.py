"""The packed layout (`pack=True`) of ragged panels, checked without Keras.

Every series holds distinct non-zero values (`1000 * series + step + 1`), so
padding and filler (zeros) and misplaced steps cannot pass for data. The
expected layout is re-derived here from its definition: rows (series, or
streams of them) cut into windows, placed longest first in the lane with the
fewest windows so far (ties: lowest lane), back to back in each lane.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import keras_tbptt as kt
from conftest import unit_weights
from keras_tbptt.core.build import make_plan
from keras_tbptt.core.inputs import as_panel

LANES = 6
# name -> (scheme call, timesteps, hop)
SCHEMES = {
    "naive": (lambda d, t, **o: kt.naive_split(d, 7, t, remainder="pad", **o), 7, 7),
    "decoupled_long": (
        lambda d, t, **o: kt.decoupled_split(d, 5, 12, t, remainder="pad", **o), 12, 5),
    "decoupled_short": (
        lambda d, t, **o: kt.decoupled_split(d, 9, 4, t, remainder="pad", **o), 9, 9),
    "one_step": (lambda d, t, **o: kt.one_step(d, t, **o), 1, 1),
}


def _lengths(seed=0, n=20):
    return np.random.default_rng(seed).integers(37, 501, size=n).tolist()


def _data(lengths, features=1):
    return [
        (1000.0 * s + np.arange(n, dtype=float)[:, None] + 1) * np.ones(features)
        for s, n in enumerate(lengths)
    ]


def _plan(scheme, data, targets=None, **options):
    make = SCHEMES[scheme][0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-sequence targets after padding
        return make(data, targets, batch_size=LANES, **options)


def _stream_starts(length, streams):
    """Where each stream of a series starts (np.array_split sizes)."""
    sizes = [len(part) for part in np.array_split(np.arange(length), streams)]
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist(), sizes


def _windows(length, timesteps, hop):
    """Windows of `timesteps` every `hop` that cover `length` (last one padded)."""
    return 1 + max(0, -(-(length - timesteps) // hop))


def _expected_lanes(lengths, streams, timesteps, hop, lanes):
    """`[batches, lanes, 2]` (series, start) by longest-processing-time greedy."""
    rows = []  # (series, start, windows) in row order: series, then stream
    for s, n in enumerate(lengths):
        starts, sizes = _stream_starts(n, streams)
        rows += [(s, a, _windows(m, timesteps, hop)) for a, m in zip(starts, sizes)]
    order = sorted(range(len(rows)), key=lambda r: -rows[r][2])  # stable
    content = [[] for _ in range(lanes)]
    for r in order:
        lane = min(range(lanes), key=lambda i: (len(content[i]), i))
        s, start, count = rows[r]
        content[lane] += [(s, start + w * hop) for w in range(count)]
    n_batches = max(len(c) for c in content)
    cells = np.full((n_batches, lanes, 2), -1)
    for lane, cell in enumerate(content):
        if cell:
            cells[: len(cell), lane] = cell
    return cells


def _stream_start_sets(lengths, streams):
    return [set(_stream_starts(n, streams)[0]) for n in lengths]


@pytest.fixture(params=list(SCHEMES))
def scheme(request):
    return request.param


@pytest.mark.parametrize("streams", [1, 2])
def test_the_layout_is_longest_first_into_the_least_loaded_lane(scheme, streams):
    lengths = _lengths()
    _, timesteps, hop = SCHEMES[scheme]
    plan = _plan(scheme, _data(lengths), streams=streams, pack=True)
    expected = _expected_lanes(lengths, streams, timesteps, hop, LANES)
    assert plan.packed and len(plan) == len(expected) and plan.batch_size == LANES
    np.testing.assert_array_equal(plan.positions.reshape(expected.shape), expected)
    # Fewer batches than the grouped layout of the same panel.
    assert len(plan) < len(_plan(scheme, _data(lengths), streams=streams))


@pytest.mark.parametrize("streams", [1, 2])
def test_every_real_step_is_trained_once_with_its_data(scheme, streams):
    lengths = _lengths(1)
    data = _data(lengths)
    targets = [-d for d in data]
    plan = _plan(scheme, data, targets, streams=streams, pack=True)
    x, y, weights = plan.x, plan.y, unit_weights(plan)
    assert weights.shape == x.shape[:2]
    count = [np.zeros(n, int) for n in lengths]
    for sample, (series, start) in enumerate(plan.positions):
        if series < 0:  # filler: zeros, weight 0
            assert (x[sample] == 0).all() and (weights[sample] == 0).all()
            continue
        steps = start + np.arange(plan.timesteps)
        inside = steps < lengths[series]
        real = x[sample, :, 0] != 0
        # Real data first, then zeros only (padding at a stream or series end).
        assert real[: real.sum()].all() and real.sum() >= 1
        np.testing.assert_array_equal(x[sample, real], data[series][steps[real]])
        assert (inside | ~real).all()
        owned = weights[sample] == 1
        assert (owned <= real).all()  # never padding
        np.testing.assert_array_equal(y[sample, owned], targets[series][steps[owned]])
        count[series][steps[owned]] += 1
    for c in count:
        np.testing.assert_array_equal(c, 1)
    # The batches are the same arrays, batch by batch.
    for index, (bx, by, bw) in enumerate(plan.batches()):
        rows = slice(index * LANES, (index + 1) * LANES)
        np.testing.assert_array_equal(bx, x[rows])
        np.testing.assert_array_equal(by, y[rows])
        np.testing.assert_array_equal(unit_weights(plan, bw), weights[rows])


@pytest.mark.parametrize("streams", [1, 2])
def test_reset_flags_fall_where_a_lane_changes_row_and_lanes_continue(scheme, streams):
    lengths = _lengths(2)
    _, _, hop = SCHEMES[scheme]
    plan = _plan(scheme, _data(lengths), streams=streams, pack=True)
    positions = plan.positions.reshape(len(plan), LANES, 2)
    flags = plan.reset_flags.reshape(len(plan), LANES)
    assert plan.reset_flags.dtype == np.float32 and set(np.unique(flags)) <= {0.0, 1.0}
    starts = _stream_start_sets(lengths, streams)
    assert (flags[0] == 1).all()
    for lane in range(LANES):
        series = positions[:, lane, 0]
        filler = series < 0
        # Filler only at the end of a lane.
        assert not filler.any() or filler[np.argmax(filler):].all()
        assert (flags[filler, lane] == 1).all()
        for b in range(1, len(plan)):
            (s0, p0), (s, p) = positions[b - 1, lane], positions[b, lane]
            if s < 0:
                continue
            new_row = s0 != s or p in starts[s]
            assert flags[b, lane] == new_row
            if not new_row:  # the state carries on: same series, one hop on
                assert p == p0 + hop
            else:  # a row starts at the start of its series or stream
                assert p in starts[s]
    # Batches where every lane resets are the plan's resets.
    np.testing.assert_array_equal(plan.resets, (flags == 1).all(axis=1))
    assert plan.resets[0] and plan.resets.sum() < len(plan)


@pytest.mark.parametrize("per_step", [True, False], ids=["per_step", "per_sequence"])
def test_unsplit_gives_back_lists_and_targets(scheme, per_step):
    lengths = _lengths(3)
    data = _data(lengths, features=2)
    targets = [-d[:, :1] for d in data] if per_step else np.arange(len(lengths)) + 0.5
    plan = _plan(scheme, data, targets, pack=True)
    for original, restored in zip(data, plan.unsplit(plan.x), strict=True):
        np.testing.assert_array_equal(restored, original)  # NaN nowhere
    if per_step:
        for original, restored in zip(targets, plan.unsplit(plan.y), strict=True):
            np.testing.assert_array_equal(restored, original)
        return
    # Per sequence: weight 1 on each series' last window, with its label.
    weights, y, positions = unit_weights(plan), plan.y, plan.positions
    assert weights.shape == (plan.n_samples,)
    _, timesteps, hop = SCHEMES[scheme]
    last_start = [(_windows(n, timesteps, hop) - 1) * hop for n in lengths]
    expected = np.array([s >= 0 and p == last_start[s] for s, p in positions])
    np.testing.assert_array_equal(weights, expected)
    np.testing.assert_array_equal(y[expected], targets[positions[expected, 0]])
    outputs = np.arange(plan.n_samples, dtype=float)
    np.testing.assert_array_equal(plan.unsplit(outputs), np.flatnonzero(expected)[
        np.argsort(positions[expected, 0])])


@pytest.mark.parametrize("streams", [1, 2])
def test_unsplit_of_a_3d_array_and_a_long_frame(scheme, streams):
    data = np.stack(_data([95] * 9, features=2))  # equal lengths, padded windows
    plan = _plan(scheme, data, data[..., :1], streams=streams, pack=True)
    np.testing.assert_array_equal(plan.unsplit(plan.x), data)
    np.testing.assert_array_equal(plan.unsplit(plan.y), data[..., :1])
    lengths = _lengths(4, n=8)
    frame = pd.DataFrame({
        "id": np.repeat([f"s{i}" for i in range(len(lengths))], lengths),
        "t": np.concatenate([np.arange(n) for n in lengths]),
        "v": np.concatenate(_data(lengths))[:, 0],
    }).sample(frac=1.0, random_state=0)  # rows out of time order
    make = SCHEMES[scheme][0]
    plan = make(frame, None, id_col="id", time_col="t", batch_size=3,
                streams=streams, pack=True)
    back = plan.unsplit(plan.x)
    np.testing.assert_array_equal(back.loc[frame.index, "v"].to_numpy(), frame["v"].to_numpy())
    assert not back.isna().any().any()


@pytest.mark.parametrize("streams", [1, 2])
def test_fill_ratio_counts_real_steps_and_packing_raises_it(scheme, streams):
    data = _data(_lengths(5))
    plain = _plan(scheme, data, streams=streams)
    packed = _plan(scheme, data, streams=streams, pack=True)
    for plan in (plain, packed):
        x = plan.x
        # Data is never 0: the real steps of a window are its non-zero steps.
        assert plan.fill_ratio == pytest.approx((x[..., 0] != 0).sum() / x[..., 0].size)
    assert packed.fill_ratio > plain.fill_ratio
    if scheme == "one_step":  # filler only in the lanes that end early
        total = sum(len(d) for d in data)
        assert packed.fill_ratio == pytest.approx(total / (len(packed) * LANES))
        assert len(packed) < total / LANES + max(len(d) for d in data) / streams


def test_one_step_packs_a_balanced_panel_without_filler():
    plan = kt.one_step(_data([8, 6, 4, 2, 2, 2]), batch_size=2, pack=True)
    assert plan.fill_ratio == 1.0 and len(plan) == 12 and (plan.positions[:, 0] >= 0).all()


def test_repr_and_grouped_plans_are_unchanged():
    data = _data([40, 25, 13])
    plan = kt.naive_split(data, 5, batch_size=2, remainder="pad")
    assert not plan.packed and "packed" not in repr(plan)
    assert plan.fill_ratio == pytest.approx(78 / (plan.n_samples * 5))
    packed = kt.naive_split(data, 5, batch_size=2, remainder="pad", pack=True)
    assert repr(packed).endswith(
        f"stateful=True, packed=True, fill={packed.fill_ratio:.2f})")
    # Equal lengths, no padding: a grouped plan's batches stay views.
    panel = np.stack(_data([40] * 4))
    assert np.shares_memory(kt.naive_split(panel, 5, batch_size=2).batch(1)[0], panel)
    # Packed batches gather: right values all the same.
    batch = kt.naive_split(panel, 5, batch_size=2, pack=True).batch(1)[0]
    np.testing.assert_array_equal(batch[:, 0, 0], [6, 1006])


def test_validation_split_keeps_plans_packed(scheme):
    lengths = _lengths(6)
    data = _data(lengths)
    plan = _plan(scheme, data, data, pack=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rounding to whole windows
        train, validation = plan.validation_split(0.2)
    assert train.packed and validation.packed and train.batch_size == LANES
    for original, first, second in zip(
        data, train.unsplit(train.x), validation.unsplit(validation.x), strict=True
    ):
        seen = ~np.isnan(first[:, 0])
        np.testing.assert_array_equal(np.where(seen[:, None], first, second), original)
        assert seen[: seen.sum()].all() and not np.isnan(second[~seen]).any()


def test_domain_split_passes_pack_through():
    rng = np.random.default_rng(0)
    series = [np.sin(np.arange(n) * 2 * np.pi / 12)[:, None] + 0.1 * rng.normal(size=(n, 1))
              for n in (120, 240, 84, 360)]
    plan = kt.domain_split(series, batch_size=2, pack=True, remainder="pad")
    grouped = kt.domain_split(series, batch_size=2, remainder="pad")
    assert plan.packed and plan.timesteps == grouped.timesteps
    assert plan.fill_ratio > grouped.fill_ratio
    for original, restored in zip(series, plan.unsplit(plan.x), strict=True):
        np.testing.assert_array_equal(restored, original)


def test_plot_layout_draws_lanes_and_their_resets():
    import matplotlib

    matplotlib.use("Agg")
    plan = kt.naive_split(_data([40, 25, 13, 30]), 5, batch_size=2, remainder="pad",
                          pack=True)
    figure = kt.plot_layout(plan)
    _, right = figure.axes
    assert len(right.patches) == plan.n_samples
    real = plan.positions[:, 0] >= 0
    ticks = [line for line in right.lines if line.get_gid() == "lane_reset"]
    assert len(ticks) == int((plan.reset_flags[real] == 1).sum()) == 4
    assert right.get_ylabel() == "lane" and "packed lanes, fill" in figure.texts[0].get_text()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda d: kt.naive_split(d, 5, remainder="pad", pack=True), ValueError,
         r"`pack=True` needs an explicit `batch_size`.*Received: batch_size=None"),
        (lambda d: kt.decoupled_split(d, 5, 10, remainder="pad", pack=True), ValueError,
         "batch_size=16"),
        (lambda d: kt.one_step(d, pack=True), ValueError, "batch_size"),
        (lambda d: kt.domain_split(d, pack=True), ValueError, "batch_size"),
        (lambda d: kt.naive_split(d, 5, batch_size=2, remainder="pad", pack="yes"),
         TypeError, r"`pack` must be True or False. Received: pack='yes'"),
        # Ragged lengths still need remainder="pad": nothing padded silently.
        (lambda d: kt.naive_split(d, 5, batch_size=2, pack=True), ValueError,
         "do not split evenly"),
        (lambda d: kt.naive_split(d, 5, [0, 1, 2], batch_size=2, streams=2,
                                  remainder="pad", pack=True), ValueError, "streams"),
    ],
    ids=["naive", "decoupled", "one_step", "domain", "not_bool", "remainder", "streams"],
)
def test_pack_refuses_what_it_cannot_do(call, error, match):
    with pytest.raises(error, match=match):
        call(_data([40, 23, 17]))


def test_pack_needs_a_stateful_plan():
    with pytest.raises(TypeError, match="pack"):  # stateless schemes do not take it
        kt.as_is(_data([10, 10]), pack=True)
    panel, targets = as_panel(_data([10, 12]), None)
    with pytest.raises(ValueError, match=r"`pack=True` needs a stateful plan"):
        make_plan("as_is", panel, targets, timesteps=12, batch_size=2, remainder="pad",
                  stateful=False, pack=True)


def test_too_many_lanes_warns_about_filler():
    with pytest.warns(UserWarning, match=r"cells .* are filler.*smaller batch_size"):
        plan = kt.naive_split(_data([40, 20]), 5, batch_size=8, pack=True)
    np.testing.assert_array_equal(plan.positions[:, 0].reshape(len(plan), 8)[0],
                                  [0, 1, -1, -1, -1, -1, -1, -1])
