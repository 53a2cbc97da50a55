"""The `keras-tbptt` command line (also `python -m keras_tbptt`).

```
keras-tbptt suggest FILE.csv -c C [--id-col I | --wide] [--time-col T [--time-format F]]
                    [--plot out.png]
keras-tbptt split FILE.csv -c C [-c C ...] -t N|auto [-y Y ...] -o plan.npz
keras-tbptt horizon MODEL.keras FILE.csv -c C [-c C ...] -y Y [-y Y ...] [-t N]
                    [--candidates 4,8,16] [--plot out.png]
keras-tbptt demo [--epochs N]
keras-tbptt --version
```

Options may come in any order, before or after FILE.csv. `-c`, `-y`:
one column each, repeated (`-c a -c b`) or a comma-separated list
(`-c a,b`; a name that is itself a column is taken whole). FILE.csv `-`
reads the CSV from stdin; `split -o -` writes the .npz to stdout (the
plan's summary then goes to stderr). Warnings are printed as
`keras-tbptt: warning: ...` on stderr; a reader that stops early
(`| head -1`) is not an error.

Exit status: 0 success, 1 bad data (a missing or unreadable file, a file
with no data rows, an unknown column, non-numeric data, NaN, a time column
that is neither numbers nor dates, or does not match --time-format, or
mixes time zones, a timesteps the data cannot take, ...: one line on
stderr, never a traceback), 2 bad usage (unknown or missing options,
values of the wrong kind, options that exclude each other: argparse's
usage line and message).

Time order: without `--time-col` the rows are taken in the file's order.
A column that is not used and looks like time (a time-like name such as
date, time, timestamp, step, t; or text that parses as dates) and whose
values are not in the file's row order (within each `--id-col` series)
gets a warning naming `--time-col COLUMN`: the CLI never guesses the
time column, as the Python API never does. `--time-format` gives the
format of the `--time-col` text, as the Python API's `time_format`
(`--time-format %d/%m/%Y` for day-first dates such as 13/01/2020).
"""

import argparse
import io
import numbers
import os
import re
import sys
import warnings

from keras_tbptt import __version__
from keras_tbptt.apps import cli_horizon
from keras_tbptt.apps.cli_input import (
    STDIO,
    InputError,
    UsageError,
    one_line,
    read_frame,
)

EXIT_DATA = 1  # bad usage exits 2, from argparse's parser.error
NAN_POLICIES = ("error", "ffill", "interpolate", "drop")

NPZ_KEYS = """\
keys of the .npz (np.load(path)):
  x              inputs [samples, timesteps, features]
  sample_weight  [samples, timesteps]: loss weights, 0 on padding, filler
                 and NaN targets
  y              targets [samples, timesteps, targets] (with --targets)
  columns        names of x's features (not with --wide)
  target_columns names of y's targets (with --targets)
  series_ids     id of each series (with --id-col; with --wide: the column
                 names); positions[:, 0] indexes it
  positions      [samples, 2]: series and first step of each sample (-1: filler)
  resets         [batches]: reset the states before this batch
  reset_flags    [samples]: 1 where a row starts a series (for --pack)
  timesteps      steps per sample (a scalar)
  batch_size     rows per batch (a scalar)"""

# Python argument -> command-line option, to respell the library's messages
# (`nan='ffill'` -> `--nan ffill`) rather than rewording them.
OPTIONS = {
    "nan": "--nan", "time_col": "--time-col", "time_format": "--time-format",
    "id_col": "--id-col",
    "max_lag": "--max-lag", "batch_size": "--batch-size", "streams": "--streams",
    "remainder": "--remainder", "pack": "--pack", "wide": "--wide",
    "timesteps": "--timesteps", "targets": "--targets",
}
_QUOTED_LIST = r"'[^']*'(?:, '[^']*')*(?:,? or '[^']*')?"
_VALUE = rf"(?P<value>{_QUOTED_LIST}|-?[\w.+-]*\w)?"


def _cli_spelling(message):
    """`message` with the Python API's argument names in option spelling."""

    def option_with_value(match):
        option, value = OPTIONS[match["name"]], match["value"]
        if value is None:  # `time_col=` as a hint: the option alone
            return option
        if value == "True":
            return option
        if value in ("False", "None"):
            return f"no {option}"
        return f"{option} {value.replace(chr(39), '')}"

    for name, option in OPTIONS.items():
        message = re.sub(
            rf"`?\b(?P<name>{name})`?=`?{_VALUE}`?", option_with_value, message
        )
        message = re.sub(rf"`{name}`", option, message)
        if "_" in name:  # never an English word: safe to respell bare
            message = re.sub(rf"\b{name}\b", option, message)
    # `series` is the data the --column options select.
    return message.replace("`series`", "the --column data")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # Users of a command line need the message, not the library's source line.
    print(f"keras-tbptt: warning: {one_line(_cli_spelling(str(message)))}",
          file=sys.stderr)


def _timesteps(text):
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer or 'auto', received {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, received {value}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, received {value}")
    return value


COLUMNS_SYNTAX = ("repeat the option (-c a -c b) or give a comma-separated list "
                  "(-c a,b)")


def _add_data_arguments(parser, columns_help):
    parser.add_argument("file", metavar="FILE.csv",
                        help="a CSV file with a header row; - reads it from stdin")
    # One column per option (action="append"), never nargs="+": a list of
    # columns must not swallow FILE.csv when it comes after -c.
    parser.add_argument("--column", "-c", action="append", metavar="C",
                        help=f"{columns_help}; required unless --wide")
    parser.add_argument("--id-col", metavar="I",
                        help="column naming the series of a long-format panel "
                             "(one row per series and step)")
    parser.add_argument("--wide", action="store_true",
                        help="one column per series (wide format): the series "
                             "are the --column columns, or every column but "
                             "--time-col")
    parser.add_argument("--time-col", metavar="T",
                        help="column ordering the steps: numbers or dates. "
                             "Without it the rows are taken in the file's order "
                             "(a time-like column out of that order gets a warning)")
    parser.add_argument("--time-format", metavar="F",
                        help="the format of the --time-col text, as for "
                             "pandas.to_datetime: e.g. %%d/%%m/%%Y for day-first "
                             "dates (13/01/2020), %%Y%%m%%d, or ISO8601 (default: "
                             "inferred from the first value)")
    parser.add_argument("--nan", choices=NAN_POLICIES, default="error",
                        help="what to do with missing values (default: error)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-tbptt",
        description="Truncated BPTT for Keras LSTMs: choose timesteps and split "
        "long series into stateful batches.",
        epilog="Exit status: 0 success, 1 bad data, 2 bad usage. See "
        "'keras-tbptt COMMAND --help'.",
    )
    parser.add_argument("--version", action="version", version=f"keras-tbptt {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     help="what to do")

    suggest = commands.add_parser(
        "suggest", help="suggest timesteps from the ACF/PACF of a series",
        description="Suggest `timesteps` for a series from its autocorrelation "
        "(ACF) and partial autocorrelation (PACF), and say which rule chose it.",
    )
    _add_data_arguments(suggest, "the column to analyse (one)")
    suggest.add_argument("--max-lag", type=_positive_int, metavar="N",
                         help="largest lag to examine (default: chosen from the length)")
    suggest.add_argument("--plot", metavar="PNG",
                         help="save the ACF/PACF figure with the chosen lag marked "
                              "(a file: stdout holds the suggestion)")

    split = commands.add_parser(
        "split", help="split series into a stateful plan saved as .npz",
        description="Split series into chunks for a stateful LSTM and save the "
        "plan's arrays to an .npz file (np.load reads it).",
        epilog=NPZ_KEYS, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_arguments(split, f"a feature column: {COLUMNS_SYNTAX}")
    split.add_argument("--timesteps", "-t", required=True, type=_timesteps,
                       metavar="N|auto",
                       help="steps per chunk, or 'auto' to choose from the ACF/PACF")
    split.add_argument("--targets", "-y", action="append", metavar="Y",
                       help=f"a target column, per step: {COLUMNS_SYNTAX}")
    split.add_argument("--batch-size", type=_positive_int, metavar="B",
                       help="rows per batch (default: one per series and stream)")
    split.add_argument("--streams", type=_positive_int, default=1, metavar="S",
                       help="contiguous streams per series (default 1)")
    split.add_argument("--remainder", choices=("error", "pad", "drop"), default=None,
                       help="when the length is not a multiple of timesteps "
                            "(default: error; with -t auto: pad unless a divisor is near)")
    split.add_argument("--pack", action="store_true",
                       help="pack ragged series back to back into --batch-size lanes "
                            "(reset per row: see reset_flags)")
    split.add_argument("--out", "-o", required=True, metavar="plan.npz",
                       help="where to save the arrays (exactly this name); - writes "
                            "the .npz to stdout")

    horizon = commands.add_parser(
        "horizon", help="how far back a saved model's gradient reaches; suggest k2",
        description="Measure on a CSV how far back a saved model's loss gradient "
        "reaches (kt.gradient_horizon) and suggest the k2 (truncate_gradient) that "
        "keeps it.",
    )
    horizon.add_argument("model", metavar="MODEL.keras",
                         help="a compiled Keras model saved with model.save(), with "
                              "TBPTT layers (kt.TBPTTLSTM, ...)")
    _add_data_arguments(horizon, f"a feature column: {COLUMNS_SYNTAX}")
    cli_horizon.add_arguments(horizon, _positive_int)

    demo = commands.add_parser("demo", help="run the end-to-end demo (make demo)",
                               description="Forecast weekly CO2 end to end.")
    demo.add_argument("--epochs", type=_positive_int, default=40, metavar="N",
                      help="training epochs (default 40)")
    demo.add_argument("--out-dir", default="demo_output", metavar="DIR",
                      help="where to save the figures ('' to skip them)")
    for sub in commands.choices.values():
        sub.set_defaults(parser=sub)  # to report usage errors found after parsing
    return parser


def _check_usage(args):
    """Options that exclude or need each other (argparse cannot say so)."""
    if args.wide and args.id_col:
        raise UsageError("--wide and --id-col exclude each other: a wide CSV has one "
                         "column per series, a long one names them in --id-col")
    if not args.wide and not args.column:
        raise UsageError("the following arguments are required: --column/-c "
                         "(or --wide)")
    if args.time_format is not None:
        if not args.time_col:
            raise UsageError("--time-format needs --time-col: the column whose text "
                             "it reads, e.g. --time-col date --time-format %d/%m/%Y")
        from keras_tbptt.core.time_order import check_time_format

        try:
            check_time_format(args.time_format, args.time_col)
        except ValueError as error:
            raise UsageError(one_line(_cli_spelling(str(error)))) from None
    if args.command == "suggest":
        if args.column and len(args.column) > 1 and not args.wide:
            raise UsageError(f"suggest analyses one --column; received "
                             f"{len(args.column)}: {', '.join(args.column)}")
        if args.plot == STDIO:
            raise UsageError("--plot - would mix the PNG with the suggestion on "
                             "stdout; give a file name, e.g. --plot acf.png")
    if args.command == "horizon":
        cli_horizon.check_usage(args)
    if args.command == "split":
        if args.wide and args.targets:
            raise UsageError("--targets cannot be used with --wide (every column is "
                             "a series); use the long format (--id-col) for targets")
        if args.pack and args.batch_size is None:
            raise UsageError("--pack needs --batch-size: the number of lanes the "
                             "series are packed into, e.g. --batch-size 16")
        if args.out == STDIO and sys.stdout.isatty():
            raise UsageError("-o - would write binary .npz data to the terminal; "
                             "redirect stdout (> plan.npz) or give a file name")


def _suggest(args):
    import keras_tbptt as kt

    frame, columns, _, id_col = read_frame(args)
    if len(columns) != 1 and not args.wide:
        raise UsageError(f"suggest analyses one --column; received {len(columns)}: "
                         f"{', '.join(map(repr, columns))}")
    suggestion = kt.suggest_timesteps(
        frame, max_lag=args.max_lag, id_col=id_col,
        time_col=None if args.wide else args.time_col, nan=args.nan,
    )
    print(suggestion)
    if args.plot:
        _save(suggestion.plot(), args.plot)
        print(f"wrote {args.plot}: the ACF/PACF figure", file=sys.stderr)


def _split(args):
    import numpy as np

    import keras_tbptt as kt

    frame, columns, targets, id_col = read_frame(args)
    if not targets:
        # The plan weighs steps only for targets: a column of ones as targets
        # gets the weights (0 on padding, filler) without redoing the layout.
        weight = "_weight"
        while weight in frame.columns:
            weight = f"_{weight}"
        frame = frame.assign(**{weight: np.float32(1)})
    options = {"batch_size": args.batch_size, "streams": args.streams, "pack": args.pack,
               "id_col": id_col, "time_col": None if args.wide else args.time_col,
               "nan": args.nan}
    if args.remainder is not None:
        options["remainder"] = args.remainder
    given = targets or [weight]
    if args.timesteps == "auto":
        plan = kt.domain_split(frame, given, **options)
    else:
        plan = kt.naive_split(frame, args.timesteps, given, **options)
    arrays = {"x": plan.x}
    if targets:
        arrays.update(y=plan.y)
    arrays.update(sample_weight=plan.sample_weight, resets=plan.resets,
                  reset_flags=plan.reset_flags, positions=plan.positions,
                  timesteps=plan.timesteps, batch_size=plan.batch_size)
    if not args.wide:  # wide: one unnamed feature, the series are in series_ids
        arrays.update(columns=np.array(columns, dtype=str))
    if targets:
        arrays.update(target_columns=np.array(targets, dtype=str))
    if id_col is not None:
        # The panel's ids, in the order positions[:, 0] counts the series.
        from keras_tbptt.core.batches import batches_of

        ids = np.asarray(batches_of(plan).panel.ids)
        # Mixed ids (text and a missing one) would be pickled objects, which
        # np.load refuses by default: save them as text.
        arrays.update(series_ids=ids.astype(str) if ids.dtype == object else ids)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    to_stdout = args.out == STDIO
    if to_stdout:
        print(plan, file=sys.stderr)  # stdout holds the .npz
        sys.stdout.flush()
        sys.stdout.buffer.write(buffer.getvalue())
    else:
        try:
            with open(args.out, "wb") as file:
                file.write(buffer.getvalue())
        except OSError as error:
            raise InputError(f"--out {args.out!r} cannot be written: "
                             f"{error.strerror}") from None
        print(plan)
    shapes = ", ".join(f"{key} {np.shape(value) if np.ndim(value) else value}"
                       for key, value in arrays.items())
    print(f"wrote {'stdout' if to_stdout else args.out}: {shapes}", file=sys.stderr)


def _save(figure, path):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure.savefig(path, dpi=110)


def _run(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from keras_tbptt.apps import demo

        demo.main(["--epochs", str(args.epochs), "--out-dir", args.out_dir])
        return 0
    try:
        _check_usage(args)
        import matplotlib

        matplotlib.use("Agg")  # a command line draws to files, never to a window
        commands = {"suggest": _suggest, "split": _split,
                    "horizon": lambda args: cli_horizon.run(args, _save)}
        commands[args.command](args)
    except UsageError as error:
        args.parser.error(str(error))  # usage line, exit status 2
    except (InputError, ValueError, TypeError, OSError) as error:
        if isinstance(error, BrokenPipeError):
            raise
        message = one_line(_cli_spelling(str(error)))
        print(f"keras-tbptt {args.command}: error: {message}", file=sys.stderr)
        return EXIT_DATA
    return 0


def main(argv=None):
    """Run the command line; returns the exit status."""
    shown = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        status = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here, where it can be handled
    except BrokenPipeError:
        # The reader stopped early (`| head -1`): not an error. As in Python's
        # "Note on SIGPIPE": stdout to devnull, so the flush at exit is quiet.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        return 0
    finally:
        warnings.showwarning = shown
    return status


if __name__ == "__main__":
    sys.exit(main())
