"""A stateful `Embedding(mask_zero=True)` -> `TBPTTLSTM` over a sentence plan.

Padding (id 0) is masked, so padded steps and all-padding filler rows leave
the carried state unchanged: predicting sentence by sentence equals one pass
of a plain LSTM over each whole, unpadded document. Runs under every backend.
`truncate_gradient` stays None here (see the layer's mask tests for it).
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import keras_tbptt as kt  # noqa: E402
from conftest import full_pass, to_numpy  # noqa: E402
from keras_tbptt.core.text import load_pydoc_text  # noqa: E402

pytestmark = pytest.mark.keras
END, VOCAB, DIM, UNITS = 1, 10, 3, 5
CONFIG = {"units": UNITS, "return_sequences": True}


def sentence_model(plan, vocab=VOCAB, dim=DIM, units=UNITS, head=None):
    layers = [
        keras.Input(batch_shape=(plan.batch_size, plan.timesteps), dtype="int32"),
        keras.layers.Embedding(vocab, dim, mask_zero=True),
        kt.TBPTTLSTM(units, stateful=True, return_sequences=True),
    ]
    return keras.Sequential(layers + ([head] if head else []))


def strong_weights(model):
    """Embedding and LSTM weights with a long memory (scaled up)."""
    embedding, lstm = model.layers[0], model.layers[1]
    lstm.set_weights([w * 3 for w in lstm.get_weights()[:3]] + lstm.get_weights()[3:])
    return embedding.get_weights()[0], lstm.get_weights()[:3]


@pytest.mark.parametrize("max_len", [None, 3, "mean"])
def test_predict_over_sentences_equals_full_pass_over_documents(rng, max_len):
    keras.utils.set_random_seed(0)
    docs = []
    for length in (23, 9, 17, 30, 4):
        ids = rng.integers(2, VOCAB, size=length)
        ids[rng.random(length) < 0.25] = END
        docs.append(ids)
    plan = kt.sentence_split(docs, sentence_end=END, max_len=max_len, batch_size=2)
    assert (plan.x == 0).any() and (plan.positions[:, 0] < 0).any()  # padding and filler
    model = sentence_model(plan)
    table, lstm_weights = strong_weights(model)
    outputs = model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    expected = full_pass(CONFIG, lstm_weights, [table[d] for d in docs])
    for got, want in zip(plan.unsplit(outputs), expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_padding_leaves_the_state_unchanged():
    keras.utils.set_random_seed(1)
    sentence = np.array([[4, 7, 2, END]])
    padded = np.concatenate([sentence, np.zeros((1, 5), int)], axis=1)
    model = keras.Sequential([
        keras.Input(batch_shape=(1, None), dtype="int32"),
        keras.layers.Embedding(VOCAB, DIM, mask_zero=True),
        kt.TBPTTLSTM(UNITS, stateful=True, return_sequences=True),
    ])
    lstm = model.layers[1]
    strong_weights(model)
    runs = {
        "unpadded": [sentence],
        "padded": [padded],
        "filler": [sentence, np.zeros((1, 6), int)],  # an all-padding row next
    }
    states = {}
    for name, inputs in runs.items():
        lstm.reset_state()
        for x in inputs:
            model.predict(x, verbose=0)
        states[name] = [to_numpy(s) for s in lstm.states]
    assert np.abs(states["unpadded"][0]).max() > 1e-3  # the state moved
    for name in ("padded", "filler"):
        for got, want in zip(states[name], states["unpadded"], strict=True):
            np.testing.assert_allclose(got, want, atol=1e-6)


def test_next_word_training_on_pydoc_text_lowers_the_loss():
    keras.utils.set_random_seed(2)
    documents, vocabulary = load_pydoc_text(vocab_size=300)
    # Eight topics of similar length (about 300-600 words): little filler.
    docs = [d for d in documents if 300 <= len(d) <= 600][:8]
    assert len(docs) == 8
    plan = kt.sentence_split(
        [d[:-1] for d in docs],
        sentence_end=vocabulary.index("."),
        targets=[d[1:] for d in docs],
        max_len=16,
        batch_size=8,
    )
    model = sentence_model(plan, vocab=300, dim=16, units=32,
                           head=keras.layers.Dense(300))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(
        plan.dataset(), epochs=3, shuffle=False, callbacks=plan.callbacks(), verbose=0
    )
    losses = history.history["loss"]
    # Uniform guessing costs log(300) = 5.7 nats; the model learns the
    # frequent words first.
    assert losses[0] < np.log(300) and losses[-1] < losses[0] - 0.3, losses
    predictions = model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    per_document = plan.unsplit(predictions)
    assert [p.shape for p in per_document] == [(len(d) - 1, 300) for d in docs]
