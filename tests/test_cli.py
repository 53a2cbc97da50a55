"""The `keras-tbptt` command line, run as a user would: the installed script,
in a subprocess."""

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import keras_tbptt as kt
from keras_tbptt.apps import cli

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("keras-tbptt")
ENV = {**os.environ, "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2"}


def run(*args, cwd=None, input=None, text=True):
    return subprocess.run(
        [str(SCRIPT), *map(str, args)],
        capture_output=True, text=text, timeout=300, cwd=cwd, env=ENV, input=input,
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


@pytest.fixture(scope="module")
def dated_csv(tmp_path_factory):
    """One series with a text date column, rows in time order and shuffled."""
    steps = np.arange(96)
    frame = pd.DataFrame({
        "date": pd.date_range("2020-01-01", periods=96, freq="D").strftime("%Y-%m-%d"),
        "value": np.sin(2 * np.pi * steps / 12) + steps / 100,
    })
    folder = tmp_path_factory.mktemp("cli")
    frame.to_csv(folder / "sorted.csv", index=False)
    frame.sample(frac=1.0, random_state=1).to_csv(folder / "shuffled.csv", index=False)
    return folder / "sorted.csv", folder / "shuffled.csv", frame


def test_console_script_is_installed():
    assert SCRIPT.exists(), f"{SCRIPT} missing: is the package installed (pip install -e .)?"
    assert shutil.which("keras-tbptt", path=str(SCRIPT.parent)) == str(SCRIPT)
    result = run("--help")
    assert result.returncode == 0
    assert all(word in result.stdout for word in ("suggest", "split", "demo", "Exit status"))


@pytest.mark.parametrize("entry", ["script", "module"])
def test_version(entry):
    command = [str(SCRIPT)] if entry == "script" else [sys.executable, "-m", "keras_tbptt"]
    result = subprocess.run([*command, "--version"], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"keras-tbptt {kt.__version__}\n"


@pytest.mark.parametrize("command", ["suggest", "split", "demo"])
def test_help_of_each_command(command):
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: keras-tbptt {command}")


def _actions(parser):
    for action in parser._actions:
        yield parser.prog, action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)


def test_every_option_has_help():
    actions = list(_actions(cli.build_parser()))
    assert {prog for prog, _ in actions} == {  # the sub-commands' options too
        "keras-tbptt", "keras-tbptt suggest", "keras-tbptt split", "keras-tbptt demo",
        "keras-tbptt horizon"}
    missing = [f"{prog} {action.option_strings or action.dest}"
               for prog, action in actions
               if not action.help or action.help == argparse.SUPPRESS]
    assert missing == []


def test_split_help_documents_the_npz_keys():
    result = run("split", "--help")
    for key in ("x", "y", "sample_weight", "series_ids", "positions", "resets",
                "reset_flags", "columns", "target_columns", "timesteps", "batch_size"):
        assert re.search(rf"^\s+{key}\b", result.stdout, re.M), key


def test_suggest_prints_the_library_suggestion_and_saves_the_figure(sunspots_csv, tmp_path):
    path, frame = sunspots_csv
    figure = tmp_path / "figures" / "acf.png"
    result = run("suggest", path, "--column", "SUNACTIVITY", "--plot", figure)
    assert result.returncode == 0, result.stderr
    expected = kt.suggest_timesteps(frame["SUNACTIVITY"])
    assert result.stdout == f"{expected}\n"  # stdout: the suggestion only
    assert result.stderr == f"wrote {figure}: the ACF/PACF figure\n"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("order", [
    ["suggest", "-c", "SUNACTIVITY", "{file}"],
    ["suggest", "{file}", "-c", "SUNACTIVITY"],
    ["suggest", "--column=SUNACTIVITY", "--max-lag", "40", "{file}"],
    ["suggest", "--max-lag=40", "{file}", "-cSUNACTIVITY"],
])
def test_options_come_in_any_order(sunspots_csv, order):
    path, frame = sunspots_csv
    result = run(*[str(path) if a == "{file}" else a for a in order])
    assert result.returncode == 0, result.stderr
    max_lag = 40 if "40" in order or "--max-lag=40" in order else None
    assert result.stdout == f"{kt.suggest_timesteps(frame['SUNACTIVITY'], max_lag=max_lag)}\n"


@pytest.mark.parametrize("columns", [
    ["-c", "SUNACTIVITY", "-c", "YEAR"],
    ["-c", "SUNACTIVITY,YEAR"],
    ["--column", "SUNACTIVITY", "--column=YEAR"],
])
def test_several_columns_are_repeated_options_or_a_comma_list(sunspots_csv, tmp_path, columns):
    path, frame = sunspots_csv
    out = tmp_path / "two.npz"
    result = run("split", *columns, path, "-t", "11", "--remainder", "pad", "-o", out)
    assert result.returncode == 0, result.stderr
    saved = np.load(out)
    plan = kt.naive_split(frame[["SUNACTIVITY", "YEAR"]], 11, remainder="pad")
    np.testing.assert_array_equal(saved["x"], plan.x)
    assert saved["columns"].tolist() == ["SUNACTIVITY", "YEAR"]


def test_a_column_name_with_a_comma_is_taken_whole(tmp_path):
    path = tmp_path / "comma.csv"
    pd.DataFrame({"a,b": np.arange(20.0), "a": np.ones(20)}).to_csv(path, index=False)
    out = tmp_path / "comma.npz"
    result = run("split", path, "-c", "a,b", "-t", "5", "-o", out)
    assert result.returncode == 0, result.stderr
    assert np.load(out)["x"][:, :, 0].ravel().tolist() == list(range(20))


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
    assert saved["target_columns"].tolist() == ["YEAR"]
    assert result.stdout == f"{plan!r}\n"


def test_npz_holds_ids_weights_and_targets_and_says_what_it_wrote(panel_csv, tmp_path):
    path, frame = panel_csv
    out = tmp_path / "panel.npz"
    result = run("split", path, "-c", "value", "--id-col", "id", "--time-col", "day",
                 "-t", "12", "-y", "label", "-o", out)
    assert result.returncode == 0, result.stderr
    saved = np.load(out)
    assert sorted(saved) == sorted([
        "x", "y", "sample_weight", "resets", "reset_flags", "positions", "timesteps",
        "batch_size", "columns", "target_columns", "series_ids",
    ])
    plan = kt.naive_split(frame, 12, "label", id_col="id", time_col="day")
    ids = list(pd.unique(frame["id"]))  # ids in the order of the file
    assert saved["series_ids"].tolist() == ids
    ordered = frame.sort_values(["id", "day"])
    first_chunk_of_b = ordered[ordered.id == "b"]["value"].to_numpy()[:12]
    row_of_b = ids.index("b")  # rows of batch 0 are the series, in id order
    np.testing.assert_allclose(saved["x"][row_of_b, :, 0], first_chunk_of_b)
    assert saved["x"].shape == (20, 12, 1) and saved["resets"].sum() == 1
    for key in ("x", "y", "sample_weight", "positions", "reset_flags"):
        np.testing.assert_array_equal(saved[key], getattr(plan, key))
    assert saved["series_ids"][saved["positions"][:, 0]].tolist() == ids * 10
    assert result.stderr == (
        f"wrote {out}: x (20, 12, 1), y (20, 12, 1), sample_weight (20, 12), "
        "resets (10,), reset_flags (20,), positions (20, 2), timesteps 12, "
        "batch_size 2, columns (1,), target_columns (1,), series_ids (2,)\n"
    )


def test_npz_without_targets_still_weights_the_padding(sunspots_csv, tmp_path):
    path, frame = sunspots_csv
    out = tmp_path / "padded.npz"
    result = run("split", path, "-c", "SUNACTIVITY", "-t", "10", "--remainder", "pad",
                 "-o", out)
    assert result.returncode == 0, result.stderr
    saved = np.load(out)
    assert "y" not in saved and "series_ids" not in saved
    # 309 years in chunks of 10: 30 full chunks, then 9 real steps and padding.
    weights = saved["sample_weight"]
    assert weights.shape == (31, 10) and (weights > 0).sum() == len(frame) == 309
    assert (weights[-1] > 0).tolist() == [True] * 9 + [False]
    # as the library weighs any per-step target without NaN
    targets = pd.DataFrame({"y": np.zeros(len(frame))})
    np.testing.assert_array_equal(
        weights, kt.naive_split(frame[["SUNACTIVITY"]], 10, targets, remainder="pad").sample_weight
    )
    np.testing.assert_array_equal(
        saved["x"], kt.naive_split(frame[["SUNACTIVITY"]], 10, remainder="pad").x
    )


def test_wide_csv_has_one_column_per_series(tmp_path):
    steps = np.arange(60)
    frame = pd.DataFrame({
        "date": pd.date_range("2021-01-01", periods=60).strftime("%Y-%m-%d"),
        "north": np.sin(steps / 3), "south": np.cos(steps / 3), "east": steps / 60,
    })
    path = tmp_path / "wide.csv"
    frame.sample(frac=1.0, random_state=2).to_csv(path, index=False)  # time order lost
    out = tmp_path / "wide.npz"
    result = run("split", path, "--wide", "--time-col", "date", "-t", "12", "-o", out)
    assert result.returncode == 0, result.stderr
    saved = np.load(out)
    plan = kt.naive_split(frame[["north", "south", "east"]], 12, wide=True)
    np.testing.assert_array_equal(saved["x"], plan.x)
    np.testing.assert_array_equal(saved["positions"], plan.positions)
    assert saved["series_ids"].tolist() == ["north", "south", "east"]
    assert "columns" not in saved
    # --column chooses some of the series
    result = run("split", path, "--wide", "-c", "south,east", "--time-col", "date",
                 "-t", "12", "-o", out)
    assert result.returncode == 0, result.stderr
    saved = np.load(out)
    np.testing.assert_array_equal(
        saved["x"], kt.naive_split(frame[["south", "east"]], 12, wide=True).x
    )
    assert saved["series_ids"].tolist() == ["south", "east"]
    result = run("suggest", path, "--wide", "--time-col", "date")
    assert result.returncode == 0, result.stderr
    stacked = frame[["north", "south", "east"]].to_numpy().T[:, :, None]
    assert result.stdout == f"{kt.suggest_timesteps(stacked)}\n"


def test_stdin_and_stdout(sunspots_csv, tmp_path):
    path, frame = sunspots_csv
    text = path.read_text()
    result = run("suggest", "-", "-c", "SUNACTIVITY", input=text)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{kt.suggest_timesteps(frame['SUNACTIVITY'])}\n"
    result = run("split", "-", "-c", "SUNACTIVITY", "-t", "11", "-y", "YEAR",
                 "--remainder", "pad", "-o", "-", input=text.encode(), text=False)
    assert result.returncode == 0, result.stderr
    saved = np.load(io.BytesIO(result.stdout))  # stdout is the .npz, nothing else
    plan = kt.naive_split(frame[["SUNACTIVITY"]], 11, frame[["YEAR"]], remainder="pad")
    np.testing.assert_array_equal(saved["x"], plan.x)
    np.testing.assert_array_equal(saved["y"], plan.y)
    # the summary moves to stderr
    assert result.stderr.decode().splitlines()[0] == repr(plan)
    assert result.stderr.decode().splitlines()[1].startswith("wrote stdout: x (29, 11, 1)")


def test_binary_to_a_terminal_is_refused(sunspots_csv):
    import pty

    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [str(SCRIPT), "split", sunspots_csv[0], "-c", "SUNACTIVITY", "-t", "11",
             "-o", "-"],
            stdout=follower, stderr=subprocess.PIPE, text=True, env=ENV, timeout=300,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert result.returncode == 2
    assert "-o - would write binary .npz data to the terminal" in result.stderr


def test_a_closed_pipe_is_not_an_error(sunspots_csv):
    # The reader is gone before the first write: as `| head -1` at its worst.
    process = subprocess.Popen(
        [str(SCRIPT), "suggest", sunspots_csv[0], "-c", "SUNACTIVITY"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
    )
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == 0, stderr
    assert stderr == ""
    shell = subprocess.run(
        ["bash", "-c", (f"set -o pipefail; '{SCRIPT}' suggest '{sunspots_csv[0]}' "
                        "-c SUNACTIVITY | head -1")],
        capture_output=True, text=True, env=ENV, timeout=300,
    )
    assert (shell.returncode, shell.stdout, shell.stderr) == (
        0, "suggested timesteps: 11\n", "")


def _write_bad_files(tmp_path):
    pd.DataFrame({"word": ["a", "b", "c"] * 10}).to_csv(tmp_path / "text.csv", index=False)
    pd.DataFrame({"v": [1.0, np.nan, 3.0] * 10}).to_csv(tmp_path / "gaps.csv", index=False)
    pd.DataFrame({"when": ["soon", "later", "never"] * 4, "v": np.arange(12.0)}).to_csv(
        tmp_path / "clock.csv", index=False)
    pd.DataFrame({"day": [1, 2, 2, 3] * 3, "v": np.arange(12.0)}).to_csv(
        tmp_path / "repeated.csv", index=False)
    (tmp_path / "header.csv").write_text("value\n")  # a header, no rows
    pd.DataFrame({"day": DAY_FIRST, "v": np.arange(4.0)}).to_csv(
        tmp_path / "day_first.csv", index=False)
    pd.DataFrame({"t": ["2020-01-01 03:00+01:00", "2020-01-01 10:00+09:00"] * 2,
                  "v": np.arange(4.0)}).to_csv(tmp_path / "zones.csv", index=False)


DAY_FIRST = ["02/01/2020", "13/01/2020", "01/01/2020", "14/01/2020"]  # the first is ambiguous


def _bad_inputs(tmp_path, sunspots):
    """`case: (arguments, exit status, texts the error line holds)`."""
    text, gaps = tmp_path / "text.csv", tmp_path / "gaps.csv"
    clock, repeated = tmp_path / "clock.csv", tmp_path / "repeated.csv"
    header, day_first = tmp_path / "header.csv", tmp_path / "day_first.csv"
    zones = tmp_path / "zones.csv"
    out = tmp_path / "x.npz"
    return {
        # bad data: exit status 1, one line
        "missing file": (["suggest", tmp_path / "nope.csv", "-c", "v"], 1,
                         "FILE.csv", "does not exist"),
        "unknown column": (["suggest", sunspots, "-c", "spots"], 1, "--column", "'spots'"),
        "unknown target": (["split", sunspots, "-c", "SUNACTIVITY", "-t", "3",
                            "-y", "later", "-o", out], 1, "--targets", "'later'"),
        "non-numeric": (["split", text, "-c", "word", "-t", "3", "-o", out], 1,
                        "numeric", "'word'"),
        "nan": (["suggest", gaps, "-c", "v"], 1, "NaN", "--nan ffill, interpolate or drop"),
        "timesteps too long": (["split", sunspots, "-c", "SUNACTIVITY", "-t", "10000",
                                "-o", out], 1, "--timesteps 10000", "309"),
        "not a csv": (["suggest", Path(sys.executable), "-c", "v"], 1, "CSV", "FILE.csv"),
        "time column of text": (["suggest", clock, "-c", "v", "--time-col", "when"], 1,
                                "--time-col 'when'", "'soon'"),
        "repeated times": (["split", repeated, "-c", "v", "-t", "3", "--time-col", "day",
                            "-o", out], 1, "repeated times", "--time-col day"),
        "header, no rows": (["split", header, "-c", "value", "-t", "4", "-o", out], 1,
                            f"FILE.csv '{header}' has a header row but no data rows",
                            "(columns 'value')"),
        "day first without --time-format": (
            ["split", day_first, "-c", "v", "-t", "1", "--time-col", "day", "-o", out], 1,
            "first value '02/01/2020', '13/01/2020' on line 3",
            "pass --time-format %d/%m/%Y, which reads every value"),
        "text not matching --time-format": (
            ["split", day_first, "-c", "v", "-t", "1", "--time-col", "day",
             "--time-format", "%m/%d/%Y", "-o", out], 1,
            "--time-col 'day' does not match --time-format %m/%d/%Y", "'13/01/2020' on line 3"),
        "time zones": (["split", zones, "-c", "v", "-t", "1", "--time-col", "t", "-o", out], 1,
                       "--time-col 't' mixes time zones ('2020-01-01 03:00+01:00' on line 2, "
                       "'2020-01-01 10:00+09:00' on line 3)", "one time zone"),
        "unwritable out": (["split", sunspots, "-c", "SUNACTIVITY", "-t", "3",
                            "--remainder", "pad", "-o", tmp_path / "no" / "x.npz"], 1,
                           "--out", "No such file"),
        # bad usage: exit status 2, argparse's usage line and message
        "timesteps not a number": (["split", sunspots, "-c", "SUNACTIVITY", "-t", "ten",
                                    "-o", out], 2, "--timesteps", "'auto'"),
        "no column": (["suggest", sunspots], 2, "--column", "--wide"),
        "two columns to suggest": (["suggest", sunspots, "-c", "YEAR", "-c", "SUNACTIVITY"],
                                   2, "one --column", "YEAR"),
        "wide and id": (["suggest", sunspots, "--wide", "--id-col", "YEAR"], 2,
                        "--wide", "--id-col"),
        "pack without batch size": (["split", sunspots, "-c", "SUNACTIVITY", "-t", "3",
                                     "--pack", "-o", out], 2, "--pack", "--batch-size"),
        "plot to stdout": (["suggest", sunspots, "-c", "SUNACTIVITY", "--plot", "-"], 2,
                           "--plot", "file name"),
        "one column, two roles": (["split", sunspots, "-c", "YEAR", "-y", "YEAR", "-t", "3",
                                   "-o", out], 2, "--column", "--targets"),
        "time format without time col": (["split", day_first, "-c", "v", "-t", "1",
                                          "--time-format", "%d/%m/%Y", "-o", out], 2,
                                         "--time-format needs --time-col"),
        "time format mixed": (["split", day_first, "-c", "v", "-t", "1", "--time-col", "day",
                               "--time-format", "mixed", "-o", out], 2,
                              "--time-format must be the one format",
                              "Received: --time-format mixed"),
        "unknown option": (["split", sunspots, "-c", "YEAR", "-t", "3", "-o", out,
                            "--max-lag", "3"], 2, "unrecognized", "--max-lag"),
    }


BAD_INPUTS = list(_bad_inputs(Path("."), Path(".")))


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_exit_status_and_message(sunspots_csv, tmp_path, case):
    _write_bad_files(tmp_path)
    args, status, *expected = _bad_inputs(tmp_path, sunspots_csv[0])[case]
    result = run(*args)
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert all(text in lines[-1] for text in expected), lines
    if status == 1:  # our own errors are a single line
        assert len(lines) == 1 and lines[0].startswith(f"keras-tbptt {args[0]}: error: ")
    else:  # argparse prints its usage line first
        assert lines[0].startswith("usage: keras-tbptt")


def test_module_docstring_states_the_exit_statuses():
    doc = " ".join(cli.__doc__.split())
    assert "0 success, 1 bad data" in doc and "2 bad usage" in doc


@pytest.mark.parametrize("message, expected", [
    ("Pass nan='ffill', 'interpolate' or 'drop' to handle them",
     "Pass --nan ffill, interpolate or drop to handle them"),
    ("Pass `time_col=` to sort by it", "Pass --time-col to sort by it"),
    ("repeated times in `time_col`='day' for id 'a'",
     "repeated times in --time-col day for id 'a'"),
    ("name them as `id_col`/`time_col`.", "name them as --id-col/--time-col."),
    ("Received: batch_size=None. Pass e.g. batch_size=16.",
     "Received: no --batch-size. Pass e.g. --batch-size 16."),
    ("`pack=True` needs an explicit `batch_size`", "--pack needs an explicit --batch-size"),
    ("pass wide=True.", "pass --wide."),
    ("`streams`=4 cuts the series", "--streams 4 cuts the series"),
    ("suggested timesteps=52. Use", "suggested --timesteps 52. Use"),
    ("Pass time_format='%d/%m/%Y' to say so", "Pass --time-format %d/%m/%Y to say so"),
    ("`time_format` reads the text of `time_col`", "--time-format reads the text of --time-col"),
    ("or pass remainder='pad' (zero-pad", "or pass --remainder pad (zero-pad"),
    ("`series` contains NaN", "the --column data contains NaN"),
    # English words that are also argument names stay as they are
    ("the remainder of the series; the targets; no nan",
     "the remainder of the series; the targets; no nan"),
])
def test_messages_use_the_option_spelling(message, expected):
    assert cli._cli_spelling(message) == expected


def test_warnings_are_one_line_without_source_paths(sunspots_csv, tmp_path):
    path, _ = sunspots_csv
    result = run("split", path, "-c", "SUNACTIVITY", "-t", "10", "--remainder", "drop",
                 "-o", tmp_path / "dropped.npz")
    assert result.returncode == 0, result.stderr
    warning, wrote = result.stderr.splitlines()
    assert warning == ("keras-tbptt: warning: --remainder drop dropped 9 trailing time "
                       "steps that do not fill a window of 10 steps.")
    assert ".py:" not in result.stderr and wrote.startswith("wrote ")


def test_split_long_format_orders_by_time_within_each_id(panel_csv, tmp_path):
    path, frame = panel_csv
    out = tmp_path / "panel.npz"
    result = run("split", path, "-c", "value", "--id-col", "id", "--time-col", "day",
                 "-t", "12", "-y", "label", "-o", out)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    saved = np.load(out)
    for row, name in enumerate(saved["series_ids"]):
        expected = frame[frame.id == name].sort_values("day")["value"].to_numpy()
        np.testing.assert_allclose(saved["x"][row::2, :, 0].ravel(), expected)


@pytest.mark.parametrize("layout", ["long", "wide"])
def test_time_format_reads_day_first_dates(tmp_path, layout):
    """`--time-format %d/%m/%Y` orders the rows as the library's `time_format`."""
    days = pd.date_range("2020-01-01", periods=24, freq="D")
    order = np.random.default_rng(4).permutation(24)
    frame = pd.DataFrame({"day": days.strftime("%d/%m/%Y")[order],
                          "a": np.arange(24.0)[order], "b": np.arange(24.0)[order] + 100})
    path = tmp_path / "day_first.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "plan.npz"
    columns = ["--wide", "-c", "a,b"] if layout == "wide" else ["-c", "a,b"]
    result = run("split", path, *columns, "--time-col", "day", "--time-format", "%d/%m/%Y",
                 "-t", "6", "-o", out)
    assert result.returncode == 0, result.stderr
    saved = np.load(out)
    if layout == "wide":
        np.testing.assert_array_equal(saved["x"][0::2, :, 0].ravel(), np.arange(24.0))
        np.testing.assert_array_equal(saved["x"][1::2, :, 0].ravel(), np.arange(24.0) + 100)
    else:
        plan = kt.naive_split(frame, 6, time_col="day", time_format="%d/%m/%Y")
        np.testing.assert_array_equal(saved["x"], plan.x)
        np.testing.assert_array_equal(saved["x"][:, :, 0].ravel(), np.arange(24.0))


def test_a_time_like_column_out_of_order_is_named(dated_csv, tmp_path):
    ordered, shuffled, frame = dated_csv
    out = tmp_path / "dated.npz"
    result = run("split", shuffled, "-c", "value", "-t", "12", "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"keras-tbptt: warning: column 'date' of '{shuffled}' looks like time and is not "
        "in the file's row order, but the rows are taken in the file's order. Pass "
        "--time-col date to put them in time order."
    )
    # As the warning says: --time-col date puts the rows in time order.
    result = run("split", shuffled, "-c", "value", "-t", "12", "--time-col", "date", "-o", out)
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
    np.testing.assert_array_equal(np.load(out)["x"].ravel(), frame["value"].to_numpy())
    # In time order already: nothing to say, nothing to change.
    result = run("split", ordered, "-c", "value", "-t", "12", "-o", out)
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
    np.testing.assert_array_equal(np.load(out)["x"].ravel(), frame["value"].to_numpy())


def test_wide_without_columns_names_a_time_like_series(tmp_path):
    path = tmp_path / "stepped.csv"
    pd.DataFrame({"step": np.arange(24), "a": np.ones(24)}).to_csv(path, index=False)
    result = run("split", path, "--wide", "-t", "6", "-o", tmp_path / "s.npz")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "keras-tbptt: warning: --wide reads every column as a series, 'step' too, though "
        "it looks like time. Pass --time-col step to order the rows by it, or choose the "
        "series with --column."
    )


def test_split_packs_a_ragged_panel(panel_csv, tmp_path):
    _, frame = panel_csv
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
    assert saved["series_ids"][saved["positions"][12, 0]] == "b"


# docs/cli.md: every ```console block runs in order, in one folder, and its
# output must match the page (`...` matches anything), as docs/check_snippets.py
# does for the Python blocks of the other pages.
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.M | re.S)


def _console_commands(page):
    for block in CONSOLE.findall(page.read_text()):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            yield command, output


def _matches(got, expected):
    got, expected = " ".join(got.split()), " ".join(expected.split())
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, got) is not None


def test_docs_page_commands_print_what_the_page_shows(tmp_path):
    page = ROOT / "docs" / "cli.md"
    commands = list(_console_commands(page))
    assert len(commands) >= 10
    env = {**ENV, "PATH": f"{SCRIPT.parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONUNBUFFERED": "1"}  # stdout and stderr interleave as on a terminal
    status = 0
    for command, expected in commands:
        # `echo $?` in the page reads the status of the command before it
        done = subprocess.run(["bash", "-c", f"(exit {status}); {command}"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=300)
        status = done.returncode
        assert _matches(done.stdout, expected), (
            f"$ {command}\nprinted:\n{done.stdout}\nbut docs/cli.md shows:\n{expected}")


# ----------------------------------------------------------------------
# horizon: gradient_horizon of a saved model on a CSV (issue 29)
# Two candidates: under JAX each one compiles a gradient program.
HORIZON_OPTIONS = ["--candidates", "4,24", "--batches", "2", "--output-steps", "2"]


@pytest.fixture(scope="module")
def horizon_files(tmp_path_factory):
    """A tiny saved model (one epoch trained, so its optimizer is saved
    built) and the CSV of a delay of 3 steps, one series and a panel."""
    keras = pytest.importorskip("keras")
    folder = tmp_path_factory.mktemp("horizon")
    rng = np.random.default_rng(0)
    x = rng.normal(size=96).astype("float32")
    y = np.concatenate([np.zeros(3, "float32"), x[:-3]])
    pd.DataFrame({"x": x, "y": y}).to_csv(folder / "one.csv", index=False)
    panel = pd.DataFrame({"id": np.repeat(["a", "b"], 48), "x": x, "y": y})
    panel.to_csv(folder / "panel.csv", index=False)
    panel[:-1].to_csv(folder / "ragged.csv", index=False)  # b one step short
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None, 1)), kt.TBPTTLSTM(3, return_sequences=True),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x[None, :, None], y[None, :, None], epochs=1, verbose=0)
    model.save(folder / "model.keras")
    (folder / "not_a_model.keras").write_text("no zip here")
    return folder


def expected_horizon(folder, frame, timesteps, candidates=(4, 24), output_steps=2, **split):
    import keras

    model = keras.saving.load_model(folder / "model.keras")
    plan = kt.naive_split(frame, timesteps, ["y"], **split)
    return kt.gradient_horizon(model, plan, candidates=list(candidates), batches=2,
                               output_steps=output_steps)


def test_horizon_prints_the_gradient_horizon_of_a_saved_model(horizon_files):
    folder = horizon_files
    figure = folder / "figures" / "horizon.png"
    result = run("horizon", folder / "model.keras", folder / "one.csv", "-c", "x", "-y", "y",
                 "-t", "24", *HORIZON_OPTIONS, "--plot", figure)
    assert result.returncode == 0, result.stderr
    expected = expected_horizon(folder, pd.read_csv(folder / "one.csv"), 24)
    assert result.stdout == f"{expected}\n"
    assert "data:         2 batch(es) of 24 steps" in result.stdout
    assert f"wrote {figure}: the gradient horizon figure" in result.stderr
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_horizon_measures_whole_series_of_a_panel(horizon_files):
    folder = horizon_files
    result = run("horizon", folder / "model.keras", folder / "panel.csv", "-c", "x",
                 "-y", "y", "--id-col", "id", "--candidates", "48", "--output-steps", "1")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(folder / "panel.csv")
    expected = expected_horizon(folder, frame, 48, candidates=[48], output_steps=1,
                                id_col="id")
    assert result.stdout == f"{expected}\n"
    assert "1 batch(es) of 48 steps" in result.stdout  # both series, whole, in one batch


@pytest.mark.parametrize("case", [
    "no model file", "not a model", "ragged without timesteps", "no targets", "wide",
    "plot to stdout", "bad candidates"])
def test_horizon_bad_input_exit_status_and_message(horizon_files, case):
    folder = horizon_files
    model, one = folder / "model.keras", folder / "one.csv"
    data = ["-c", "x", "-y", "y"]
    args, status, *expected = {
        "no model file": ([folder / "missing.keras", one, *data], 1,
                          "MODEL.keras", "does not exist"),
        "not a model": ([folder / "not_a_model.keras", one, *data], 1,
                        "cannot be loaded as a Keras model"),
        "ragged without timesteps": ([model, folder / "ragged.csv", *data, "--id-col", "id"],
                                     1, "different lengths ('a': 48, 'b': 47 steps)",
                                     "--timesteps N"),
        "no targets": ([model, one, "-c", "x"], 2, "--targets/-y"),
        "wide": ([model, one, "--wide", "-y", "y"], 2, "--wide", "--targets"),
        "plot to stdout": ([model, one, *data, "--plot", "-"], 2, "--plot", "file name"),
        "bad candidates": ([model, one, *data, "--candidates", "4,x"], 2,
                           "--candidates", "4,8,16"),
    }[case]
    result = run("horizon", *args)
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    for text in expected:
        assert text in result.stderr, result.stderr
