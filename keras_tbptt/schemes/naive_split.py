"""Scheme 2: cut long series into contiguous fixed-length chunks."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

from keras_tbptt.core.build import check_timesteps, make_plan, validate_layout_args
from keras_tbptt.core.inputs import as_panel
from keras_tbptt.core.moving_cuts import check_offsets

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from keras_tbptt.core.plan import SplitPlan


def naive_split(
    series: np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame,
    timesteps: int,
    targets: (
        np.ndarray | Sequence[np.ndarray] | pd.Series | pd.DataFrame | str
        | Sequence[str] | None
    ) = None,
    *,
    batch_size: int | None = None,
    streams: int = 1,
    remainder: str = "error",
    pack: bool = False,
    id_col: Hashable | None = None,
    time_col: Hashable | None = None,
    time_format: str | None = None,
    nan: str = "error",
    wide: bool = False,
    offsets: str = "fixed",
    seed: int | None = None,
) -> SplitPlan:
    """Cut series into chunks of `timesteps` steps for a stateful LSTM.

    TBPTT with k1 = k2 = `timesteps`: each chunk is one sample, states carry
    from chunk to chunk of the same series and are reset when a new group of
    series starts. With `B = batch_size` series per batch, batch `j` holds
    chunk `j` of each of the `B` series of the group:

    ```
    series 0: |  c0  |  c1  |  c2  |      batch 0 = [s0.c0, s1.c0]  reset
    series 1: |  c0  |  c1  |  c2  |      batch 1 = [s0.c1, s1.c1]
    series 2: |  c0  |  c1  |  c2  |      batch 2 = [s0.c2, s1.c2]
    series 3: |  c0  |  c1  |  c2  |      batch 3 = [s2.c0, s3.c0]  reset
               <----> timesteps           ...
    ```

    One long series (or fewer series than rows) can run as `streams`
    contiguous streams side by side (the "batchify" layout of language
    models): `streams=4` cuts each series into 4 parts, row `i` of every
    batch continuing part `i`.

    Args:
        series: the data: a 1-D array (one univariate series), 2-D
            `[length, features]` (one series), 3-D `[n_series, length,
            features]`, a list of 1-D/2-D arrays (lengths may differ), a
            pandas Series/DataFrame (columns are features; rows are taken
            in index order, except that a DatetimeIndex, PeriodIndex or
            TimedeltaIndex is put in time order, stably), or a long-format
            DataFrame with `id_col` (and `time_col`; without it the row
            order within an id is the time order). Repeated or missing
            times (in the time index or `time_col`) raise. `unsplit` gives
            the rows back in your order, with your index. A 2-D array with
            more features than steps warns: for many univariate series
            pass `series[..., None]`.
        timesteps: steps per chunk (k1 = k2). Prefer a divisor of the
            length; the practical limit of BPTT is about 200-400 steps.
        targets: optional. Per step (same length as each series, chunked
            like `series`; for a DataFrame, column name(s)) or per sequence
            (one row per series: only the chunk that ends a series carries
            weight, earlier chunks get `sample_weight` 0; nonzero weights
            equal `plan.weight_scale`, so Keras' default loss reduction
            reports the mean loss over the labelled chunks). For
            per-sequence labels, wrap the optimizer in
            `SkipUnweightedBatches` (no update on the unlabelled chunks'
            zero gradients) and pass metrics as `weighted_metrics`. When
            one whole sequence fits in memory as a sample, one sample per
            sequence with `TBPTTLSTM(truncate_gradient=k2)` trains with the
            same gradient reach faster (in the classification benchmark,
            3,000 steps in chunks of 250, an epoch took 2.6 to 4.3 times
            less time, at the same peak memory); prefer chunks for
            sequences too long for one sample, ragged or streamed (see
            the classification guide). pandas targets are aligned by
            label: per step to the series' index, per sequence to the
            series ids (`id_col` values or, with `wide`,
            column names); labels that do not match raise.
        batch_size: rows per batch; defaults to the number of rows (series
            times streams). Filler rows (`sample_weight` 0) complete the
            last group when the rows do not fill it.
        streams: contiguous streams per series (default 1).
        remainder: what to do when a length is not a multiple of
            `timesteps`: `"error"` (default; the message lists the length's
            factors), `"pad"` (zero-pad the last chunk, `sample_weight` 0)
            or `"drop"` (drop the tail, with a warning).
        pack: `True` to pack ragged series (or streams) into `batch_size`
            lanes (needs an explicit `batch_size`). Each row of a batch is a
            lane that runs through several series back to back, so a short
            series no longer leaves its row to filler while the group's
            longest series finishes; filler is left only at lane ends.
            Series go longest first to the lane with the fewest chunks so
            far; `plan.reset_flags` is 1 where a lane's series changes, and
            the model resets that lane's state there, inside the graph
            (`plan.dataset()` sends the flags; see `keras_tbptt.with_reset_flags`).
            Series of 3, 2, 2 and 1 chunks in 2 lanes:

            ```
            pack=False: 5 batches    b0    b1    b2    b3    b4
                            row 0  s0.c0 s0.c1 s0.c2 |s2.c0 s2.c1
                            row 1  s1.c0 s1.c1 fill  |s3.c0 fill
            pack=True: 4 batches     b0    b1    b2    b3
                           lane 0  s0.c0 s0.c1 s0.c2|s3.c0
                           lane 1  s1.c0 s1.c1|s2.c0 s2.c1
                                   (| : that row or lane resets)
            ```
        id_col: the column of a long-format DataFrame naming the series.
        time_col: the column of a long-format DataFrame ordering the steps
            (default: the row order). A `time_col` of text is never sorted as
            text ("10" before "2"): it is read as numbers when every value
            is one, else as dates (`pandas.to_datetime`, one format for the
            column, month first unless only day first fits, or
            `time_format`); anything else raises, asking for `time_format`
            or a converted column. Times in several time zones raise too
            (convert them with `pd.to_datetime(col, utc=True)`).
        time_format: the format of every value of a `time_col` of text (or
            of integers such as 20200131), as for
            `pandas.to_datetime(format=)`: `"%d/%m/%Y"` for day-first dates
            such as "13/01/2020", `"%Y%m%d"`, or `"ISO8601"`. Default
            `None`: inferred from the first value. A format, rather than
            pandas' `dayfirst=True`, because it is strict: a value that does
            not match it raises, naming the value, where `dayfirst` is a
            preference pandas does not enforce.
        nan: what to do with NaN inputs: `"error"` (default), `"ffill"`,
            `"interpolate"` or `"drop"` (drop the steps; `unsplit` puts NaN
            back in their place). NaN per-step targets are never filled:
            outside `"error"` their steps keep the inputs and get target 0
            and `sample_weight` 0.
        wide: `True` for a DataFrame whose columns are univariate series
            sharing its index (default `False`: columns are features of one
            series).
        offsets: `"fixed"` (default): the cuts above, every epoch.
            `"random"`: the cuts move each training epoch, so a dependency
            that straddles a fixed cut is inside a chunk in most epochs.
            Each training epoch of `plan.dataset()` (epoch 0 included)
            draws an offset `p` in `[0, timesteps)` and serves the layout
            whose series start `p` steps into their first chunk: `p` steps
            of front padding (zeros, weight 0), the series, end padding
            (weight 0). The plan (`x`, `sample_weight`, `positions`,
            `unsplit`, `len(plan)`) is offset 0 with room to move: one
            more chunk (all padding) per series or stream, so every epoch
            has `len(plan)` batches; `evaluate`, `predict` and validation
            run at offset 0, so `unsplit(model.predict(...))` is as with
            fixed cuts. Series of 2 chunks, `p = 3`, `timesteps = 8`:

            ```
            offset 0:   | s0 s1 .. s7 | s8 .. s15 | pad ........ |
            offset 3:   | 0 0 0 s0 .. s4 | s5 .. s12 | s13 s14 s15 0 0 0 0 0 |
                          <---> held at the reset state (flag 1 + 3)
            ```

            The state must not move over the front padding: the batch's
            reset flags are `1 + p` where they are 1, and a keras_tbptt
            layer holds such a row at its reset state over the first `p`
            steps (see `with_reset_flags`). So it needs
            `plan.dataset(reset_flags=True)` (its default here) and a
            `with_reset_flags` model; `plan.callbacks()`, `pack=True` and
            per-sequence targets are refused.
        seed: the seed of the offsets with `offsets="random"`
            (`numpy.random.default_rng(seed)`; each `plan.dataset()`
            draws the same offsets, see `PlanDataset.offsets`); `None`
            (default): unseeded.

    Returns:
        A `SplitPlan`.

    Example: 100 series of 50,000 steps in chunks of 500 give 10,000
    samples, 100 batches of 100 series, one reset per epoch.

    >>> import numpy as np, keras_tbptt
    >>> plan = keras_tbptt.naive_split(np.zeros((100, 50_000, 1)), 500)
    >>> plan.x.shape, plan.batch_size, len(plan), int(plan.resets.sum())
    ((10000, 500, 1), 100, 100, 1)

    A ragged panel, 100 series of 37 to 500 steps, in chunks of 50 and
    batches of 16: packing fills most of the steps that filler rows
    wasted, in fewer batches.

    >>> rng = np.random.default_rng(0)
    >>> panel = [np.ones((n, 1)) for n in rng.integers(37, 501, size=100)]
    >>> plan = keras_tbptt.naive_split(panel, 50, batch_size=16, remainder="pad")
    >>> packed = keras_tbptt.naive_split(
    ...     panel, 50, batch_size=16, remainder="pad", pack=True
    ... )
    >>> len(plan), round(plan.fill_ratio, 2), len(packed), round(packed.fill_ratio, 2)
    (67, 0.51, 38, 0.9)

    Moving cuts: one series of 16 steps in chunks of 8 has room for a third
    chunk; at offset 3 the series starts 3 steps into the first.

    >>> series = np.arange(1.0, 17.0)
    >>> plan = keras_tbptt.naive_split(series, 8, series, offsets="random", seed=0)
    >>> len(plan), plan.dataset().offsets  # epoch 0's offset, drawn from the seed
    (3, [6])
    >>> for i in range(len(plan)):
    ...     print(plan.batch(i, offset=3)[0][0, :, 0].astype(int).tolist())
    [0, 0, 0, 1, 2, 3, 4, 5]
    [6, 7, 8, 9, 10, 11, 12, 13]
    [14, 15, 16, 0, 0, 0, 0, 0]
    """
    validate_layout_args(batch_size, streams, remainder, pack)
    check_offsets(offsets, seed, pack=pack, per_sequence=False)
    panel, target_data = as_panel(
        series, targets, id_col=id_col, time_col=time_col,
        time_format=time_format, nan=nan,
        wide=wide,
    )
    timesteps = check_timesteps(timesteps, panel, remainder=remainder)
    return make_plan(
        "naive_split",
        panel,
        target_data,
        timesteps=timesteps,
        batch_size=batch_size,
        streams=streams,
        remainder=remainder,
        pack=pack,
        offsets=offsets,
        seed=seed,
    )
