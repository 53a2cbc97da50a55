"""Scheme 3 for text: one sentence per sample, stateful across a document."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from keras_tbptt.core.build import validate_layout_args
from keras_tbptt.core.inputs import Panel
from keras_tbptt.core.layout import build_window_layout
from keras_tbptt.core.plan import SplitPlan
from keras_tbptt.core.targets import Targets
from keras_tbptt.core.validation import check_int


def sentence_split(
    documents: np.ndarray | Sequence[int] | Sequence[np.ndarray | Sequence[int]],
    *,
    sentence_end: int | Sequence[int],
    max_len: int | str | None = None,
    targets: np.ndarray | Sequence[np.ndarray] | None = None,
    batch_size: int | None = None,
) -> SplitPlan:
    """Split token-id documents by sentence for a stateful LSTM.

    The domain-specific split for text: every sentence is one sample, zero
    padded to `max_len` tokens (`sample_weight` 0 on padding), so
    `keras.layers.Embedding(mask_zero=True)` masks the padding and padded
    steps leave the LSTM state unchanged. States carry from one sentence to
    the next sentence of the same document and are reset when a new group
    of documents starts. With `B = batch_size` documents per batch, row `i`
    of batch `j` holds sentence `j` of document `i` of the group (ids below,
    `.` is the `sentence_end` id, `_` is padding 0, max_len=4):

    ```
    doc 0: 5 6 7 . | 8 . | 9          batch 0 = [5 6 7 .] [3 4 . _]  reset
    doc 1: 3 4 . | 2 2 2 2 2 2 .      batch 1 = [8 . _ _] [2 2 2 2]
    doc 2: 7 .                        batch 2 = [9 _ _ _] [2 2 . _]
                                      batch 3 = [7 . _ _] [_ _ _ _]  reset
    ```

    With `batch_size=2`, documents 0 and 1 form the first group: the
    sentence `2 2 2 2 2 2 .` is longer than `max_len`, so it is cut into
    pieces of `max_len` tokens that follow each other in consecutive
    batches. Document 0 ends without a sentence end: its tail `9` is still
    a sentence. Document 2 opens the second group, beside a filler row
    (all padding, weight 0) that completes the batch; a document with fewer
    sentences than the others of its group gets all-padding rows (weight 0)
    after its last sentence. Documents keep their order; sort them by
    number of sentences yourself to reduce filler.

    Args:
        documents: token ids: a list of 1-D integer arrays (or lists), one
            per document, or one 1-D integer array (or list of ints) for a
            single document. Id 0 is reserved for padding and must not occur
            in the documents; ids are otherwise free (no vocabulary size is
            needed).
        sentence_end: the id, or a list of ids, that end a sentence (e.g.
            the ids of ".", "?" and "!"). The end token is kept as the last
            token of its sentence; every occurrence ends a sentence. A
            document's tokens after its last end token form its last
            sentence.
        max_len: tokens per sample. `None` (default): the longest sentence,
            so every sentence is one sample. An int: sentences longer than
            `max_len` are cut into consecutive pieces of `max_len` tokens
            (the last piece padded). `"mean"`: the average sentence length
            (rounded), cutting longer sentences the same way.
        targets: optional per-token targets with the documents' structure
            (e.g. the next word's id): a list of arrays of the documents'
            lengths (1-D, or 2-D `[length, target_features]`), or one array
            for a single document. Integer ids stay integers.
        batch_size: documents per batch (the stateful model's batch size);
            defaults to the number of documents. Filler rows complete the
            last group.

    Returns:
        A `SplitPlan` with `x` of shape `[samples, max_len]` in the
        documents' integer dtype (what `Embedding` takes), `y` of shape
        `[samples, max_len]` (or `[samples, max_len, target_features]`) and
        `sample_weight` of shape `[samples, max_len]` (`plan.weight_scale`
        on real tokens, 0 on padding and filler). `plan.positions` gives `(document, first
        token)` of each sample; `plan.unsplit(outputs)` maps per-token
        outputs back to one array per document (padding dropped; floats,
        as outputs are). `plan.validation_split` is not available: hold out
        whole documents instead.

    Example: the drawing above.

    >>> import keras_tbptt
    >>> docs = [[5, 6, 7, 1, 8, 1, 9], [3, 4, 1, 2, 2, 2, 2, 2, 2, 1], [7, 1]]
    >>> plan = keras_tbptt.sentence_split(docs, sentence_end=1, max_len=4,
    ...                                   batch_size=2)
    >>> plan
    SplitPlan(scheme='sentence_split', x=(8, 4), batch_size=2, batches=4, resets=2/4, stateful=True)
    >>> plan.x[:2].tolist(), plan.x.dtype.kind  # batch 0, integers
    ([[5, 6, 7, 1], [3, 4, 1, 0]], 'i')
    >>> plan.positions[:4].tolist()  # (document, first token)
    [[0, 0], [1, 0], [0, 4], [1, 3]]
    >>> [d.astype(int).tolist() for d in plan.unsplit(plan.x)] == docs
    True

    Next-word targets give a weight 0 to padding:

    >>> plan = keras_tbptt.sentence_split(
    ...     [d[:-1] for d in docs], sentence_end=1, targets=[d[1:] for d in docs])
    >>> plan.x.shape, plan.y.shape, (plan.sample_weight[0] > 0).tolist()
    ((6, 6), (6, 6), [True, True, True, True, False, False])
    """
    # Every argument is checked before any work.
    arrays, kind = _as_documents(documents, "documents")
    end_ids = _check_sentence_end(sentence_end)
    _check_max_len(max_len)
    validate_layout_args(batch_size, 1, "error")
    target_arrays = (
        None if targets is None else _as_targets(targets, arrays, kind)
    )

    bounds = [_sentences(doc, end_ids) for doc in arrays]
    if not any(len(starts) > 1 or np.isin(doc[-1:], end_ids).any()
               for doc, (starts, _) in zip(arrays, bounds)):
        warnings.warn(
            f"`sentence_end`={sentence_end!r} occurs in no document, so every "
            "document is one sentence. Check that it is the id of your "
            "sentence-end token (e.g. vocabulary['.']).",
            stacklevel=2,
        )
    sentence_lengths = np.concatenate([stops - starts for starts, stops in bounds])
    if max_len is None:
        max_len = int(sentence_lengths.max())
    elif max_len == "mean":
        max_len = max(1, int(round(float(sentence_lengths.mean()))))
    pieces = [_pieces(starts, stops, max_len) for starts, stops in bounds]
    layout = build_window_layout(
        np.arange(len(arrays)),
        [offsets for offsets, _ in pieces],
        [lengths for _, lengths in pieces],
        timesteps=max_len,
        batch_size=batch_size or len(arrays),
    )
    lengths = np.array([len(doc) for doc in arrays], dtype=np.int64)
    panel = Panel(arrays, kind, original_lengths=lengths)
    return SplitPlan(
        panel,
        None if target_arrays is None else Targets(arrays=target_arrays),
        layout,
        scheme="sentence_split",
        segments=(np.arange(len(arrays)), np.zeros(len(arrays), np.int64), lengths),
        rebuild=_no_validation_split,
    )


def _sentences(doc, end_ids):
    """`(starts, stops)` of the sentences of `doc`: each ends after an end id."""
    stops = np.flatnonzero(np.isin(doc, end_ids)) + 1
    if not len(stops) or stops[-1] != len(doc):
        stops = np.append(stops, len(doc))  # the tail is a sentence too
    starts = np.concatenate([[0], stops[:-1]])
    return starts.astype(np.int64), stops.astype(np.int64)


def _pieces(starts, stops, max_len):
    """Offsets and real lengths of the samples: sentences cut at `max_len`."""
    counts = -(-(stops - starts) // max_len)
    first = np.cumsum(counts) - counts
    within = np.arange(counts.sum()) - np.repeat(first, counts)
    offsets = np.repeat(starts, counts) + within * max_len
    return offsets, np.minimum(max_len, np.repeat(stops, counts) - offsets)


def _no_validation_split(segments, share):
    raise ValueError(
        "validation_split() cuts every series by time in whole windows, which "
        "would cut sentences of a sentence_split plan in two. For text, hold "
        "out whole documents: call sentence_split on a training list and on a "
        "validation list of documents."
    )


def _is_id(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _as_documents(documents, name):
    """Validate `documents`; return `(list of 1-D int arrays, kind)`."""
    if isinstance(documents, np.ndarray):
        if documents.ndim != 1:
            raise ValueError(
                f"`{name}` must be a list of 1-D token-id arrays (one per "
                f"document) or one 1-D array. Received: an array of shape "
                f"{documents.shape}. For one document per row, pass a list of "
                "the rows without their padding."
            )
        items, kind = [documents], "1d"
    elif isinstance(documents, (list, tuple)):
        if not documents:
            raise ValueError(f"`{name}` holds no documents. Received: {name}={documents!r}")
        if all(_is_id(item) for item in documents):
            items, kind = [np.asarray(documents)], "1d"
        else:
            items, kind = list(documents), "list"
    else:
        raise TypeError(
            f"`{name}` must be a list of 1-D integer token-id arrays (or one "
            f"1-D array). Received: {name} of type {type(documents).__name__}"
            + (". Tokenize and encode text into ids first." if isinstance(documents, str) else "")
        )
    arrays = []
    for i, item in enumerate(items):
        where = "" if kind == "1d" else f" (document {i})"
        if isinstance(item, (str, bytes)):
            raise TypeError(
                f"`{name}` must hold token ids, not text{where}. Encode words "
                "as integer ids with a vocabulary first."
            )
        array = np.asarray(item)
        if array.ndim != 1:
            raise ValueError(
                f"Each document in `{name}` must be 1-D (a sequence of token "
                f"ids){where}. Received: shape={array.shape}"
            )
        if len(array) == 0:
            raise ValueError(
                f"`{name}` contains an empty document{where}. Drop empty "
                "documents before splitting."
            )
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(
                f"`{name}` must hold integer token ids{where}. Received "
                f"dtype={array.dtype}. Encode tokens as ids; cast whole-number "
                "floats with .astype(np.int64)."
            )
        if array.min() < 1:
            position = int(np.argmax(array < 1))
            value = int(array[position])
            if value < 0:
                raise ValueError(
                    f"`{name}` must hold non-negative token ids{where}. "
                    f"Received: {value} at position {position}."
                )
            raise ValueError(
                f"`{name}` uses token id 0{where} at position {position}, but "
                "0 is reserved for padding (Embedding(mask_zero=True) masks "
                "it). Reserve 0 when building the vocabulary, or shift every "
                "id by one (ids + 1)."
            )
        arrays.append(array)
    # One dtype for all (batches are built in the first document's dtype).
    dtype = np.result_type(*arrays)
    if not np.issubdtype(dtype, np.integer):  # e.g. int64 with uint64
        dtype = np.int64
    return [a.astype(dtype, copy=False) for a in arrays], kind


def _check_sentence_end(sentence_end):
    ids = [sentence_end] if _is_id(sentence_end) else sentence_end
    if isinstance(ids, (list, tuple, np.ndarray)) and len(ids) == 0:
        raise ValueError(
            "`sentence_end` must name at least one id. Received: "
            f"sentence_end={sentence_end!r}"
        )
    if not isinstance(ids, (list, tuple, np.ndarray)) or not all(
        _is_id(i) for i in np.asarray(ids, dtype=object).ravel()
    ) or np.ndim(ids) != 1:
        raise TypeError(
            "`sentence_end` must be a token id (an integer) or a non-empty "
            "list of ids, e.g. vocabulary['.']. Received: "
            f"sentence_end={sentence_end!r}"
        )
    ids = np.asarray(ids, dtype=np.int64)
    if (ids < 1).any():
        raise ValueError(
            "`sentence_end` ids must be >= 1 (0 is padding). Received: "
            f"sentence_end={sentence_end!r}"
        )
    return ids


def _check_max_len(max_len):
    if max_len is None or (isinstance(max_len, str) and max_len == "mean"):
        return
    if isinstance(max_len, str):
        raise ValueError(
            "`max_len` must be None, an integer >= 1 or 'mean'. Received: "
            f"max_len={max_len!r}"
        )
    check_int(max_len, "max_len")


def _as_targets(targets, arrays, kind):
    """Validate per-token targets against the documents' lengths."""
    lengths = [len(a) for a in arrays]
    if kind == "list":
        if not isinstance(targets, (list, tuple)) or len(targets) != len(arrays):
            got = (
                f"{len(targets)} items" if isinstance(targets, (list, tuple))
                else f"type {type(targets).__name__}"
            )
            raise ValueError(
                "`targets` must be a list with one array per document.\n"
                f"- Expected: {len(arrays)} arrays of lengths {lengths[:5]}"
                f"{' ...' if len(lengths) > 5 else ''}\n"
                f"- Received: {got}"
            )
        items = list(targets)
    else:
        items = [targets]
    out = []
    for i, item in enumerate(items):
        where = "" if kind == "1d" else f" (document {i})"
        array = np.asarray(item)
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(
            array.dtype, np.complexfloating
        ):
            raise TypeError(
                f"`targets` must hold real numbers or integer ids{where}. "
                f"Received dtype={array.dtype}."
            )
        if array.ndim not in (1, 2) or array.shape[0] != lengths[i]:
            raise ValueError(
                f"`targets` must have one entry per token{where}.\n"
                f"- Expected: shape ({lengths[i]},) or ({lengths[i]}, "
                "target_features)\n"
                f"- Received: shape={array.shape}"
            )
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise ValueError(
                f"`targets` contain NaN or infinite values{where}; fill or "
                "drop them before splitting."
            )
        out.append(array)
    trailing = {a.shape[1:] for a in out}
    if len(trailing) > 1:
        raise ValueError(
            "All `targets` arrays must have the same trailing shape. Received: "
            f"{sorted(trailing)}"
        )
    dtype = np.result_type(*out)
    return [a.astype(dtype, copy=False) for a in out]
