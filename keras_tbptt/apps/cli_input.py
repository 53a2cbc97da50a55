"""Reading the command line's CSV (`keras-tbptt suggest`, `split`): the
file or stdin, its columns, the time order and the wide layout, with the
errors the command line turns into exit statuses (`InputError`: bad data,
exit 1; `UsageError`: options that do not go together, exit 2).

pandas and the package are imported inside the functions, so that
`keras-tbptt --version` stays fast.
"""

import numbers
import sys
import warnings

STDIO = "-"


class InputError(Exception):
    """A problem with the user's data: one line on stderr, exit status 1."""


class UsageError(Exception):
    """Options that do not go together: the usage line, exit status 2."""


def one_line(text):
    """`text` on one line, its whitespace runs made single spaces."""
    return " ".join(str(text).split())


def _resolve(values, frame, option):
    """Column names of `-c`/`-y` values: whole names first, else comma lists."""
    names = []
    for value in values or []:
        names.extend([value] if value in frame.columns else value.split(","))
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"{option} names {', '.join(map(repr, repeated))} more than once")
    return names


def _where(args):
    return "stdin" if args.file == STDIO else repr(args.file)


def _read_csv(args):
    import pandas as pd

    source = sys.stdin.buffer if args.file == STDIO else args.file
    try:
        return pd.read_csv(source)
    except FileNotFoundError:
        raise InputError(f"FILE.csv {args.file!r} does not exist; give the path of a "
                         "CSV file, or - to read stdin") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(f"FILE.csv {_where(args)} is not a readable CSV file "
                         f"({one_line(error)}); give a CSV file with a header row") from None
    except OSError as error:
        raise InputError(f"FILE.csv {args.file!r} cannot be read: {error.strerror}") from None


def _time_values(column, time_format=None):
    """`column` as numbers or dates, by the rules of the Python API's
    `time_col` (and `time_format`), or None when it is neither: text is
    never ordered as text."""
    import pandas as pd

    from keras_tbptt.core.time_order import time_values

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pd.Series(time_values(column, column.name, "FILE.csv", time_format),
                             index=column.index)
    except ValueError:
        return None


def _time_col_problem(column, args):
    """Why `column`, the --time-col, cannot order the rows: one line."""
    from keras_tbptt.core.time_order import (
        format_reading_all,
        mixed_time_zones,
        unreadable,
    )

    def line(label):  # the header is line 1 of the file
        return f"line {label + 2}" if isinstance(label, numbers.Integral) else f"row {label!r}"

    option = f"--time-col {args.time_col!r}"
    zones = mixed_time_zones(column, args.time_format)
    if zones is not None:
        (first_label, first), (other_label, other) = zones
        return (f"{option} mixes time zones ({first!r} on {line(first_label)}, "
                f"{other!r} on {line(other_label)}), so its times cannot order the "
                "rows as they are; write them in one time zone (e.g. UTC, as "
                "pandas.to_datetime(..., utc=True) gives them), or sort the file and "
                "leave out --time-col")
    if args.time_format is not None:
        label, value, _ = unreadable(column, time_format=args.time_format)
        return (f"{option} does not match --time-format {args.time_format}: {value!r} "
                f"on {line(label)} does not read with it; give the format of every "
                "value (e.g. --time-format %d/%m/%Y reads 13/01/2020), or leave out "
                "--time-format")
    label, value, found = unreadable(column)
    fits = format_reading_all(column, value)
    where = f", {value!r} on {line(label)}" if found and label != column.index[0] else ""
    hint = (f"pass --time-format {fits}, which reads every value" if fits is not None
            else "give its format with --time-format (e.g. --time-format %d/%m/%Y for "
                 "day-first dates such as 13/01/2020)")
    return (f"{option} holds text that is neither numbers nor dates in one format "
            f"(first value {column.iloc[0]!r}{where}), so it cannot order the rows; "
            f"{hint}, convert it to numbers or dates such as 2020-01-31, or sort the "
            "file and leave out --time-col")


def _warn_time_like(frame, args, used):
    """Warn about unused time-like columns that disagree with the row order."""
    import pandas as pd

    from keras_tbptt.core.time_order import is_time_like

    out_of_order = []
    for name in frame.columns:
        if name in used:
            continue
        column = frame[name]
        times = _time_values(column)
        if times is None:
            continue  # neither numbers nor dates: it cannot order the rows
        dates = pd.api.types.is_datetime64_any_dtype(times)
        if not (dates or is_time_like(name, column)):
            continue  # numbers under a name that does not say time
        groups = [times] if not args.id_col else [
            part for _, part in times.groupby(frame[args.id_col], sort=False)
        ]
        if not all(part.is_monotonic_increasing for part in groups):
            out_of_order.append(name)
    if out_of_order:
        first = out_of_order[0]
        warnings.warn(
            f"column{'s' if len(out_of_order) > 1 else ''} "
            f"{', '.join(map(repr, out_of_order))} of {_where(args)} look"
            f"{'' if len(out_of_order) > 1 else 's'} like time and "
            f"{'are' if len(out_of_order) > 1 else 'is'} not in the file's row order, "
            "but the rows are taken in the file's order. Pass "
            f"--time-col {first} to put them in time order.",
            UserWarning, stacklevel=2,
        )


def _warn_time_series(frame, columns, args):
    """`--wide` without `--column` takes every column: say so of a time-like one."""
    import pandas as pd

    from keras_tbptt.core.time_order import is_time_like

    timelike = [name for name in columns
                if pd.api.types.is_numeric_dtype(frame[name])
                and is_time_like(name, frame[name])]
    if timelike:
        warnings.warn(
            f"--wide reads every column as a series, {timelike[0]!r} too, though it "
            f"looks like time. Pass --time-col {timelike[0]} to order the rows by it, "
            "or choose the series with --column.",
            UserWarning, stacklevel=2,
        )


def read_frame(args):
    """`(frame, columns, targets, id_col)`: the CSV as the library reads it."""
    frame = _read_csv(args)
    if not len(frame):
        raise InputError(f"FILE.csv {_where(args)} has a header row but no data rows "
                         f"(columns {', '.join(map(repr, frame.columns))}); give a CSV "
                         "file with one row per time step under its header")
    columns = _resolve(args.column, frame, "--column")
    targets = _resolve(getattr(args, "targets", None), frame, "--targets")
    wanted = {"--column": columns, "--targets": targets,
              "--id-col": [args.id_col] if args.id_col else [],
              "--time-col": [args.time_col] if args.time_col else []}
    for option, names in wanted.items():
        missing = [name for name in names if name not in frame.columns]
        if missing:
            raise InputError(
                f"{option} names {', '.join(map(repr, missing))}, which {_where(args)} "
                f"lacks; its columns are {', '.join(map(repr, frame.columns))}"
            )
    roles = {}
    for option, names in wanted.items():
        for name in names:
            if name in roles:
                raise UsageError(f"column {name!r} is given to both {roles[name]} and "
                                 f"{option}; a column has one role")
            roles[name] = option
    if args.wide and not columns:
        columns = [name for name in frame.columns if name != args.time_col]
        if not args.time_col:
            _warn_time_series(frame, columns, args)
    if args.time_col:
        times = _time_values(frame[args.time_col], args.time_format)
        if times is None:
            raise InputError(_time_col_problem(frame[args.time_col], args))
        frame[args.time_col] = times
    else:
        _warn_time_like(frame, args, set(roles) | set(columns))
    if args.wide:
        return _wide_to_long(frame, columns, args), columns, targets, "series"
    keep = [*wanted["--id-col"], *wanted["--time-col"], *columns, *targets]
    return frame[keep], columns, targets, args.id_col


def _wide_to_long(frame, columns, args):
    """A wide CSV (one column per series) as the long format every command reads.

    `suggest_timesteps` and `domain_split` read long frames, not `wide=True`;
    the ids stay the column names, in the order of the file.
    """
    import pandas as pd

    text = [name for name in columns
            if not (pd.api.types.is_numeric_dtype(frame[name])
                    or pd.api.types.is_bool_dtype(frame[name]))]
    if text:
        raise InputError(
            f"--wide reads every column as a series, but {', '.join(map(repr, text))} "
            f"of {_where(args)} {'is' if len(text) == 1 else 'are'} not numeric; pass "
            f"a time column as --time-col {text[0]}, or choose the series with --column"
        )
    if args.time_col:
        frame = frame.sort_values(args.time_col, kind="stable")
        if frame[args.time_col].isna().any():
            raise InputError(f"--time-col {args.time_col!r} has missing times; every "
                             "row needs one: drop or fill those rows")
        if frame[args.time_col].duplicated().any():
            raise InputError(f"--time-col {args.time_col!r} repeats times; a wide CSV "
                             "needs one row per time step")
    values = frame[columns].to_numpy()
    return pd.DataFrame({
        "series": pd.Index(columns).repeat(len(frame)),
        "value": values.T.reshape(-1),
    })


