"""Every bad input gets a clear ValueError/TypeError naming the argument."""

import numpy as np
import pandas as pd
import pytest

import keras_tbptt as kt

GOOD = np.zeros((2, 40, 1))


@pytest.mark.parametrize(
    "call, error, match",
    [
        # series
        (lambda: kt.naive_split(np.array([1.0, np.nan, 3.0, 4.0]), 2), ValueError,
         r"(?s)NaN at 1 time steps \(series 0 steps \[1\]\).*nan='ffill'"),
        (lambda: kt.naive_split(np.array([1.0, np.inf, 3.0, 4.0]), 2), ValueError,
         "infinite values"),
        (lambda: kt.naive_split(np.array([np.nan, 1.0, 2.0, 3.0]), 2, nan="ffill"),
         ValueError, "leading NaN"),
        (lambda: kt.naive_split(np.array([]), 1), ValueError, "empty series"),
        (lambda: kt.naive_split([np.zeros(4), np.zeros(0)], 2), ValueError, "series 1 has length 0"),
        (lambda: kt.naive_split(np.array(["a", "b"]), 1), TypeError, "`series` must hold numbers"),
        (lambda: kt.naive_split(np.zeros((2, 2, 2, 2)), 1), ValueError, "1-D.*2-D.*3-D"),
        (lambda: kt.naive_split([np.zeros((4, 2)), np.zeros((4, 3))], 2), ValueError,
         "same number of features"),
        (lambda: kt.naive_split(np.zeros(10), 2, nan="zero"), ValueError, "`nan` must be one of"),
        (lambda: kt.naive_split(np.zeros(10), 2, id_col="id"), TypeError, "`id_col`"),
        (lambda: kt.naive_split(pd.DataFrame({"v": [1.0]}), 1, id_col="nope"), ValueError,
         "`id_col` must name a column"),
        (lambda: kt.naive_split(pd.DataFrame({"id": [1, 1], "t": [0, 0], "v": [1.0, 2.0]}), 1,
                                id_col="id", time_col="t"), ValueError, "repeated times"),
        (lambda: kt.naive_split(pd.DataFrame({"v": [1.0, 2.0], "s": ["a", "b"]}), 1), TypeError,
         r"columns must be numeric; \['s'\] are not"),
        (lambda: kt.naive_split(pd.DataFrame({"v": [1.0, 2.0]}), 1, "y"), ValueError,
         "names columns that `series` lacks"),
        (lambda: kt.naive_split(np.zeros((4, 2)), 1, wide=True), TypeError,
         r"`wide=True` needs a pandas DataFrame.*Received: series of type ndarray"),
        (lambda: kt.naive_split(pd.DataFrame({"v": [1.0]}), 1, wide="yes"), TypeError,
         r"`wide` must be True or False\. Received: wide='yes'"),
        (lambda: kt.naive_split(pd.DataFrame({"id": [1], "v": [1.0]}), 1, id_col="id", wide=True),
         TypeError, r"no `id_col`/`time_col`.*id_col='id'"),
        (lambda: kt.naive_split(pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]), 1, wide=True),
         ValueError, r"must be unique.*\['a'\]"),
        (lambda: kt.naive_split(pd.DataFrame({"a": ["x"]}), 1, wide=True), TypeError,
         r"every column of `series` is a series and must be numeric; \['a'\]"),
        # timesteps and layout
        (lambda: kt.naive_split(GOOD, 0), ValueError, r"`timesteps` must be an integer >= 1\. Received: timesteps=0"),
        (lambda: kt.naive_split(GOOD, 2.5), TypeError, "`timesteps` must be an integer"),
        (lambda: kt.naive_split(GOOD, 41), ValueError, r"`timesteps` must be <= the series length"),
        (lambda: kt.naive_split(np.zeros((3, 50)), 10), ValueError, r"series\[\.\.\., None\]"),
        (lambda: kt.naive_split(np.zeros((500, 5, 1)), 50), ValueError,
         r"500 series of 5 steps.*np\.swapaxes\(series, 0, 1\)"),
        (lambda: kt.naive_split(GOOD, 7), ValueError, r"(?s)multiple of timesteps=7.*factors \[1, 2, 4, 5, 8, 10, 20, 40\].*remainder='pad'"),
        (lambda: kt.naive_split(GOOD, 10, remainder="trim"), ValueError, "`remainder` must be one of"),
        (lambda: kt.naive_split(GOOD, 10, batch_size=0), ValueError, "`batch_size` must be None or an integer >= 1"),
        (lambda: kt.naive_split(GOOD, 10, streams=True), TypeError, "`streams` must be an integer"),
        (lambda: kt.naive_split(GOOD, 10, streams=3), ValueError, r"streams \(each series cut in 3\)"),
        (lambda: kt.naive_split(GOOD, 10, np.array([1, 2]), streams=2), ValueError,
         "cannot be combined with per-sequence targets"),
        (lambda: kt.naive_split(np.zeros(5), 10, remainder="drop"), ValueError, "timesteps"),
        # targets
        (lambda: kt.naive_split(GOOD, 10, np.zeros((2, 39, 1))), ValueError,
         r"(?s)`targets` must be per step.*Received: shape=\(2, 39, 1\)"),
        (lambda: kt.naive_split(GOOD, 10, np.zeros(3)), ValueError, "`targets` must be per step"),
        (lambda: kt.naive_split([np.zeros(4), np.zeros(6)], 2, [np.zeros(4), np.zeros(5)]),
         ValueError, r"Expected lengths: \[4, 6\]"),
        (lambda: kt.naive_split(GOOD, 10, np.array(["x", "y"])), TypeError, "`targets` must hold numbers"),
        (lambda: kt.naive_split(GOOD, 10, np.array([np.nan, 1.0])), ValueError, "Per-sequence `targets` contain 1 NaN"),
        (lambda: kt.naive_split(pd.Series([1.0, 2.0], index=["a", "a"]), 1,
                                pd.Series([1.0, 2.0], index=["a", "b"])), ValueError,
         r"`series` has duplicate labels \['a'\].*name the target column"),
        (lambda: kt.naive_split(pd.Series([1.0, 2.0]), 1, pd.Series([1.0, 2.0], index=[0, 0])),
         ValueError, r"`targets` has duplicate index labels \[0\]"),
        # other schemes
        (lambda: kt.as_is([np.zeros(4), np.zeros(5)]), ValueError, "pass pad=True|Pass pad=True"),
        (lambda: kt.as_is(GOOD, pad="yes"), TypeError, "`pad` must be True or False"),
        (lambda: kt.truncate(GOOD, 10, side="middle"), ValueError, "`side` must be one of 'start', 'end'"),
        (lambda: kt.truncate(GOOD, 50), ValueError, "`length` must be <= the series length"),
        (lambda: kt.random_windows(GOOD, 10, n=0), ValueError, "`n` must be an integer >= 1"),
        (lambda: kt.random_windows(GOOD, 10, n=4, seed=-1), ValueError, "`seed`"),
        (lambda: kt.decoupled_split(GOOD, 0, 5), ValueError, "`k1` must be an integer"),
        (lambda: kt.decoupled_split(GOOD, 10, 15), ValueError, r"k2=15 steps or more, plus a multiple of k1=10"),
        (lambda: kt.decoupled_split(GOOD, 10, 50), ValueError, "`k2` must be <= the series length"),
        # plan methods
        (lambda: kt.naive_split(GOOD, 10).validation_split(1.5), ValueError, "`fraction` must be a number strictly between 0 and 1"),
        (lambda: kt.naive_split(GOOD, 10).validation_split(0.99), ValueError, "leaves no training steps"),
        (lambda: kt.naive_split(GOOD, 10, np.zeros(2)).validation_split(0.5), ValueError, "per-sequence targets"),
        (lambda: kt.naive_split(GOOD, 10).unsplit(np.zeros((3, 10, 1))), ValueError,
         r"(?s)one row per sample.*Expected: shape \(8, \.\.\.\)"),
        (lambda: kt.naive_split(GOOD, 10).batch(4), IndexError, "`index` must be < 4"),
    ],
)
def test_bad_input_is_named_and_explained(call, error, match):
    with pytest.raises(error, match=match):
        call()
