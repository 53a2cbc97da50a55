"""`gradient_horizon`: how far back a model's loss gradient reaches, and
which `truncate_gradient` keeps it.

The third way to choose timesteps, after the data's correlogram
(`suggest_timesteps`) and brute force (`grid_search`): ask the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import keras
import numpy as np

from keras_tbptt.core.plan import SplitPlan
from keras_tbptt.core.validation import check_int
from keras_tbptt.layers.truncation import TruncatedRNN
from keras_tbptt.timesteps.horizon import GradientHorizon
from keras_tbptt.training.loss_gradients import LossGradients

DEFAULT_BATCHES = 4
DEFAULT_OUTPUT_STEPS = 8
DEFAULT_BATCH_SIZE = 32


def gradient_horizon(
    model: keras.Model,
    x: np.ndarray | SplitPlan,
    y: np.ndarray | None = None,
    *,
    sample_weight: np.ndarray | None = None,
    candidates: Sequence[int] | None = None,
    threshold: float = 0.95,
    batches: int = DEFAULT_BATCHES,
    batch_size: int | None = None,
    output_steps: int = DEFAULT_OUTPUT_STEPS,
    progress: bool = False,
) -> GradientHorizon:
    """Measure how far back the model's loss gradient reaches, and suggest k2.

    On a few sample batches, with the model's compiled loss:

    - the full-BPTT gradient of the loss with respect to the trainable
      weights, and for each candidate k2 the truncated one (every
      `TruncatedRNN` layer's `truncate_gradient` set to k2 for that
      computation, and restored after, also on error); per candidate the
      cosine similarity and the relative error `||g_k2 - g_full|| /
      ||g_full||`, over all weights and over the recurrent layers' weights
      alone (the gradients are summed over the batches first). Where k2 is
      at least the sequence length the truncated layer runs the very graph
      of full BPTT, so the cosine is 1;
    - per lag `0 .. T-1`, the norm of the gradient of the loss at step t
      with respect to the model's input at step `t - lag`, under full BPTT,
      averaged over `output_steps` steps t spread evenly over the sequence
      (the last one included), the rows and the batches, and normalised to
      sum to 1. For a model with one output per sequence, t is the last
      step.

    **The rule**: `suggested` is the smallest candidate whose lags
    `0 .. k2 - 1` hold at least `threshold` of the input-gradient mass
    above the uniform level `1 / T` (`coverage`); the largest candidate if
    none does. Measured on a trained delay task (the output at t is the
    input at t - 12, T = 60, a 32-unit LSTM; `tests/test_gradient_horizon.py`
    and the guide page): the input-gradient norm peaks at lag 12, and the
    rule picks the first candidate past the peak. Two other rules fail
    there: the weight-gradient cosine stays well below 1 until k2 is close
    to T (many small dropped terms add up), so a cosine threshold suggests
    no truncation; and the raw mass carries a diffuse floor over every lag,
    so covering 95% of it needs a k2 near T too. Subtracting the uniform level removes that floor and keeps the
    lags the gradient singles out. The cosines are reported to show what a
    truncation costs the gradient.

    Everything runs in inference mode (`training=False`: no dropout, so two
    gradients differ only by the truncation). The model is left as it was:
    its weights, tracked states, optimizer and metric variables are
    restored after the call (also on error). Stateful layers start every
    sample batch from zero states (as after a reset), so every candidate
    sees the same starting point.

    Args:
        model: a built, compiled Keras model with at least one
            `TruncatedRNN` layer (`TBPTTLSTM`, `TBPTTGRU`, `TBPTTSimpleRNN`,
            `TBPTTRNN`; nested models and `Bidirectional` included), one
            input `[batch, timesteps, features]` of floats.
        x: the inputs `[samples, timesteps, features]`, or a `SplitPlan`
            (its batches, with their targets and sample weights, are used;
            `y` and `sample_weight` must then be `None`).
        y: the targets, one per sample of `x`.
        sample_weight: optional weights as for `fit`, one row per sample.
        candidates: the k2 values to compare, positive integers; sorted and
            deduplicated. Default: the powers of 2 below the length, and the
            length.
        threshold: the share of the input-gradient mass above the uniform
            level that the suggestion must keep, in (0, 1] (default 0.95).
        batches: how many batches to sample, spread evenly over the data
            (fewer if the data has fewer).
        batch_size: rows per batch for arrays. Default: the stateful
            layers' batch size, else 32. A plan brings its own.
        output_steps: how many steps t the per-lag norm is averaged over.
        progress: show a progress bar (tqdm), one tick per gradient.

    Returns:
        A `GradientHorizon`: `candidates`, `cosine`, `relative_error`,
        `recurrent_cosine`, `recurrent_relative_error`, `lags`,
        `input_gradient_norm`, `coverage`, `suggested`, `threshold`, with
        `plot()` and `table`.

    Example: an untrained model on a delay task (the output at t is the
    input at t - 3).

    >>> import numpy as np, keras, keras_tbptt as kt
    >>> x = np.random.default_rng(0).normal(size=(8, 16, 1)).astype("float32")
    >>> y = np.roll(x, 3, axis=1)
    >>> model = keras.Sequential([keras.Input((16, 1)),
    ...                           kt.TBPTTLSTM(4, return_sequences=True),
    ...                           keras.layers.Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> horizon = kt.gradient_horizon(model, x, y, candidates=[2, 4, 8, 16])
    >>> horizon.candidates, len(horizon.lags)
    ((2, 4, 8, 16), 16)
    >>> round(float(horizon.cosine[-1]), 4), round(float(horizon.input_gradient_norm.sum()), 4)
    (1.0, 1.0)
    >>> horizon.suggested in horizon.candidates
    True
    """
    layers = _truncated_layers(model)
    threshold = _check_threshold(threshold)
    batches = check_int(batches, "batches")
    output_steps = check_int(output_steps, "output_steps")
    if not isinstance(progress, bool):
        raise TypeError(f"`progress` must be True or False. Received: progress={progress!r}")
    sample = _sample_batches(model, x, y, sample_weight, batch_size, batches)
    timesteps = sample[0][0].shape[1]
    candidates = _check_candidates(candidates, timesteps)
    recurrent = _recurrent_indices(model, layers)

    from tqdm.auto import tqdm

    with _restored(model, layers):
        for layer in layers:
            layer.truncate_gradient = None
        y_pred = model(sample[0][0], training=False)  # the output's layout
        per_step = len(y_pred.shape) >= 3 and y_pred.shape[1] == timesteps
        steps = _output_steps(timesteps, output_steps) if per_step else [timesteps - 1]
        total = len(sample) * (1 + len(steps) + len(candidates))
        with tqdm(total=total, disable=not progress, desc="gradient horizon") as bar:
            full_gradients = LossGradients(model)
            full = _summed_weight_gradients(full_gradients, model, sample, bar)
            norms = _lag_norms(full_gradients, model, sample, steps, per_step, bar)
            truncated = []
            for k2 in candidates:
                for layer in layers:
                    layer.truncate_gradient = k2
                gradients = LossGradients(model, compile=len(sample) > 2)
                truncated.append(_summed_weight_gradients(gradients, model, sample, bar))
    return GradientHorizon(
        candidates=candidates,
        cosine=[_cosine(g, full) for g in truncated],
        relative_error=[_relative_error(g, full) for g in truncated],
        recurrent_cosine=[_cosine(g[recurrent], full[recurrent]) for g in truncated],
        recurrent_relative_error=[
            _relative_error(g[recurrent], full[recurrent]) for g in truncated],
        input_gradient_norm=norms,
        threshold=threshold,
        batches=len(sample),
    )


def truncated_weight_gradients(
    model: keras.Model, x: np.ndarray, y: Any, sample_weight: Any, k2: int | None
) -> list[np.ndarray]:
    """The gradient of the compiled loss on one batch with respect to each
    trainable weight, with every `TruncatedRNN` layer at
    `truncate_gradient=k2` (`None`: full BPTT), the model restored after.
    What `gradient_horizon` compares (its tests check it against a
    hand-written `stop_gradient` truncation)."""
    layers = _truncated_layers(model)
    with _restored(model, layers):
        for layer in layers:
            layer.truncate_gradient = k2
        _reset_stateful(model)
        gradients = LossGradients(model, compile=False)
        return gradients(np.asarray(x, "float32"), y, sample_weight)[0]


def _truncated_layers(model):
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: model of type {type(model).__name__}")
    if not model.built:
        raise ValueError(
            "`model` must be built: give it an Input (keras.Input((timesteps, "
            "features))) or call it on a batch first. Received: an unbuilt model "
            f"{model.name!r}")
    if not getattr(model, "compiled", False) or model.loss is None:
        raise ValueError(
            "`model` must be compiled with a loss (its gradient is what is "
            f"measured): call model.compile(optimizer=..., loss=...). Received: "
            f"model {model.name!r} {'without a loss' if getattr(model, 'compiled', False) else 'not compiled'}")
    layers = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
              if isinstance(layer, TruncatedRNN)]
    if not layers:
        raise ValueError(
            "`model` has no TruncatedRNN layer, so no k2 to measure: build it with "
            "kt.TBPTTLSTM, kt.TBPTTGRU, kt.TBPTTSimpleRNN or kt.TBPTTRNN(cell) in "
            f"place of Keras' recurrent layers. Received: model {model.name!r} with "
            f"layers {[layer.name for layer in model.layers]}")
    return layers


def _check_threshold(threshold):
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) or not (
        0 < threshold <= 1
    ):
        raise ValueError(
            "`threshold` must be a number in (0, 1] (the share of the input-gradient "
            f"mass the suggestion keeps). Received: threshold={threshold!r}")
    return float(threshold)


def _check_candidates(candidates, timesteps):
    if candidates is None:
        powers = [2 ** i for i in range(timesteps.bit_length()) if 2 ** i < timesteps]
        return [*powers, timesteps]
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence | np.ndarray):
        raise TypeError(
            "`candidates` must be a sequence of positive integers (k2 values). "
            f"Received: candidates={candidates!r}")
    values = [check_int(k2, "candidates") for k2 in candidates]
    if not values:
        raise ValueError("`candidates` must not be empty. Received: candidates=[]")
    return sorted(set(values))


def _stateful_batch_size(model):
    sizes = {layer._expected_batch_size
             for layer in model._flatten_layers(include_self=False, recursive=True)
             if isinstance(layer, keras.layers.RNN) and layer.stateful}
    return sizes.pop() if len(sizes) == 1 else None


def _rows_of_x(array, name, x):
    """`array` as float32, checked to hold one row per sample of `x`."""
    array = _as_float_array(array, name)
    if len(array) != len(x):
        raise ValueError(
            f"`{name}` must have one row per sample of `x`.\n"
            f"- Expected: {name}.shape[0] == {len(x)} (x.shape={x.shape})\n"
            f"- Received: {name}.shape={array.shape}")
    return array


def _sample_batches(model, x, y, sample_weight, batch_size, batches):
    """`batches` (x, y, sample_weight) batches spread evenly over the data."""
    if isinstance(x, SplitPlan):
        if y is not None or sample_weight is not None or batch_size is not None:
            raise ValueError(
                "With a plan as `x`, `y`, `sample_weight` and `batch_size` come from "
                "the plan: leave them None. Received: "
                f"y={'array' if y is not None else None}, sample_weight="
                f"{'array' if sample_weight is not None else None}, batch_size={batch_size}")
        if x.y is None:
            raise ValueError(
                "The plan has no targets, so there is no loss to differentiate: "
                "split the series with targets (e.g. naive_split(series, timesteps, "
                "targets)).")
        picks = np.unique(np.linspace(0, len(x) - 1, min(batches, len(x))).round().astype(int))
        return [tuple(None if a is None else np.asarray(a, "float32") for a in x.batch(i))
                for i in picks]
    x = _as_float_array(x, "x")
    if x.ndim != 3:
        raise ValueError(
            "`x` must be `[samples, timesteps, features]`.\n"
            "- Expected: 3 dimensions\n"
            f"- Received: shape {x.shape}")
    if y is None:
        raise ValueError("`y` is needed for the loss: pass the targets of `x` (or a plan as `x`).")
    y = _rows_of_x(y, "y", x)
    if sample_weight is not None:
        sample_weight = _rows_of_x(sample_weight, "sample_weight", x)
    fixed = _stateful_batch_size(model)
    size = check_int(batch_size, "batch_size", allow_none=True)
    if size is None:
        size = fixed or min(DEFAULT_BATCH_SIZE, len(x))
    elif fixed is not None and size != fixed:
        raise ValueError(
            "`batch_size` must be the stateful layers' batch size.\n"
            f"- Expected: batch_size={fixed}\n- Received: batch_size={size}")
    if len(x) < size:
        raise ValueError(
            f"`x` must hold at least one batch of {size} samples (the "
            f"{'stateful layers' if fixed else 'batch'} size).\n"
            f"- Expected: x.shape[0] >= {size}\n- Received: x.shape={x.shape}")
    count = len(x) // size
    picks = np.unique(np.linspace(0, count - 1, min(batches, count)).round().astype(int))
    rows = [slice(i * size, (i + 1) * size) for i in picks]
    return [(x[r], y[r], None if sample_weight is None else sample_weight[r]) for r in rows]


def _as_float_array(value, name):
    try:
        array = np.asarray(value, dtype="float32")
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`{name}` must be a numeric array. Received: {name} of type "
            f"{type(value).__name__} ({error})") from None
    return array


def _output_steps(timesteps, count):
    """`count` steps spread evenly over the sequence, the last one included."""
    return sorted(set(np.linspace(timesteps - 1, 0, min(count, timesteps)).round().astype(int)))


def _recurrent_indices(model, layers):
    """Positions in `model.trainable_variables` of the truncated layers' weights."""
    ids = {id(v) for layer in layers for v in layer.trainable_variables}
    indices = [i for i, v in enumerate(model.trainable_variables) if id(v) in ids]
    return np.asarray(indices, dtype=int)


def _reset_stateful(model):
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.RNN) and layer.stateful:
            layer.reset_state()


def _summed_weight_gradients(gradients, model, sample, bar):
    """The weight gradients summed over the sample batches, one object array
    entry per trainable variable (flattened)."""
    total = None
    for x, y, weight in sample:
        _reset_stateful(model)
        grads, _ = gradients(x, y, weight)
        flat = [g.ravel().astype("float64") for g in grads]
        total = flat if total is None else [t + g for t, g in zip(total, flat, strict=True)]
        bar.update()
    out = np.empty(len(total), dtype=object)
    out[:] = total
    return out


def _lag_norms(gradients, model, sample, steps, per_step, bar):
    """Per lag: the mean norm of the gradient of the loss at a step t with
    respect to the input at t - lag, normalised to sum to 1."""
    timesteps = sample[0][0].shape[1]
    sums, counts = np.zeros(timesteps), np.zeros(timesteps)
    for x, y, weight in sample:
        for t in steps:
            if per_step:
                step_weight = np.zeros(x.shape[:2], "float32")
                step_weight[:, t] = 1.0 if weight is None else weight[:, t]
            else:
                step_weight = weight
            _reset_stateful(model)
            _, input_grad = gradients(x, y, step_weight)
            norms = np.linalg.norm(input_grad.reshape(*input_grad.shape[:2], -1), axis=-1)
            # Lag l of step t is the input at t - l: lags 0..t, row-averaged.
            sums[: t + 1] += norms[:, t::-1].mean(axis=0)
            counts[: t + 1] += 1
            bar.update()
    curve = np.divide(sums, counts, out=np.zeros(timesteps), where=counts > 0)
    total = curve.sum()
    return curve / total if total > 0 else curve


def _norm(parts):
    return float(np.sqrt(sum(float(np.dot(p, p)) for p in parts)))


def _cosine(got, full):
    scale = _norm(got) * _norm(full)
    return sum(float(np.dot(a, b)) for a, b in zip(got, full, strict=True)) / scale if scale else np.nan


def _relative_error(got, full):
    scale = _norm(full)
    return _norm([a - b for a, b in zip(got, full, strict=True)]) / scale if scale else np.nan


def _torch_random_state():
    """Torch's global generator state: Keras' torch dropout draws from it
    (seedless layers), and a forward pass consumes it, so a measurement
    during `fit` would change the masks of the epochs after it."""
    if keras.backend.backend() != "torch":
        return None
    import torch

    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return torch.random.get_rng_state(), cuda


def _set_torch_random_state(state):
    if state is None:
        return
    import torch

    torch.random.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


@contextlib.contextmanager
def _restored(model, layers) -> Iterator[None]:
    """Puts back every variable of the model, its optimizer and metrics,
    each layer's `truncate_gradient` and torch's random state, whatever
    happens inside."""
    settings = [layer.truncate_gradient for layer in layers]
    optimizer = getattr(model, "optimizer", None)
    variables = [*model.variables, *model.metrics_variables,
                 *(optimizer.variables if optimizer is not None else [])]
    unique = list({id(v): v for v in variables}.values())
    values = [keras.ops.convert_to_numpy(v.value).copy() for v in unique]
    random_state = _torch_random_state()
    try:
        yield
    finally:
        _set_torch_random_state(random_state)
        for layer, setting in zip(layers, settings, strict=True):
            layer.truncate_gradient = setting
        for variable, value in zip(unique, values, strict=True):
            variable.assign(value)
