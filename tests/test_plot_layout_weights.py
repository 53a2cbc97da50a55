"""`plot_layout` draws the weights as they are (issue 15).

Weight 0: hatched and unfilled; weighted steps: filled; a partly weighted
chunk: shaded by its share of weighted steps. The share is read as
`sample_weight > 0`, so scaled weights draw the same. Every case failed on
the code before the fix, which filled every owned step as "weight 1".
"""

import numpy as np
import pandas as pd
import pytest

import keras_tbptt as kt

FILLED, LIGHT = 0.8, 0.1  # alpha of weighted steps, of an unweighted one


def _nan_targets():
    values = np.arange(12.0)
    frame = pd.DataFrame({"x": values, "y": [*values[:5], np.nan, *values[6:]]})
    return kt.naive_split(frame, 4, "y", nan="ffill")


@pytest.mark.parametrize(
    "make",
    [
        lambda: kt.naive_split(np.ones((3, 40, 1)), 10, np.array([0.0, 1.0, 2.0]), batch_size=2),
        lambda: kt.naive_split(np.ones((2, 46, 1)), 10, np.ones((2, 46, 1)), remainder="pad"),
        lambda: kt.decoupled_split(np.ones((2, 40, 1)), 10, 20, np.ones((2, 40, 1))),
        _nan_targets,
    ],
    ids=["per_sequence", "padding", "overlapping_windows", "nan_targets"],
)
def test_plot_layout_draws_weight_zero_partial_and_full(make):
    import matplotlib

    matplotlib.use("Agg")
    plan = make()
    figure = kt.plot_layout(plan)
    left, right = figure.axes
    real = plan.positions[:, 0] >= 0
    weights = np.asarray(plan.sample_weight) > 0
    if plan.per_sequence_targets:
        share = weights.astype(float)
        steps = np.where(weights, plan._layout.real_steps(*plan._sample_rows()), 0)
    else:
        share, steps = weights.mean(axis=1), weights.sum(axis=1)
    boxes = [p for p in left.patches if p.get_gid() is None]  # one per real sample
    assert len(boxes) == real.sum()
    for box, expected in zip(boxes, share[real], strict=True):
        if expected == 0:
            assert box.get_hatch() == "////" and box.get_facecolor()[3] == 0
        else:
            assert box.get_hatch() is None
            assert box.get_alpha() == pytest.approx(LIGHT + (FILLED - LIGHT) * expected)
    filled = [p for p in left.patches if p.get_gid() == "weighted"]
    assert sum(p.get_width() for p in filled) == steps.sum()
    assert {p.get_alpha() for p in filled} == {FILLED}
    # Right panel: the real rows with no weight are hatched too.
    hatched = [p.get_hatch() == "////" for p in right.patches]
    assert hatched == (real & (share == 0)).tolist()
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == [
        "weighted steps: sample_weight > 0",
        "partly weighted chunk: shaded by its weighted share",
        "weight 0: hatched, chunk not trained",
    ]


def test_plot_layout_marks_only_the_last_chunk_of_per_sequence_targets():
    import matplotlib

    matplotlib.use("Agg")
    plan = kt.as_is(np.ones((2, 30, 1)), np.array([1.0, 0.0]))  # one chunk each: weighted
    chunks = kt.naive_split(np.ones((2, 30, 1)), 10, np.array([1.0, 0.0]))
    for figure, weighted in ((kt.plot_layout(plan), 2), (kt.plot_layout(chunks), 2)):
        left = figure.axes[0]
        boxes = [p for p in left.patches if p.get_gid() is None]
        assert sum(p.get_hatch() is None for p in boxes) == weighted
    last = [p.get_x() for p in kt.plot_layout(chunks).axes[0].patches if p.get_gid() == "weighted"]
    assert last == [20, 20]  # the chunks that end each series


@pytest.mark.parametrize("width", [7, 12])
def test_plot_layout_draws_at_the_width_asked(width):
    import matplotlib

    matplotlib.use("Agg")
    plan = kt.naive_split(np.zeros((4, 200, 1)), 25, np.zeros((4, 200, 1)), batch_size=4)
    figure = kt.plot_layout(plan, width=width)
    assert figure.get_figwidth() == width
    legend_columns = figure.legends[0]._ncols
    assert legend_columns == (1 if width < 10 else 3)
    matplotlib.pyplot.close(figure)


@pytest.mark.parametrize("width", [4, 0, "7", True, float("nan")])
def test_plot_layout_refuses_a_width_too_narrow_to_read(width):
    plan = kt.naive_split(np.zeros((2, 40, 1)), 20, batch_size=2)
    with pytest.raises(ValueError, match=r"`width` must be a number of inches >= 5\. Received: width="):
        kt.plot_layout(plan, width=width)
