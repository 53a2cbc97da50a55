"""The `keras-tbptt` command line (also `python -m keras_tbptt`).

```
keras-tbptt suggest FILE.csv --column C [--id-col I] [--time-col T] [--plot out.png]
keras-tbptt split FILE.csv --column C [C ...] --timesteps N|auto [--targets Y] --out plan.npz
keras-tbptt demo [--epochs N]
```

Bad input (a missing file, an unknown column, non-numeric data, NaN) ends
with a one-line error on stderr and exit status 2, never a traceback.
"""

import argparse
import sys

EXIT_USAGE = 2
NAN_POLICIES = ("error", "ffill", "interpolate", "drop")


class InputError(Exception):
    """A problem with the user's input: reported on one line, exit status 2."""


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


def _add_data_arguments(parser, columns_help):
    parser.add_argument("file", metavar="FILE.csv", help="a CSV file with a header row")
    parser.add_argument("--column", "-c", required=True, nargs="+", metavar="C",
                        help=columns_help)
    parser.add_argument("--id-col", metavar="I",
                        help="column naming the series of a long-format panel")
    parser.add_argument("--time-col", metavar="T",
                        help="column ordering the steps (dates are parsed)")
    parser.add_argument("--nan", choices=NAN_POLICIES, default="error",
                        help="what to do with missing values (default: error)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-tbptt",
        description="Truncated BPTT for Keras LSTMs: choose timesteps and split "
        "long series into stateful batches.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    suggest = commands.add_parser(
        "suggest", help="suggest timesteps from the ACF/PACF of a series",
        description="Suggest `timesteps` for a series from its autocorrelation "
        "(ACF) and partial autocorrelation (PACF), and say which rule chose it.",
    )
    _add_data_arguments(suggest, "the column to analyse")
    suggest.add_argument("--max-lag", type=_positive_int, metavar="N",
                         help="largest lag to examine (default: chosen from the length)")
    suggest.add_argument("--plot", metavar="PNG",
                         help="save the ACF/PACF figure with the chosen lag marked")

    split = commands.add_parser(
        "split", help="split series into a stateful plan saved as .npz",
        description="Split series into chunks for a stateful LSTM and save the "
        "plan's arrays (x, y, sample_weight, resets, reset_flags, positions) to an "
        ".npz file.",
    )
    _add_data_arguments(split, "the feature column(s)")
    split.add_argument("--timesteps", "-t", required=True, type=_timesteps,
                       metavar="N|auto",
                       help="steps per chunk, or 'auto' to choose from the ACF/PACF")
    split.add_argument("--targets", "-y", nargs="+", metavar="Y",
                       help="target column(s), per step")
    split.add_argument("--batch-size", type=_positive_int, metavar="B")
    split.add_argument("--streams", type=_positive_int, default=1, metavar="S",
                       help="contiguous streams per series (default 1)")
    split.add_argument("--remainder", choices=("error", "pad", "drop"), default=None,
                       help="when the length is not a multiple of timesteps")
    split.add_argument("--pack", action="store_true",
                       help="pack ragged series back to back into --batch-size lanes "
                            "(reset per row: see reset_flags)")
    split.add_argument("--out", "-o", required=True, metavar="plan.npz",
                       help="where to save the arrays")

    demo = commands.add_parser("demo", help="run the end-to-end demo (make demo)")
    demo.add_argument("--epochs", type=_positive_int, default=40)
    demo.add_argument("--out-dir", default="demo_output", metavar="DIR",
                      help="where to save the figures ('' to skip them)")
    return parser


def _read_frame(args):
    import pandas as pd

    try:
        frame = pd.read_csv(args.file)
    except FileNotFoundError:
        raise InputError(f"FILE {args.file!r} does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(f"FILE {args.file!r} is not a readable CSV file ({error})") from None
    wanted = {"--column": args.column, "--targets": getattr(args, "targets", None) or [],
              "--id-col": [args.id_col] if args.id_col else [],
              "--time-col": [args.time_col] if args.time_col else []}
    for option, names in wanted.items():
        missing = [name for name in names if name not in frame.columns]
        if missing:
            raise InputError(
                f"{option} names {', '.join(map(repr, missing))}, which {args.file!r} "
                f"lacks; its columns are {', '.join(map(repr, frame.columns))}"
            )
    if args.time_col and frame[args.time_col].dtype == object:
        try:
            frame[args.time_col] = pd.to_datetime(frame[args.time_col])
        except (ValueError, TypeError):
            pass  # not dates: ordered as they are (numbers, or sortable strings)
    keep = [*wanted["--id-col"], *wanted["--time-col"], *args.column, *wanted["--targets"]]
    return frame[list(dict.fromkeys(keep))]


def _suggest(args):
    import keras_tbptt as kt

    if len(args.column) != 1:
        raise InputError(f"suggest analyses one --column; received {len(args.column)}")
    frame = _read_frame(args)
    suggestion = kt.suggest_timesteps(
        frame,
        max_lag=args.max_lag, id_col=args.id_col, time_col=args.time_col, nan=args.nan,
    )
    print(suggestion)
    if args.plot:
        _save(suggestion.plot(), args.plot)
        print(f"figure: {args.plot}")


def _split(args):
    import numpy as np

    import keras_tbptt as kt

    frame = _read_frame(args)
    options = dict(batch_size=args.batch_size, streams=args.streams, pack=args.pack,
                   id_col=args.id_col, time_col=args.time_col, nan=args.nan)
    if args.remainder is not None:
        options["remainder"] = args.remainder
    targets = args.targets  # column names: the frame keeps them apart from features
    if args.timesteps == "auto":
        plan = kt.domain_split(frame, targets, **options)
    else:
        plan = kt.naive_split(frame, args.timesteps, targets, **options)
    arrays = {"x": plan.x, "resets": plan.resets, "reset_flags": plan.reset_flags,
              "positions": plan.positions,
              "timesteps": plan.timesteps, "batch_size": plan.batch_size}
    if plan.y is not None:
        arrays.update(y=plan.y, sample_weight=plan.sample_weight)
    np.savez(args.out, **arrays)
    print(plan)
    print(f"saved {', '.join(arrays)} to {args.out}")


def _save(figure, path):
    import os

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure.savefig(path, dpi=110)


def main(argv=None):
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from keras_tbptt.apps import demo

        demo.main(["--epochs", str(args.epochs), "--out-dir", args.out_dir])
        return 0
    import matplotlib

    matplotlib.use("Agg")  # a command line draws to files, never to a window
    try:
        {"suggest": _suggest, "split": _split}[args.command](args)
    except (InputError, ValueError, TypeError, OSError) as error:
        message = " ".join(str(error).split())  # one line, whatever the library wrote
        print(f"keras-tbptt {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
