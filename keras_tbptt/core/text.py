"""English text that ships with Python, as token ids (stdlib and numpy only).

`load_pydoc_text` turns the help topics of Python's own documentation
(`pydoc_data.topics`, about 465,000 characters in 79 topics) into word-id
documents for `keras_tbptt.sentence_split`: a real text corpus for
examples, tests and the demo that needs no download.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from keras_tbptt.core.validation import check_int

# Words (letters, digits, underscores) and the punctuation that ends a
# sentence when whitespace or the end of the text follows ("os.path" and
# "3.14" are not sentence ends).
_TOKEN = re.compile(r"[a-z0-9_]+|[.!?](?=\s|$)")
PAD, UNKNOWN = "<pad>", "<unk>"


def tokenize(text):
    """Lower-case word tokens and sentence-end marks of `text`.

    Example:

    >>> from keras_tbptt.core.text import tokenize
    >>> tokenize("See os.path. Is it 3.14? Yes!")
    ['see', 'os', 'path', '.', 'is', 'it', '3', '14', '?', 'yes', '!']
    """
    return _TOKEN.findall(text.lower())


def load_pydoc_text(vocab_size: int = 2000) -> tuple[list[np.ndarray], list[str]]:
    """Python's help topics as word-id documents, one per topic.

    A real English corpus that needs no download: the help topics of
    Python's own documentation (`pydoc_data.topics`, shipped with every
    Python, about 465,000 characters in 79 topics), lower-cased and cut into
    word tokens and sentence-end marks (`.`, `!`, `?` followed by a space or
    the end; `os.path` and `3.14` are not sentence ends), ready for
    `keras_tbptt.sentence_split` and an `Embedding(mask_zero=True)`.

    The `vocab_size - 2` most frequent tokens get ids from 2 up (by
    decreasing frequency, ties alphabetical); every other token is the
    unknown id 1; id 0 is reserved for padding and never occurs. Topics come
    in alphabetical order. The result depends only on the Python version's
    help text (it differs slightly between Python releases).

    Args:
        vocab_size: ids in the vocabulary, padding and unknown included
            (an integer >= 3; default 2000).

    Returns:
        `(documents, vocabulary)`: a list of 1-D int32 arrays (one per
        topic) and the list of tokens, `vocabulary[i]` being the token of id
        `i` (`vocabulary[0] == "<pad>"`, `vocabulary[1] == "<unk>"`). The id
        that ends a sentence is `vocabulary.index(".")`.

    Raises:
        TypeError: `vocab_size` is not an integer.
        ValueError: `vocab_size` is below 3.

    Example: the corpus, and one sentence per sample with `sentence_split`.

    >>> import keras_tbptt
    >>> documents, vocabulary = keras_tbptt.load_pydoc_text(vocab_size=2000)
    >>> len(documents), len(vocabulary), vocabulary[:3]
    (79, 2000, ['<pad>', '<unk>', 'the'])
    >>> documents[0].dtype, int(min(d.min() for d in documents))
    (dtype('int32'), 1)
    >>> plan = keras_tbptt.sentence_split(
    ...     documents, sentence_end=vocabulary.index("."), max_len="mean")
    >>> plan.x.dtype, plan.stateful
    (dtype('int32'), True)
    """
    vocab_size = check_int(vocab_size, "vocab_size", minimum=3)
    from pydoc_data.topics import topics

    texts = [tokenize(topics[name]) for name in sorted(topics)]
    counts = Counter(token for tokens in texts for token in tokens)
    ranked = sorted(counts, key=lambda token: (-counts[token], token))
    vocabulary = [PAD, UNKNOWN, *ranked[: vocab_size - 2]]
    ids = {token: i for i, token in enumerate(vocabulary)}
    documents = [
        np.array([ids.get(token, 1) for token in tokens], dtype=np.int32)
        for tokens in texts
        if tokens
    ]
    return documents, vocabulary
