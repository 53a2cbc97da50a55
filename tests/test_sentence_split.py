"""`sentence_split`: the data side, checked against a plain-Python reference.

The reference below re-derives the layout with loops over tokens (no numpy
tricks, no keras_tbptt internals): sentences end after an end id, longer
sentences are cut into `max_len` pieces, documents are grouped by
`batch_size`, and batch `j` of a group holds piece `j` of each document.
"""

import warnings

import numpy as np
import pytest

import keras_tbptt as kt
from conftest import unit_weights
from keras_tbptt.core.text import load_pydoc_text, tokenize

END = 1  # the sentence-end id in the generated documents


def reference_pieces(doc, end_ids, max_len):
    """`(start, tokens)` of every sample of one document."""
    sentences, current, start = [], [], 0
    for position, token in enumerate(doc):
        current.append(int(token))
        if int(token) in end_ids:
            sentences.append((start, current))
            current, start = [], position + 1
    if current:
        sentences.append((start, current))
    pieces = []
    for start, tokens in sentences:
        for cut in range(0, len(tokens), max_len):
            pieces.append((start + cut, tokens[cut : cut + max_len]))
    return pieces


def reference_layout(docs, end_ids, max_len, batch_size):
    """Expected x, sample_weight, positions and resets, sample by sample."""
    x, weight, positions, resets = [], [], [], []
    for first in range(0, len(docs), batch_size):
        group = [reference_pieces(d, end_ids, max_len) for d in docs[first : first + batch_size]]
        group += [[]] * (batch_size - len(group))  # filler rows
        for j in range(max(len(p) for p in group)):
            resets.append(j == 0)
            for i, pieces in enumerate(group):
                row = [0] * max_len
                if j < len(pieces):
                    start, tokens = pieces[j]
                    row[: len(tokens)] = tokens
                    positions.append((first + i, start))
                else:
                    positions.append((-1, -1))
                x.append(row)
                weight.append([float(t != 0) for t in row])
    return np.array(x), np.array(weight), np.array(positions), np.array(resets)


def random_documents(rng, n_docs, dtype=np.int64):
    """Documents of ids 1..9 where END is frequent: sentences of many lengths,
    some documents ending without an end id."""
    docs = []
    for _ in range(n_docs):
        length = int(rng.integers(1, 40))
        ids = rng.integers(2, 10, size=length)
        ids[rng.random(length) < 0.2] = END
        docs.append(ids.astype(dtype))
    return docs


@pytest.fixture(scope="module")
def pydoc():
    documents, vocabulary = load_pydoc_text(vocab_size=500)
    return documents, vocabulary


# ----------------------------------------------------------------------
# The layout against the reference
@pytest.mark.parametrize("max_len", [None, 1, 4, 7, "mean"])
@pytest.mark.parametrize("batch_size", [None, 1, 3, 4])
def test_layout_matches_reference(rng, max_len, batch_size):
    docs = random_documents(rng, 7)
    targets = [d * 10 for d in docs]
    plan = kt.sentence_split(
        docs, sentence_end=END, max_len=max_len, targets=targets, batch_size=batch_size
    )
    sentences = [len(t) for d in docs for _, t in reference_pieces(d, {END}, 10**9)]
    expected_len = {None: max(sentences), "mean": round(np.mean(sentences))}.get(
        max_len, max_len
    )
    x, weight, positions, resets = reference_layout(
        docs, {END}, expected_len, batch_size or len(docs)
    )
    assert plan.timesteps == expected_len
    np.testing.assert_array_equal(plan.x, x)
    np.testing.assert_array_equal(plan.y, x * 10)
    np.testing.assert_array_equal(unit_weights(plan), weight)
    np.testing.assert_array_equal(plan.positions, positions)
    np.testing.assert_array_equal(plan.resets, resets)
    # The batches are the plan's rows, batch by batch.
    for index, (bx, by, bw) in enumerate(plan.batches()):
        rows = slice(index * plan.batch_size, (index + 1) * plan.batch_size)
        np.testing.assert_array_equal(bx, x[rows])
        np.testing.assert_array_equal(unit_weights(plan, bw), weight[rows])


def test_layout_on_pydoc_text_matches_reference(pydoc):
    documents, vocabulary = pydoc
    docs = documents[:12]
    ends = [vocabulary.index(t) for t in ".?!" if t in vocabulary]
    plan = kt.sentence_split(docs, sentence_end=ends, max_len=16, batch_size=5)
    x, weight, positions, resets = reference_layout(docs, set(ends), 16, 5)
    np.testing.assert_array_equal(plan.x, x)
    np.testing.assert_array_equal(plan.positions, positions)
    np.testing.assert_array_equal(plan.resets, resets)


# ----------------------------------------------------------------------
# The invariants, stated directly
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint16])
def test_shapes_and_integer_dtype(rng, dtype):
    docs = random_documents(rng, 5, dtype)
    plan = kt.sentence_split(docs, sentence_end=END, max_len=6, targets=docs, batch_size=2)
    assert plan.x.shape == (plan.n_samples, 6) and plan.x.dtype == dtype
    assert plan.y.shape == (plan.n_samples, 6) and plan.y.dtype == dtype
    assert plan.sample_weight.shape == (plan.n_samples, 6)
    assert plan.sample_weight.dtype == np.float32
    x, y, weight = plan.batch(0)
    assert x.shape == (2, 6) and x.dtype == dtype and y.dtype == dtype
    assert plan.n_features is None
    assert repr(plan).startswith(f"SplitPlan(scheme='sentence_split', x=({plan.n_samples}, 6)")


def test_padding_and_filler_have_weight_zero(rng):
    docs = random_documents(rng, 5)
    plan = kt.sentence_split(docs, sentence_end=END, max_len=5, targets=docs, batch_size=3)
    # Ids are >= 1, so x == 0 is exactly padding and filler.
    np.testing.assert_array_equal(unit_weights(plan), (plan.x != 0).astype(np.float32))
    assert unit_weights(plan).sum() == sum(len(d) for d in docs)
    filler = plan.positions[:, 0] < 0
    assert filler.any() and not plan.x[filler].any()


def test_each_sentence_is_one_sample_ending_with_its_end_id():
    docs = [np.array([2, 3, END, 4, END, 5, 6, 7, END, 8, 9])]
    plan = kt.sentence_split(docs, sentence_end=END)
    assert plan.x.tolist() == [
        [2, 3, END, 0], [4, END, 0, 0], [5, 6, 7, END], [8, 9, 0, 0]
    ]


@pytest.mark.parametrize("max_len", [2, 3, "mean"])
def test_next_batch_row_continues_the_same_document(rng, max_len):
    docs = random_documents(rng, 6)
    plan = kt.sentence_split(docs, sentence_end=END, max_len=max_len, batch_size=3)
    weight = plan.x != 0
    size = plan.batch_size
    for batch in range(1, len(plan)):
        if plan.resets[batch]:
            continue
        now = plan.positions[batch * size : (batch + 1) * size]
        before = plan.positions[(batch - 1) * size : batch * size]
        real_before = weight[(batch - 1) * size : batch * size].sum(axis=1)
        for row in range(size):
            if now[row, 0] >= 0:  # the next piece of the same document
                assert now[row, 0] == before[row, 0]
                assert now[row, 1] == before[row, 1] + real_before[row]


def test_resets_exactly_where_documents_start(rng):
    docs = random_documents(rng, 7)
    plan = kt.sentence_split(docs, sentence_end=END, max_len=4, batch_size=3)
    size = plan.batch_size
    for batch in range(len(plan)):
        rows = plan.positions[batch * size : (batch + 1) * size]
        real = rows[rows[:, 0] >= 0]
        assert plan.resets[batch] == (real[:, 1] == 0).all()
    assert plan.resets.sum() == 3  # groups of 3, 3 and 1 documents
    first_batches = {int(d) for d, s in plan.positions if s == 0}
    assert first_batches == set(range(7))


def test_unsplit_round_trip(rng):
    docs = random_documents(rng, 6, np.int32)
    plan = kt.sentence_split(docs, sentence_end=END, max_len=3, batch_size=4)
    back = plan.unsplit(plan.x)
    assert isinstance(back, list) and len(back) == len(docs)
    for got, doc in zip(back, docs, strict=True):
        np.testing.assert_array_equal(got, doc)


def test_unsplit_drops_padding_of_model_outputs(rng):
    docs = random_documents(rng, 5)
    plan = kt.sentence_split(docs, sentence_end=END, max_len=4, batch_size=2)
    # Per-token outputs [samples, max_len, 2]: (token, token * 2) on real
    # steps, NaN on padding and filler, which must not come back.
    outputs = np.where(
        (plan.x != 0)[..., None], np.stack([plan.x, plan.x * 2], axis=-1), np.nan
    )
    for got, doc in zip(plan.unsplit(outputs), docs, strict=True):
        assert got.shape == (len(doc), 2)
        np.testing.assert_array_equal(got, np.stack([doc, doc * 2], axis=-1))


def test_one_document_as_a_single_array():
    doc = np.array([2, 3, END, 4, 5, 6, END, 7])
    plan = kt.sentence_split(doc, sentence_end=END, targets=doc + 1)
    assert plan.x.tolist() == [[2, 3, END, 0], [4, 5, 6, END], [7, 0, 0, 0]]
    assert plan.y[1].tolist() == [5, 6, 7, END + 1]
    back = plan.unsplit(plan.x)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, doc)
    # A plain list of ids is one document too.
    np.testing.assert_array_equal(
        kt.sentence_split(doc.tolist(), sentence_end=END).x, plan.x
    )


def test_several_end_ids_and_trailing_tail():
    docs = [[2, 3, 7, 4, 8, 5], [9, 9]]
    plan = kt.sentence_split(docs, sentence_end=[7, 8], batch_size=2)
    assert plan.x.tolist() == [[2, 3, 7], [9, 9, 0], [4, 8, 0], [0, 0, 0], [5, 0, 0], [0, 0, 0]]


def test_two_dimensional_targets_keep_their_features(rng):
    docs = random_documents(rng, 3)
    targets = [np.stack([d, -d], axis=1).astype(np.float32) for d in docs]
    plan = kt.sentence_split(docs, sentence_end=END, max_len=5, targets=targets)
    assert plan.y.shape == (plan.n_samples, 5, 2) and plan.y.dtype == np.float32
    np.testing.assert_array_equal(plan.y[..., 0], plan.x)
    np.testing.assert_array_equal(plan.y[..., 1], -plan.x)


def test_validation_split_refuses_and_says_why(rng):
    plan = kt.sentence_split(random_documents(rng, 3), sentence_end=END, max_len=2)
    with pytest.raises(ValueError, match="hold out whole documents"):
        plan.validation_split(0.2)


def test_warns_when_the_end_id_never_occurs():
    with pytest.warns(UserWarning, match="occurs in no document"):
        plan = kt.sentence_split([[2, 3, 4], [5, 6]], sentence_end=99)
    assert plan.x.tolist() == [[2, 3, 4], [5, 6, 0]]


def test_no_warning_for_one_sentence_documents_that_end_properly():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kt.sentence_split([[2, 3, END], [5, END]], sentence_end=END)


# ----------------------------------------------------------------------
# Bad arguments: the message names the argument and what was received
BAD = {
    "not_a_list": (dict(documents={"a": [1]}), TypeError, "`documents` must be a list.*dict"),
    "text": (dict(documents="the cat sat"), TypeError, "Tokenize"),
    "text_items": (dict(documents=["the cat", "sat"]), TypeError, "not text"),
    "empty_list": (dict(documents=[]), ValueError, "no documents"),
    "empty_document": (dict(documents=[[2, 3], []]), ValueError, r"empty document \(document 1\)"),
    "two_d_array": (dict(documents=np.ones((2, 3), int)), ValueError, r"shape \(2, 3\)"),
    "nested": (dict(documents=[[[2, 3]], [2]]), ValueError, r"1-D.*document 0.*shape=\(1, 2\)"),
    "float_ids": (dict(documents=[np.array([2.0, 3.0])]), TypeError, "integer token ids.*float64.*astype"),
    "bool_ids": (dict(documents=[np.array([True])]), TypeError, "dtype=bool"),
    "negative": (dict(documents=[[2, -3]]), ValueError, "non-negative.*-3 at position 1"),
    "zero_id": (dict(documents=[[2, 3], [4, 0, 5]]), ValueError, r"token id 0 \(document 1\) at position 1.*reserved for padding.*ids \+ 1"),
    "end_float": (dict(sentence_end=1.0), TypeError, r"`sentence_end` must be.*sentence_end=1.0"),
    "end_bool": (dict(sentence_end=True), TypeError, "sentence_end=True"),
    "end_str": (dict(sentence_end="."), TypeError, r"sentence_end='\.'"),
    "end_empty": (dict(sentence_end=[]), ValueError, r"at least one id.*sentence_end=\[\]"),
    "end_nested": (dict(sentence_end=[[1, 2]]), TypeError, r"sentence_end=\[\[1, 2\]\]"),
    "end_zero": (dict(sentence_end=[1, 0]), ValueError, r">= 1 \(0 is padding\)"),
    "max_len_zero": (dict(max_len=0), ValueError, "`max_len` must be.*max_len=0"),
    "max_len_float": (dict(max_len=2.5), TypeError, "`max_len` must be.*max_len=2.5"),
    "max_len_word": (dict(max_len="median"), ValueError, "'mean'.*max_len='median'"),
    "batch_size": (dict(batch_size=0), ValueError, "`batch_size`.*batch_size=0"),
    "targets_count": (dict(targets=[[2, 3, 1]]), ValueError, r"one array per document.*- Expected: 2 arrays.*- Received: 1 items"),
    "targets_type": (dict(targets=np.zeros(3)), ValueError, "- Received: type ndarray"),
    "targets_length": (dict(targets=[[2, 3, 1], [4]]), ValueError, r"one entry per token \(document 1\).*Expected: shape \(2,\).*Received: shape=\(1,\)"),
    "targets_text": (dict(targets=[["a"] * 3, ["b"] * 2]), TypeError, "real numbers.*<U1"),
    "targets_nan": (dict(targets=[[2.0, np.nan, 1], [4, 5]]), ValueError, r"NaN.*\(document 0\)"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_arguments_are_named(case):
    kwargs, error, message = BAD[case]
    arguments = {"documents": [[2, 3, 1], [4, 5]], "sentence_end": 1, **kwargs}
    with pytest.raises(error, match=f"(?s){message}"):
        kt.sentence_split(**arguments)


def test_arguments_are_checked_before_any_work():
    # A bad batch_size is reported even though the documents are fine and
    # the (slow for large text) splitting never runs.
    with pytest.raises(TypeError, match="batch_size"):
        kt.sentence_split([[2, 1]], sentence_end=1, batch_size="8")


# ----------------------------------------------------------------------
# The pydoc text helper
def test_pydoc_text_is_word_ids_with_padding_reserved(pydoc):
    documents, vocabulary = pydoc
    assert len(vocabulary) == 500 and vocabulary[:2] == ["<pad>", "<unk>"]
    assert len(set(vocabulary)) == 500
    assert all(d.dtype == np.int32 and d.min() >= 1 and d.max() < 500 for d in documents)
    from pydoc_data.topics import topics

    # Decoding gives back the tokens, with rare words as <unk>.
    name = sorted(topics)[0]
    tokens = tokenize(topics[name])
    decoded = [vocabulary[i] for i in documents[0]]
    assert len(decoded) == len(tokens)
    assert all(d in (t, "<unk>") for d, t in zip(decoded, tokens, strict=True))
    assert decoded.count(".") == tokens.count(".") > 0


def test_pydoc_sentences_round_trip(pydoc):
    documents, vocabulary = pydoc
    plan = kt.sentence_split(
        documents, sentence_end=vocabulary.index("."), max_len="mean", batch_size=16
    )
    assert 5 <= plan.timesteps <= 40  # English sentences, in words
    for got, doc in zip(plan.unsplit(plan.x), documents, strict=True):
        np.testing.assert_array_equal(got, doc)


def test_load_pydoc_text_checks_vocab_size():
    with pytest.raises(ValueError, match="vocab_size=2"):
        load_pydoc_text(vocab_size=2)


# ----------------------------------------------------------------------
# The core generalisation: layouts whose windows vary in length
def test_window_layout_groups_pads_and_fills():
    from keras_tbptt.core.layout import build_layout, build_window_layout

    layout = build_window_layout(
        [0, 1, 2], [[0, 3], [0, 2, 4], [0]], [[3, 1], [2, 2, 1], [2]],
        timesteps=3, batch_size=2,
    )
    assert layout.row_series.tolist() == [0, 1, 2, -1]  # a filler row
    assert layout.row_length.tolist() == [4, 5, 2, 0]
    assert layout.batch_group.tolist() == [0, 0, 0, 1]
    assert layout.batch_window.tolist() == [0, 1, 2, 0]
    rows, windows = np.array([0, 0, 0, 1, 3]), np.array([0, 1, 2, 2, 0])
    assert layout.offset(rows, windows).tolist() == [0, 3, 0, 4, 0]
    assert layout.real_steps(rows, windows).tolist() == [3, 1, 0, 1, 0]
    # Fixed windows answer the same questions from `hop`.
    fixed = build_layout(([0], [0], [10]), timesteps=4, batch_size=1, remainder="pad")
    assert fixed.offset(0, np.arange(3)).tolist() == [0, 4, 8]
    assert fixed.real_steps(0, np.arange(3)).tolist() == [4, 4, 2]
