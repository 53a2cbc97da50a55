"""`fit(plan.dataset(), shuffle=True)` on a stateful plan: refused before
Keras builds a pipeline or trains a batch, and the process exits.

The refusal used to be raised by a Python generator inside TensorFlow's
input pipeline thread, after a batch could train, and the interpreter then
hung at exit in about 1 run in 8. Each run here is a fresh process (the hang
was at interpreter exit), under TensorFlow (the backend whose input
pipeline hung; the other backends read no pipeline thread).
"""

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

RUNS = 20
SCRIPT = textwrap.dedent(
    """
    import numpy as np, keras, keras_tbptt as kt

    class CountBatches(keras.callbacks.Callback):
        batches = 0
        def on_train_batch_begin(self, batch, logs=None):
            CountBatches.batches += 1

    series = np.random.default_rng(0).normal(size=(4, 40, 1)).astype("float32")
    plan = kt.naive_split(series, 10, series, batch_size=2)
    model = keras.Sequential([
        keras.Input(batch_shape=(2, 10, 1)),
        kt.TBPTTLSTM(3, stateful=True, return_sequences=True),
    ])
    model.compile(loss="mse", optimizer="sgd")
    try:
        model.fit(plan.dataset(), shuffle=True, epochs=3, verbose=0,
                  callbacks=[*plan.callbacks(), CountBatches()])
    except ValueError as error:
        assert "Received: shuffle=True" in str(error), error
        print("REFUSED", CountBatches.batches)
    # A stateless plan's shuffled epochs still run (a permuted pipeline).
    stateless = kt.as_is(series, series, batch_size=2)
    free = keras.Sequential([keras.Input((40, 1)), keras.layers.LSTM(2, return_sequences=True)])
    free.compile(loss="mse")
    history = free.fit(stateless.dataset(), shuffle=True, epochs=2, verbose=0)
    print("STATELESS", len(history.history["loss"]))
    """
)


def _run(_):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", PYTHONFAULTHANDLER="1")
    try:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=180, env=env
        )
    except subprocess.TimeoutExpired as expired:
        return None, str(expired.stdout), str(expired.stderr)
    return done.returncode, done.stdout, done.stderr


def test_shuffle_refusal_trains_nothing_and_exits():
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_run, range(RUNS)))
    hung = [err[-2000:] for code, _, err in results if code is None]
    assert not hung, f"{len(hung)} of {RUNS} runs did not exit within 180 s:\n{hung[0]}"
    for code, out, err in results:
        assert code == 0, err[-3000:]
        lines = out.split()
        assert lines[lines.index("REFUSED") + 1] == "0", out  # no batch trained
        assert lines[lines.index("STATELESS") + 1] == "2", out
