"""`forecast`: recursive multi-step forecasts from a trained model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from keras_tbptt.core.time_order import TIME_INDEXES, time_order
from keras_tbptt.core.validation import check_int
from keras_tbptt.layers.stateful import stateful_layers
from keras_tbptt.training.rebatch import rebatched_clone

if TYPE_CHECKING:
    import keras
    import pandas as pd


def forecast(
    model: keras.Model,
    history: np.ndarray | pd.DataFrame | pd.Series,
    horizon: int,
    *,
    exogenous: np.ndarray | pd.DataFrame | None = None,
) -> np.ndarray | pd.DataFrame | pd.Series:
    """Forecast `horizon` steps past `history`, feeding predictions back.

    The classic stateful workflow: a model trained to predict the next step
    of a series (inputs at step t, targets at step t + 1, for example
    `naive_split(x[:-1], T, x[1:])`) warms its state up over the history,
    then runs one step at a time, each forecast becoming the next input.

    Convention: the model's input features are the target features followed
    by the exogenous ones, and its output (last step if it returns
    sequences) is the forecast of the target features at the next step. So
    with `n` output features and `F` input features there are `F - n`
    exogenous features, known in advance:

    ```
    input rows    history[0] ... history[L-1] | [f1, exo[0]] ... [f(H-1), exo[H-2]]
    outputs                            f1     |      f2      ...     fH
    ```

    `history` gives the model's input rows up to now (targets and exogenous
    features); `exogenous[i]` gives the exogenous features of input row
    `L + i`, the row that holds forecast `i + 1`: `horizon - 1` rows, since
    the last forecast is not fed back.

    A stateful model (any stateful recurrent layer) is copied with batch
    size 1 and any number of timesteps (`rebatch`, states reset;
    `truncate_gradient` and `state_step` dropped, as they do not change the
    outputs), runs once over the whole history, then one step per
    forecast. The model passed in and its states are left untouched. The
    result equals one stateless pass over the history followed by the
    forecasts. A stateless model sees the last `timesteps` input rows each
    step (all rows when its timesteps is `None`).

    Args:
        model: a built Sequential or functional `keras.Model` with one input
            `(batch, timesteps, F)` and one output `(batch, n)` or
            `(batch, timesteps, n)`, `n <= F`.
        history: the model's input rows up to now: `[length, F]` (numpy or
            pandas; `[length]` when F = 1), finite. pandas rows indexed by
            a DatetimeIndex, PeriodIndex or TimedeltaIndex are put in time
            order first (as the schemes do); repeated or missing times
            raise.
        horizon: the number of steps to forecast (>= 1).
        exogenous: the exogenous features of the fed-back rows,
            `[horizon - 1, F - n]`; required when `F > n` and `horizon > 1`.

    Returns:
        `[horizon, n]` numpy array. For pandas `history`, a DataFrame with
        the target columns (a Series for a Series `history`), indexed by the
        next `horizon` times after the latest one of a DatetimeIndex or
        PeriodIndex with a frequency (declared, or inferred from the
        sorted index), or by the next `horizon` integers of a RangeIndex
        (else `1 .. horizon`).

    Example: a stateful model trained with batches of 4 chunks of 10 steps.

    >>> import numpy as np, keras, keras_tbptt
    >>> model = keras.Sequential([
    ...     keras.Input(batch_shape=(4, 10, 1)),
    ...     keras_tbptt.TBPTTLSTM(8, stateful=True, return_sequences=True),
    ...     keras.layers.Dense(1),
    ... ])
    >>> history = np.sin(np.arange(37.0) / 4)  # not a multiple of 10: fine
    >>> keras_tbptt.forecast(model, history, 5).shape
    (5, 1)
    """
    import keras

    if not isinstance(model, keras.Model) or not model.built:
        raise TypeError(
            "`model` must be a built keras Sequential or functional Model. "
            f"Received: model={type(model).__name__}"
        )
    input_shape, output_shape = _single_shape(model, "input"), _single_shape(model, "output")
    if len(input_shape) != 3:
        raise ValueError(
            "`model` must take inputs of shape (batch, timesteps, features). "
            f"Received: input shape {input_shape}"
        )
    if len(output_shape) not in (2, 3):
        raise ValueError(
            "`model` must output (batch, targets) or (batch, timesteps, "
            f"targets). Received: output shape {output_shape}"
        )
    n_features, n_targets = input_shape[-1], output_shape[-1]
    if n_targets > n_features:
        raise ValueError(
            "The model's outputs are fed back as its first input features, "
            "so it cannot output more features than it takes.\n"
            f"- Expected: output features <= input features ({n_features})\n"
            f"- Received: output features {n_targets}"
        )
    horizon = check_int(horizon, "horizon", minimum=1)
    values, index, columns = _history_values(history, n_features)
    n_exogenous = n_features - n_targets
    future = _exogenous_values(exogenous, n_exogenous, horizon)

    stateful = bool(stateful_layers(model))
    window = None if stateful else input_shape[1]  # stateless: rows per call
    if window is not None and len(values) < window:
        raise ValueError(
            f"The stateless model takes {window} timesteps per call, so "
            f"`history` needs at least {window} rows. Received: "
            f"{len(values)} rows"
        )
    forecasts = np.empty((horizon, n_targets), dtype="float32")
    if stateful:  # warm up once, then one step per call
        runner = rebatched_clone(model, 1, None, forward_only=True)
        step = _last_step(runner.predict_on_batch(values[None]))
        for i in range(horizon):
            forecasts[i] = step
            if i + 1 < horizon:
                row = np.concatenate([step, future[i]])[None, None]
                step = _last_step(runner.predict_on_batch(row))
    else:  # the last `window` rows (all rows if None) each step
        runner = rebatched_clone(model, 1)
        rows = list(values[len(values) - (window or len(values)):])
        for i in range(horizon):
            forecasts[i] = _last_step(runner.predict_on_batch(np.stack(rows)[None]))
            if i + 1 < horizon:
                rows.append(np.concatenate([forecasts[i], future[i]]))
                rows = rows[-window:] if window else rows
    return _like_history(forecasts, history, index, columns[:n_targets])


def _single_shape(model, kind):
    tensors = getattr(model, kind + "s", None) or []
    if len(tensors) != 1:
        raise ValueError(
            f"`model` must have one {kind} (targets followed by exogenous "
            f"features in one tensor). Received: {len(tensors)} {kind}s"
        )
    return tuple(tensors[0].shape)


def _history_values(history, n_features):
    """`history` as a float32 `[length, n_features]` array, its pandas index
    and column names (or `None`)."""
    index = columns = None
    if hasattr(history, "to_numpy") and hasattr(history, "index"):
        index = history.index
        columns = [history.name] if history.ndim == 1 else list(history.columns)
        history_values = history.to_numpy()
        if isinstance(index, TIME_INDEXES):  # warm up in time order, as trained
            order = time_order(index, "history", f"its index (a {type(index).__name__})")
            if order is not None:
                history_values, index = history_values[order], index[order]
    else:
        history_values = history
    try:
        values = np.asarray(history_values, dtype="float32")
    except (TypeError, ValueError):
        raise TypeError(
            "`history` must be numeric: a numpy array, Series or DataFrame. "
            f"Received: history={type(history).__name__}"
        ) from None
    if values.ndim == 1 and n_features == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[1] != n_features or len(values) == 0:
        raise ValueError(
            "`history` must hold the model's input rows, targets first, then "
            "exogenous features.\n"
            f"- Expected: shape (length >= 1, {n_features})\n"
            f"- Received: shape {values.shape}"
        )
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        where = np.flatnonzero(bad)[:5]
        labels = list(index[where]) if index is not None else where.tolist()
        raise ValueError(
            "`history` must be finite: the state would carry NaN or inf into "
            f"every forecast. Received: non-finite values at rows {labels}"
            f"{' ...' if bad.sum() > 5 else ''}. Fill or drop them first."
        )
    return values, index, columns or [None] * n_features


def _exogenous_values(exogenous, n_exogenous, horizon):
    needed = horizon - 1
    if exogenous is None:
        if n_exogenous and needed:
            raise ValueError(
                f"The model takes {n_exogenous} exogenous input feature(s) "
                "after the targets: pass `exogenous` with their values for "
                f"the {needed} fed-back row(s).\n"
                f"- Expected: exogenous of shape ({needed}, {n_exogenous})\n"
                "- Received: exogenous=None"
            )
        return np.zeros((needed, n_exogenous), dtype="float32")
    if hasattr(exogenous, "to_numpy"):
        exogenous = exogenous.to_numpy()
    values = np.asarray(exogenous, dtype="float32")
    if values.ndim == 1 and n_exogenous == 1:
        values = values[:, None]
    if n_exogenous == 0 or values.shape != (needed, n_exogenous):
        raise ValueError(
            "`exogenous` holds the exogenous features of the rows fed back "
            "(forecast i with exogenous[i - 1]): horizon - 1 rows, one "
            "column per model input feature after the targets.\n"
            f"- Expected: shape ({needed}, {n_exogenous})"
            f"{' (the model has no exogenous features: pass exogenous=None)' if not n_exogenous else ''}\n"
            f"- Received: shape {values.shape}"
        )
    if not np.isfinite(values).all():
        raise ValueError("`exogenous` must be finite. Received: NaN or inf values")
    return values


def _last_step(outputs):
    outputs = np.asarray(outputs)
    return outputs[0, -1] if outputs.ndim == 3 else outputs[0]


def _like_history(forecasts, history, index, columns):
    if index is None:
        return forecasts
    import pandas as pd

    new_index = _future_index(index, len(forecasts))
    if history.ndim == 1:
        return pd.Series(forecasts[:, 0], index=new_index, name=columns[0])
    return pd.DataFrame(forecasts, index=new_index, columns=columns)


def _future_index(index, horizon):
    import pandas as pd

    if isinstance(index, pd.RangeIndex):
        step = index.step
        start = index.stop if len(index) else 0
        return pd.RangeIndex(start, start + horizon * step, step, name=index.name)
    # `index` is in time order (`_history_values`): its last label is the
    # latest, and a frequency read from it steps forward.
    freq = getattr(index, "freq", None)
    if freq is None and isinstance(index, pd.DatetimeIndex) and len(index) >= 3:
        freq = pd.DatetimeIndex(index, freq="infer").freq
    if freq is not None and isinstance(index, (pd.DatetimeIndex, pd.PeriodIndex)):
        if isinstance(index, pd.PeriodIndex):
            return pd.period_range(index[-1] + 1, periods=horizon, freq=index.freq, name=index.name)
        return pd.date_range(index[-1], periods=horizon + 1, freq=freq, name=index.name)[1:]
    return pd.RangeIndex(1, horizon + 1, name="step")
