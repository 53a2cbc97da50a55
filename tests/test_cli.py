"""The `keras-tbptt` command line, run as a user would: in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import keras_tbptt as kt

SCRIPT = Path(sys.executable).with_name("keras-tbptt")


def run(*args, cwd=None):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "keras_tbptt", *map(str, args)],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=env,
    )


@pytest.fixture(scope="module")
def sunspots_csv(tmp_path_factory):
    import statsmodels.api as sm

    frame = sm.datasets.sunspots.load_pandas().data
    path = tmp_path_factory.mktemp("cli") / "sunspots.csv"
    frame.to_csv(path, index=False)
    return path, frame


@pytest.fixture(scope="module")
def panel_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = [
        {"id": name, "day": day, "value": float(np.sin(2 * np.pi * day / 12) + rng.normal(0, 0.2)),
         "label": float(day % 3)}
        for name in ("a", "b") for day in range(120)
    ]
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # shuffled rows
    path = tmp_path_factory.mktemp("cli") / "panel.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_console_script_is_installed():
    assert SCRIPT.exists(), f"{SCRIPT} missing: is the package installed (pip install -e .)?"
    result = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert all(word in result.stdout for word in ("suggest", "split", "demo"))


@pytest.mark.parametrize("command", ["suggest", "split", "demo"])
def test_help_of_each_command(command):
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: keras-tbptt {command}")


def test_suggest_prints_the_library_suggestion_and_saves_the_figure(sunspots_csv, tmp_path):
    path, frame = sunspots_csv
    figure = tmp_path / "figures" / "acf.png"
    result = run("suggest", path, "--column", "SUNACTIVITY", "--plot", figure)
    assert result.returncode == 0, result.stderr
    expected = kt.suggest_timesteps(frame["SUNACTIVITY"])
    assert str(expected) in result.stdout
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("timesteps", ["11", "auto"])
def test_split_saves_the_plan_arrays(sunspots_csv, tmp_path, timesteps):
    path, frame = sunspots_csv
    out = tmp_path / "plan.npz"
    result = run("split", path, "-c", "SUNACTIVITY", "--timesteps", timesteps,
                 "--targets", "YEAR", "--remainder", "pad", "--out", out)
    assert result.returncode == 0, result.stderr
    if timesteps == "auto":
        plan = kt.domain_split(frame[["SUNACTIVITY"]], frame[["YEAR"]], remainder="pad")
    else:
        plan = kt.naive_split(frame[["SUNACTIVITY"]], 11, frame[["YEAR"]], remainder="pad")
    saved = np.load(out)
    np.testing.assert_array_equal(saved["x"], plan.x)
    np.testing.assert_array_equal(saved["y"], plan.y)
    np.testing.assert_array_equal(saved["sample_weight"], plan.sample_weight)
    np.testing.assert_array_equal(saved["resets"], plan.resets)
    np.testing.assert_array_equal(saved["positions"], plan.positions)
    assert int(saved["timesteps"]) == plan.timesteps
    assert repr(plan) in result.stdout


def test_split_long_format_orders_by_time_within_each_id(panel_csv, tmp_path):
    path, frame = panel_csv
    out = tmp_path / "panel.npz"
    result = run("split", path, "-c", "value", "--id-col", "id", "--time-col", "day",
                 "-t", "12", "-y", "label", "-o", out)
    assert result.returncode == 0, result.stderr
    saved = np.load(out)
    ordered = frame.sort_values(["id", "day"])
    first_chunk_of_b = ordered[ordered.id == "b"]["value"].to_numpy()[:12]
    np.testing.assert_allclose(saved["x"][1, :, 0], first_chunk_of_b)  # row 1 of batch 0
    assert saved["x"].shape == (20, 12, 1) and saved["resets"].sum() == 1


def _bad_inputs(tmp_path, sunspots):
    text = tmp_path / "text.csv"
    pd.DataFrame({"word": ["a", "b", "c"] * 10}).to_csv(text, index=False)
    gaps = tmp_path / "gaps.csv"
    pd.DataFrame({"v": [1.0, np.nan, 3.0] * 10}).to_csv(gaps, index=False)
    return {
        "missing file": (["suggest", tmp_path / "nope.csv", "-c", "v"], "does not exist"),
        "unknown column": (["suggest", sunspots, "-c", "spots"], "'spots'"),
        "unknown target": (["split", sunspots, "-c", "SUNACTIVITY", "-t", "3",
                            "-y", "later", "-o", tmp_path / "x.npz"], "--targets"),
        "non-numeric": (["split", text, "-c", "word", "-t", "3", "-o", tmp_path / "x.npz"],
                        "numeric"),
        "nan": (["suggest", gaps, "-c", "v"], "NaN"),
        "timesteps too long": (["split", sunspots, "-c", "SUNACTIVITY", "-t", "10000",
                                "-o", tmp_path / "x.npz"], "timesteps"),
        "timesteps not a number": (["split", sunspots, "-c", "SUNACTIVITY", "-t", "ten",
                                    "-o", tmp_path / "x.npz"], "'auto'"),
        "not a csv": (["suggest", Path(sys.executable), "-c", "v"], "CSV"),
    }


@pytest.mark.parametrize(
    "case", ["missing file", "unknown column", "unknown target", "non-numeric", "nan",
             "timesteps too long", "timesteps not a number", "not a csv"],
)
def test_bad_input_gets_one_line_and_exit_status_2(sunspots_csv, tmp_path, case):
    args, expected = _bad_inputs(tmp_path, sunspots_csv[0])[case]
    result = run(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert expected in lines[-1], lines
    # argparse prints its usage line first; our own errors are a single line.
    assert len(lines) == 1 or lines[0].startswith("usage:")


def test_split_packs_a_ragged_panel(panel_csv, tmp_path):
    path, frame = panel_csv
    ragged = frame[(frame.id == "a") | (frame.day < 50)]  # a: 120 days, b: 50
    ragged_path = tmp_path / "ragged.csv"
    ragged.to_csv(ragged_path, index=False)
    out = tmp_path / "packed.npz"
    result = run("split", ragged_path, "-c", "value", "--id-col", "id", "--time-col", "day",
                 "-t", "10", "--batch-size", "1", "--remainder", "pad", "--pack", "-o", out)
    assert result.returncode == 0, result.stderr
    saved = np.load(out)
    # One lane: a's 12 chunks, then b's 5; the lane resets where b starts.
    assert saved["x"].shape == (17, 10, 1)
    assert saved["reset_flags"].tolist() == [1.0] + [0.0] * 11 + [1.0] + [0.0] * 4
    assert saved["positions"][12].tolist() == [1, 0]
