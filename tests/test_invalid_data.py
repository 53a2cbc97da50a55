"""Clear errors of issue 15: each names the argument, what came and the fix.

Every case here raised an unrelated error (numpy's IndexError, statsmodels'
"x is constant", "must hold numbers, dtype=<U1"), named the wrong series,
or passed silently, on the code before the fix.
"""

import io

import numpy as np
import pandas as pd
import pytest

import keras_tbptt as kt

GOOD = np.zeros((2, 40, 1))  # naive_split(GOOD, 10): 8 samples of 10 steps


def _long(values_b=None):
    """Two series 'a' and 'b' of 60 steps in a long frame."""
    rng = np.random.default_rng(0)
    b = rng.normal(size=60) if values_b is None else values_b
    return pd.DataFrame({
        "id": ["a"] * 60 + ["b"] * 60,
        "v": np.concatenate([rng.normal(size=60), b]),
    })


@pytest.mark.parametrize(
    "call, error, match",
    [
        # unsplit: per-step outputs with another number of steps
        (lambda: kt.naive_split(GOOD, 10).unsplit(np.zeros((8, 5, 1))), ValueError,
         (r"(?s)one step per timestep.*- Expected: shape \(8, 10, \.\.\.\)\n"
          r"- Received: shape=\(8, 5, 1\)")),
        (lambda: kt.naive_split(GOOD, 10).unsplit(np.zeros((8, 12, 1))), ValueError,
         r"(?s)- Expected: shape \(8, 10, \.\.\.\)\n- Received: shape=\(8, 12, 1\)"),
        (lambda: kt.naive_split(GOOD, 10, np.zeros(2)).unsplit(np.zeros((8, 9, 1))), ValueError,
         r"- Received: shape=\(8, 9, 1\)"),
        # suggest_timesteps: a constant series
        (lambda: kt.suggest_timesteps(np.full(100, 3.0)), ValueError,
         (r"`series` is constant \(every value is 3\): a constant series has no "
          r"autocorrelation to read `timesteps` from")),
        (lambda: kt.suggest_timesteps([np.random.default_rng(0).normal(size=80), np.ones(80)]),
         ValueError, r"series 1 of `series` is constant"),
        (lambda: kt.suggest_timesteps(_long(np.zeros(60)), id_col="id"), ValueError,
         r"series 'b' of `series` is constant"),
        (lambda: kt.suggest_timesteps(np.ones(100), detrend="none"), ValueError,
         r"no autocorrelation to read `timesteps`"),
        # a column name as targets without a DataFrame to take it from
        (lambda: kt.naive_split(np.zeros(10), 2, "y"), TypeError,
         (r"`targets` names a column \('y'\), which needs a pandas DataFrame as `series`"
          r".*with numpy, pass the target array.*series of type ndarray")),
        (lambda: kt.naive_split(pd.Series(np.zeros(10)), 2, ["y", "z"]), TypeError,
         r"`targets` names a column \(\['y', 'z'\]\).*series of type Series"),
        (lambda: kt.as_is(pd.DataFrame({"a": np.zeros(4), "y": np.zeros(4)}), "y", wide=True),
         TypeError, r"`targets` names a column \('y'\).*a DataFrame with wide=True"),
        # per-sequence NaN labels name their own series
        (lambda: kt.naive_split(np.zeros((3, 10, 1)), 5, np.array([0.0, 1.0, np.nan])),
         ValueError, r"Per-sequence `targets` contain 1 NaN values \(series \[2\]\)"),
        (lambda: kt.as_is(_long(), pd.Series({"a": 0.0, "b": np.nan}), id_col="id"),
         ValueError, r"Per-sequence `targets` contain 1 NaN values \(series \['b'\]\)"),
        # a DataFrame with columns and no rows (a CSV with a header only), issue 28
        (lambda: kt.naive_split(pd.read_csv(io.StringIO("value\n")), 4), ValueError,
         (r"`series` has no rows: a DataFrame needs one row per time step\. Received: an "
          r"empty DataFrame with columns \['value'\]")),
        (lambda: kt.naive_split(pd.DataFrame({"id": [], "t": [], "v": []}), 4, id_col="id",
                                time_col="t"), ValueError,
         r"`series` has no rows.*columns \['id', 't', 'v'\]"),
        (lambda: kt.as_is(pd.DataFrame({"a": [], "b": []}), wide=True), ValueError,
         r"`series` has no rows: .* \(wide=True: columns are series\)\. Received"),
    ],
    ids=[
        "unsplit_fewer_steps", "unsplit_more_steps", "unsplit_per_sequence_plan",
        "constant", "constant_in_panel", "constant_id", "constant_no_detrend",
        "column_name_numpy", "column_names_series", "column_name_wide",
        "nan_label_series_2", "nan_label_id",
        "header_only", "empty_long", "empty_wide",
    ],
)
def test_bad_data_is_named_and_explained(call, error, match):
    with pytest.raises(error, match=match):
        call()
