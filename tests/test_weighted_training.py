"""Training on plans whose weights fall unevenly on the batches.

Per-sequence targets weight only each series' last chunk; padding, filler
rows and sentence plans leave some steps or whole batches unweighted. Two
things must hold under every backend:

- what `fit` and `evaluate` report is the weighted mean over the epoch's
  weighted elements (sum of weighted losses / sum of weights), checked
  against the loss computed by hand from `predict`;
- with `SkipUnweightedBatches`, a batch whose weights are all 0 leaves the
  weights and every optimizer variable bit-identical (callbacks and reset
  flags, `steps_per_execution` 1 and 4), and each weighted batch steps.
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import keras_tbptt as kt  # noqa: E402
from conftest import executable_steps, to_numpy  # noqa: E402

pytestmark = pytest.mark.keras


def sequence_model(plan, features, units=3, flags=False, optimizer=None, **compile_kwargs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(batch_shape=(plan.batch_size, plan.timesteps, features)),
        kt.TBPTTLSTM(units, stateful=True, **plan.layer_kwargs),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    if flags:
        model = kt.with_reset_flags(model)
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(0.01),
        loss="binary_crossentropy",
        weighted_metrics=["binary_accuracy"],
        **compile_kwargs,
    )
    return model


def per_sequence_plan(n_series=4, length=120, timesteps=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_series, length, 2)).astype("float32")
    labels = (rng.random(n_series) > 0.5).astype("float32")
    return kt.naive_split(x, timesteps, labels), labels


def run(model, plan, method, flags, **kwargs):
    data = plan.dataset(reset_flags=flags)
    callbacks = [] if flags else plan.callbacks()
    return getattr(model, method)(data, callbacks=callbacks, verbose=0, **kwargs)


def bce(labels, probabilities):
    p = np.clip(np.asarray(probabilities, np.float64).ravel(), 1e-7, 1 - 1e-7)
    return float(np.mean(-(labels * np.log(p) + (1 - labels) * np.log(1 - p))))


@pytest.mark.parametrize("flags", [False, True], ids=["callbacks", "reset_flags"])
def test_per_sequence_loss_is_the_loss_of_the_labels(flags):
    """The issue's case: 12 chunks per series, one labelled: evaluate used
    to report a twelfth of the loss."""
    plan, labels = per_sequence_plan()
    model = sequence_model(plan, 2, flags=flags)
    logs = run(model, plan, "evaluate", flags, return_dict=True)
    probabilities = plan.unsplit(run(model, plan, "predict", flags))
    assert logs["loss"] == pytest.approx(bce(labels, probabilities), rel=1e-5)
    accuracy = np.mean((np.ravel(probabilities) > 0.5) == labels)
    assert logs["binary_accuracy"] == pytest.approx(accuracy)


def test_fit_reports_the_epoch_loss_of_the_labels():
    """The figure of each epoch of fit() (and val_loss) is the labelled
    chunks' mean loss, as evaluate() gives with the weights of that epoch."""
    plan, labels = per_sequence_plan()
    model = sequence_model(plan, 2, optimizer=keras.optimizers.SGD(0.0))
    history = run(model, plan, "fit", False, epochs=2, shuffle=False,
                  validation_data=plan.dataset())
    expected = bce(labels, plan.unsplit(run(model, plan, "predict", False)))
    for name in ("loss", "val_loss"):
        assert history.history[name] == pytest.approx([expected] * 2, rel=1e-5)


def test_per_step_loss_with_padding_and_filler(rng):
    """Ragged series, padded last chunks and filler rows: the loss is the
    mean over real steps only."""
    series = [rng.normal(size=(n, 1)).astype("float32") for n in (53, 97, 31)]
    targets = [(s > 0).astype("float32") for s in series]
    plan = kt.naive_split(series, 10, targets, remainder="pad", batch_size=2)
    assert plan.fill_ratio < 0.8
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(batch_shape=(2, 10, 1)),
        kt.TBPTTLSTM(3, stateful=True, return_sequences=True),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(loss="binary_crossentropy")
    loss = model.evaluate(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
    outputs = plan.unsplit(model.predict(plan.dataset(), callbacks=plan.callbacks(), verbose=0))
    expected = bce(np.concatenate(targets).ravel(), np.concatenate(outputs).ravel())
    assert loss == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("flags", [False, True], ids=["callbacks", "reset_flags"])
@pytest.mark.parametrize("mask_zero", [False, True], ids=["unmasked", "masked"])
def test_sentence_plan_loss_is_per_token(mask_zero, flags):
    """With a masked output Keras divides each batch by its unmasked steps:
    the dataset's weights account for it, so the figure is per token too."""
    docs = [[5, 6, 7, 1, 8, 1, 9, 4], [3, 4, 1, 2, 2, 2, 2, 2, 2, 1, 5], [7, 1, 3]]
    plan = kt.sentence_split([d[:-1] for d in docs], sentence_end=1, max_len=4,
                             targets=[d[1:] for d in docs], batch_size=2)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(batch_shape=(2, plan.timesteps), dtype="int32"),
        keras.layers.Embedding(10, 4, mask_zero=mask_zero),
        kt.TBPTTLSTM(5, stateful=True, return_sequences=True),
        keras.layers.Dense(10),
    ])
    if flags:
        model = kt.with_reset_flags(model)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = run(model, plan, "evaluate", flags)
    logits = run(model, plan, "predict", flags)
    logits = logits - logits.max(axis=-1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    y, real = plan.y, plan.sample_weight > 0
    per_token = -np.take_along_axis(log_p, y[..., None].astype(int), axis=-1)[..., 0]
    assert loss == pytest.approx(per_token[real].mean(), rel=1e-5)


class StateRecorder(keras.callbacks.Callback):
    """Weights and optimizer variables at every callback step of fit()."""

    def on_train_batch_begin(self, batch, logs=None):
        self.snapshots.setdefault(batch, self._state())

    def on_train_batch_end(self, batch, logs=None):
        self.after[batch] = self._state()

    def on_train_begin(self, logs=None):
        self.snapshots, self.after = {}, {}

    def _state(self):
        model = self.model  # under JAX this syncs the training state
        return [to_numpy(v).copy() for v in model.trainable_weights + model.optimizer.variables]


@pytest.mark.parametrize("flags", [False, True], ids=["callbacks", "reset_flags"])
@pytest.mark.parametrize("steps_per_execution", sorted({1, executable_steps(4)}))
def test_unweighted_batches_leave_weights_and_adam_untouched(flags, steps_per_execution):
    """8 chunks per series: with steps_per_execution=4, batches 0-3 and 8-11
    are all unweighted, 4-7 and 12-15 hold a weighted batch."""
    x = np.random.default_rng(3).normal(size=(4, 80, 2)).astype("float32")
    plan = kt.naive_split(x, 10, np.array([0.0, 1.0, 1.0, 0.0]), batch_size=2)
    weighted = plan.sample_weight.reshape(len(plan), -1).sum(axis=1) > 0
    assert weighted.tolist() == ([False] * 7 + [True]) * 2
    optimizer = kt.SkipUnweightedBatches(keras.optimizers.Adam(0.05))
    model = sequence_model(plan, 2, flags=flags, optimizer=optimizer,
                           steps_per_execution=steps_per_execution)
    recorder = StateRecorder()
    data = plan.dataset(reset_flags=flags)
    callbacks = [recorder] + ([] if flags else plan.callbacks())
    model.fit(data, callbacks=callbacks, epochs=1, shuffle=False, verbose=0)
    spans = {}  # callback step -> the batches it covered
    for end in sorted(recorder.after):
        spans[end] = range(end - steps_per_execution + 1, end + 1)
    assert len(spans) == len(plan) // steps_per_execution
    for end, batches in spans.items():
        begin = batches[0]
        before, after = recorder.snapshots[begin], recorder.after[end]
        same = all(np.array_equal(a, b) for a, b in zip(before, after))
        assert same == (not weighted[list(batches)].any()), (end, same)
    assert int(to_numpy(optimizer.iterations)) == 2  # one update per group


def test_unwrapped_optimizer_steps_on_unweighted_batches():
    """The reference the wrapper fixes: plain Adam moves the weights on a
    batch that carries no weight (its momentum)."""
    plan = kt.naive_split(np.random.default_rng(3).normal(size=(2, 40, 2)).astype("float32"),
                          10, np.array([0.0, 1.0]), batch_size=2)
    model = sequence_model(plan, 2)
    recorder = StateRecorder()
    with pytest.warns(UserWarning, match="SkipUnweightedBatches"):
        model.fit(plan.dataset(), callbacks=[recorder] + plan.callbacks(), epochs=2,
                  shuffle=False, verbose=0)
    # Epoch 2, batch 0 (no weight) follows epoch 1's update: Adam moves on.
    moved = [not np.array_equal(a, b) for a, b in zip(recorder.snapshots[0], recorder.after[0])]
    assert any(moved)


def test_skipped_training_matches_training_on_the_weighted_batches_only():
    """Each group's update is exactly the update of its weighted batch: the
    wrapped run equals a run of plain Adam fed, per group, the labelled
    chunk after a forward-only pass over the leading chunks."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 40, 2)).astype("float32")
    labels = np.array([1.0, 0.0, 0.0, 1.0], "float32")
    plan = kt.naive_split(x, 10, labels, batch_size=2)
    wrapped = sequence_model(plan, 2, optimizer=kt.SkipUnweightedBatches(keras.optimizers.Adam(0.05)))
    wrapped.fit(plan.dataset(), callbacks=plan.callbacks(), epochs=2, shuffle=False, verbose=0)
    reference = sequence_model(plan, 2, optimizer=keras.optimizers.Adam(0.05))
    lstm = reference.layers[0]
    for _ in range(2):
        for group in range(2):
            lstm.reset_state()
            rows = slice(2 * group, 2 * group + 2)
            for chunk in range(3):  # forward only: carries the state
                reference.predict_on_batch(x[rows, 10 * chunk : 10 * chunk + 10])
            # The plan's weights on a labelled chunk (plan.weight_scale).
            weight = np.full(2, plan.weight_scale, "float32")
            reference.train_on_batch(x[rows, 30:], labels[rows], sample_weight=weight)
    for a, b in zip(wrapped.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_wrapper_saves_and_loads(tmp_path):
    plan, _ = per_sequence_plan()
    optimizer = kt.SkipUnweightedBatches(keras.optimizers.Adam(0.02), name="skip")
    model = sequence_model(plan, 2, optimizer=optimizer)
    run(model, plan, "fit", False, epochs=1, shuffle=False)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer, kt.SkipUnweightedBatches)
    assert isinstance(loaded.optimizer.inner_optimizer, keras.optimizers.Adam)
    assert float(to_numpy(loaded.optimizer.learning_rate)) == pytest.approx(0.02)
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_mean_with_sample_weight_reduction_is_flagged():
    """That reduction averages per batch: with uneven weights the epoch
    figure is wrong, so fit() says so and names the fix."""
    plan, _ = per_sequence_plan()
    model = sequence_model(plan, 2)
    model.compile(
        optimizer=kt.SkipUnweightedBatches(keras.optimizers.Adam()),
        loss=keras.losses.BinaryCrossentropy(reduction="mean_with_sample_weight"),
    )
    with pytest.warns(UserWarning, match="mean_with_sample_weight"):
        run(model, plan, "evaluate", False)


def test_wrapper_refuses_what_is_not_an_optimizer():
    with pytest.raises(TypeError, match="`optimizer` must be a keras.optimizers.Optimizer"):
        kt.SkipUnweightedBatches("adam")
