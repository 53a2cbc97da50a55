"""Cut points that move between epochs: `naive_split(offsets="random")`.

Data side (no Keras): every offset's layout holds each series' steps once,
in order, with padding of weight 0 and resets where the fixed plan has
them. Keras side (every backend): a row flagged `1 + p` is held at its reset
state over the batch's first `p` steps, so its real steps compute exactly
what Keras' own layer computes on the unpadded sequence (outputs, states,
gradients); `fit` trains each epoch on that epoch's layout; the refusals.
"""

import numpy as np
import pytest

import keras_tbptt as kt
from keras_tbptt.core.moving_cuts import moved_epoch, moved_flags

T = 8


def encoded(lengths, features=1):
    """Series whose values name (series, step): 1000 * (series + 1) + step,
    never 0 (0 is padding)."""
    return [
        np.stack([1000.0 * (i + 1) + np.arange(n)] * features, axis=-1).astype("float32")
        for i, n in enumerate(lengths)
    ]


# (lengths, naive_split arguments): equal series; ragged and padded with
# filler rows; streams; a dropped remainder.
CASES = {
    "equal": ([32, 32, 32], {"batch_size": 3}),
    "ragged_filler": ([37, 16, 29], {"batch_size": 2, "remainder": "pad"}),
    "streams": ([48, 32], {"streams": 2, "batch_size": 4}),
    "drop": ([35, 26], {"remainder": "drop"}),
}


def row_streams(plan, offset):
    """Each row's steps end to end over its group's batches at `offset`:
    `[(x, weight)]` per row of every group, in plan order."""
    streams, group = [], []
    for index in range(len(plan)):
        if plan.resets[index] and group:
            streams.append([np.concatenate(part, axis=1) for part in zip(*group)])
            group = []
        x, _, weight = plan.batch(index, offset=offset)
        group.append((x[..., 0], weight))
    streams.append([np.concatenate(part, axis=1) for part in zip(*group)])
    return [(x[i], w[i]) for x, w in streams for i in range(len(x))]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("offset", [0, 1, 5, T - 1])
def test_every_offset_serves_each_series_once_in_order(case, offset):
    lengths, kwargs = CASES[case]
    series = encoded(lengths)
    with pytest.warns(UserWarning) if case == "drop" else _no_warning():
        plan = kt.naive_split(series, T, series, offsets="random", seed=0, **kwargs)
        fixed = kt.naive_split(series, T, series, **kwargs)
    # One more batch per group, the same resets.
    groups = int(fixed.resets.sum())
    assert len(plan) == len(fixed) + groups
    assert plan.resets.sum() == groups
    seen = []
    fixed_rows = [x[w > 0] for x, w in row_streams(fixed, 0)]
    for row, (x, weight) in enumerate(row_streams(plan, offset)):
        real = x[weight > 0]
        assert (x[weight == 0] == 0).all()  # padding: zeros, weight 0
        assert (x[weight > 0] != 0).all()
        if len(real):
            # The row starts `offset` steps in, and runs without a gap.
            first = int(np.flatnonzero(weight > 0)[0])
            assert first == offset
            assert (np.diff(real) == 1).all()
        np.testing.assert_array_equal(real, fixed_rows[row])
        seen.append(real)
    seen = np.concatenate(seen)
    # Each kept step of each series once: nothing dropped, nothing twice.
    kept = np.concatenate([x[w > 0] for x, w in row_streams(fixed, 0)])
    np.testing.assert_array_equal(np.sort(seen), np.sort(kept))
    assert len(np.unique(seen)) == len(seen)
    if case != "drop":
        assert len(seen) == sum(lengths)


def _no_warning():
    import contextlib
    import warnings

    @contextlib.contextmanager
    def guard():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield

    return guard()


def test_offset_zero_is_the_fixed_plan_with_a_padding_chunk():
    series = encoded([24, 24])
    plan = kt.naive_split(series, T, series, offsets="random")
    fixed = kt.naive_split(series, T, series)
    n = fixed.n_samples
    np.testing.assert_array_equal(plan.x[:n], fixed.x)
    assert (plan.x[n:] == 0).all() and (plan.sample_weight[n:] == 0).all()
    # The same mean loss: weight_scale counts the padding chunk.
    assert plan.sample_weight.sum() == pytest.approx(plan.n_samples * T)
    assert plan.positions[n:].tolist() == [[-1, -1]] * 2
    np.testing.assert_array_equal(plan.positions[:n], fixed.positions)
    # The way back is the fixed plan's.
    np.testing.assert_array_equal(np.stack(plan.unsplit(plan.x)), np.stack(series))
    np.testing.assert_array_equal(plan.reset_flags[:2], [1, 1])


@pytest.mark.parametrize("offset", [0, 3, T - 1])
def test_the_epoch_at_once_equals_batch_by_batch(offset):
    series = encoded([37, 16, 29])
    plan = kt.naive_split(series, T, series, batch_size=2, remainder="pad", offsets="random")
    batches = [plan.batch(i, offset=offset) for i in range(len(plan))]
    for part, array in enumerate([plan.x, plan.y, plan.sample_weight]):
        moved = moved_epoch(array, plan.resets, plan.batch_size, offset)
        np.testing.assert_array_equal(moved, np.concatenate([b[part] for b in batches]))
    flags = moved_flags(plan.reset_flags, offset)
    assert flags[plan.reset_flags == 1].tolist() == [1.0 + offset] * 4
    assert (flags[plan.reset_flags == 0] == 0).all()


def test_validation_split_keeps_the_training_part_moving():
    series = encoded([80, 80])
    train, validation = kt.naive_split(
        series, T, series, offsets="random", seed=4
    ).validation_split(0.2)
    assert (train.offsets, train.seed) == ("random", 4)
    assert (validation.offsets, validation.seed) == ("fixed", None)
    assert len(train) == 64 // T + 1 and len(validation) == 16 // T


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"offsets": "moving"}, ValueError, "offsets"),
        ({"offsets": None}, (TypeError, ValueError), "offsets"),
        ({"offsets": "random", "seed": 1.5}, TypeError, "seed"),
        ({"offsets": "random", "seed": -1}, ValueError, "seed"),
        ({"offsets": "random", "seed": True}, TypeError, "seed"),
        ({"seed": 3}, ValueError, "offsets='fixed'"),
        ({"offsets": "random", "pack": True, "batch_size": 2}, ValueError, "pack=True"),
        ({"offsets": "random", "targets": np.zeros(3)}, ValueError, "per-sequence"),
    ],
)
def test_refusals_name_the_argument(kwargs, error, words):
    kwargs = {"targets": None, **kwargs}
    with pytest.raises(error, match=words):
        kt.naive_split(encoded([16, 16, 16]), T, **kwargs)


@pytest.mark.parametrize("offset", [-1, T, 2.0])
def test_batch_offsets_outside_the_chunk_are_refused(offset):
    plan = kt.naive_split(encoded([16]), T, offsets="random")
    with pytest.raises((TypeError, ValueError), match="offset"):
        plan.batch(0, offset=offset)
    fixed = kt.naive_split(encoded([16]), T)
    with pytest.raises(ValueError, match="offsets='fixed'"):
        fixed.batch(0, offset=1)
