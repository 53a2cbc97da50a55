"""`keras-tbptt horizon`: `gradient_horizon` of a saved model on a CSV.

How far back the model's loss gradient reaches on the CSV's series, and
the k2 (`truncate_gradient`) that keeps it: the horizon's summary on
stdout, its figure with `--plot`. The CSV is read as by `split` (`-c`
features, `-y` targets, `--id-col`, `--time-col`); the sequences are
`--timesteps` windows (`naive_split`) or the whole series.
"""

import argparse
import os
import sys

from keras_tbptt.apps.cli_input import STDIO, InputError, UsageError, read_frame


def _candidates(text):
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated positive integers (k2 values), e.g. 4,8,16; "
            f"received {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated integers >= 1, e.g. 4,8,16; received {text!r}")
    return values


def _share(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], received {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], received {value:g}")
    return value


def add_arguments(parser, positive_int):
    """The options of `horizon` after MODEL.keras and the data options."""
    parser.add_argument("--targets", "-y", action="append", metavar="Y", required=True,
                        help="a target column, per step (the loss needs them): repeat "
                             "the option (-y a -y b) or give a comma-separated list")
    parser.add_argument("--timesteps", "-t", type=positive_int, metavar="N",
                        help="measure on windows of N steps (naive_split), as the model "
                             "trains (default: each series whole; they must then have "
                             "one length)")
    parser.add_argument("--batch-size", type=positive_int, metavar="B",
                        help="rows per batch (default: one per series; a stateful "
                             "model needs its own)")
    parser.add_argument("--candidates", type=_candidates, metavar="K,K,...",
                        help="the k2 values to compare, e.g. 4,8,16,60 (default: the "
                             "powers of 2 below the length, and the length)")
    parser.add_argument("--threshold", type=_share, default=0.95, metavar="S",
                        help="share of the input-gradient mass above the uniform level "
                             "the suggestion keeps (default 0.95)")
    parser.add_argument("--batches", type=positive_int, default=4, metavar="N",
                        help="sample batches, spread over the data (default 4)")
    parser.add_argument("--output-steps", type=positive_int, default=8, metavar="N",
                        help="steps the per-lag norm is averaged over (default 8)")
    parser.add_argument("--plot", metavar="PNG",
                        help="save the horizon's figure (cosines and coverage per k2, "
                             "input-gradient norm per lag; a file: stdout holds the "
                             "summary)")


def check_usage(args):
    if args.wide:
        raise UsageError("horizon cannot read --wide: it needs per-step --targets "
                         "columns; use one series (-c, -y) or the long format (--id-col)")
    if args.plot == STDIO:
        raise UsageError("--plot - would mix the PNG with the summary on stdout; give a "
                         "file name, e.g. --plot horizon.png")
    if args.model == STDIO:
        raise UsageError("MODEL.keras must be a file (a .keras archive), not -")


def _load_model(path):
    if not os.path.isfile(path):
        raise InputError(f"MODEL.keras {path!r} does not exist (or is not a file); "
                         "save a model with model.save('model.keras')")
    import keras

    import keras_tbptt  # noqa: F401  (its layers are registered on import)

    try:
        return keras.saving.load_model(path)
    except Exception as error:  # noqa: BLE001 (a zip, JSON or Keras error: one answer)
        raise InputError(f"MODEL.keras {path!r} cannot be loaded as a Keras model: "
                         f"{type(error).__name__}: {error}") from None


def _whole_length(frame, id_col):
    """One window per series: their common length."""
    if id_col is None:
        return len(frame)
    lengths = frame.groupby(id_col, sort=False).size()
    if lengths.nunique() > 1:
        shown = ", ".join(f"{name!r}: {size}" for name, size in lengths.head(4).items())
        raise InputError(f"the series have different lengths ({shown} steps), so they "
                         "are not one batch of whole sequences: give --timesteps N to "
                         "measure on windows of N steps")
    return int(lengths.iloc[0])


def run(args, save):
    import keras_tbptt as kt

    frame, _, targets, id_col = read_frame(args)
    model = _load_model(args.model)
    timesteps = args.timesteps or _whole_length(frame, id_col)
    plan = kt.naive_split(frame, timesteps, targets, batch_size=args.batch_size,
                          id_col=id_col, time_col=args.time_col, nan=args.nan)
    horizon = kt.gradient_horizon(model, plan, candidates=args.candidates,
                                  threshold=args.threshold, batches=args.batches,
                                  output_steps=args.output_steps)
    print(horizon)
    if args.plot:
        save(horizon.plot(), args.plot)
        print(f"wrote {args.plot}: the gradient horizon figure", file=sys.stderr)
