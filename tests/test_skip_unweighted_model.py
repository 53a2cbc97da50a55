"""`skip_unweighted`: a forward-only train step on batches with no weight.

The reference is the plain model compiled with `SkipUnweightedBatches`
(the optimizer that does not step on zero gradients): the wrapped model
must train exactly as it does (weights, optimizer iterations, per-epoch
loss and metrics), on the callbacks and reset-flags paths, with
`steps_per_execution` 1 and 3, while running no backward pass on the
unweighted batches (counted by a layer whose gradient counts its calls).
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import keras_tbptt as kt  # noqa: E402
from conftest import executable_steps, to_numpy  # noqa: E402

pytestmark = pytest.mark.keras

PATHS = ["callbacks", "flags", "flags_outer"]  # flags_outer: with_reset_flags(skip_unweighted(m))


class CountBackward(keras.layers.Layer):
    """Identity whose backward pass adds 1 to `count` each time it runs,
    inside the compiled step (a TensorFlow variable, a JAX host callback,
    a torch autograd function)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = []  # one entry per backward pass (JAX, torch)
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            self.counter = tf.Variable(0, trainable=False)

            @tf.custom_gradient
            def identity(x):
                def grad(dy):
                    with tf.control_dependencies([self.counter.assign_add(1)]):
                        return tf.identity(dy)

                return tf.identity(x), grad

        elif backend == "jax":
            import jax

            @jax.custom_vjp
            def identity(x):
                return x

            def forward(x):
                return x, None

            def backward(_, g):
                jax.debug.callback(lambda: self.calls.append(1))
                return (g,)

            identity.defvjp(forward, backward)
        else:
            import torch

            calls = self.calls

            class Identity(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    return x.clone()

                @staticmethod
                def backward(ctx, g):
                    calls.append(1)
                    return g

            identity = Identity.apply
        self.identity = identity

    def call(self, x):
        return self.identity(x)

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, x.dtype)

    @property
    def count(self):
        if keras.backend.backend() == "tensorflow":
            return int(self.counter.numpy())
        if keras.backend.backend() == "jax":
            import jax

            jax.effects_barrier()
        return len(self.calls)


class AddLoss(keras.layers.Layer):
    def call(self, x):
        self.add_loss(0.01 * keras.ops.mean(keras.ops.square(x)))
        return x


def plan_of_8_chunks():
    """4 series of 80 steps, one label each, chunks of 10, batches of 2:
    16 batches, of which 2 (each group's last chunk) are weighted."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 80, 2)).astype("float32")
    plan = kt.naive_split(x, 10, np.array([0.0, 1.0, 1.0, 0.0], "float32"), batch_size=2)
    return plan


def lstm_model(plan, path="callbacks", skip=True, counter=False, regularizer=None):
    keras.utils.set_random_seed(0)
    inputs = keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 2))
    h = kt.TBPTTLSTM(3, stateful=True, **plan.layer_kwargs)(inputs)
    if counter:
        h = CountBackward()(h)
    if regularizer == "add_loss":
        h = AddLoss()(h)
    dense_kwargs = {"kernel": {"kernel_regularizer": "l2"},
                    "activity": {"activity_regularizer": "l2"}}.get(regularizer, {})
    outputs = keras.layers.Dense(1, activation="sigmoid", **dense_kwargs)(h)
    model = keras.Model(inputs, outputs)
    if path == "flags":
        model = kt.with_reset_flags(model)
    if skip:
        model = kt.skip_unweighted(model)
    if path == "flags_outer":
        model = kt.with_reset_flags(model)
    return model


def compile_model(model, optimizer, steps_per_execution=1):
    model.compile(optimizer=optimizer, loss="binary_crossentropy",
                  weighted_metrics=["binary_accuracy"],
                  steps_per_execution=steps_per_execution)
    return model


def fit(model, plan, path, epochs=1):
    flags = path != "callbacks"
    return model.fit(plan.dataset(reset_flags=flags), callbacks=[] if flags else plan.callbacks(),
                     epochs=epochs, shuffle=False, verbose=0)


def lstm_states(model):
    lstm = next(layer for layer in model._flatten_layers() if isinstance(layer, kt.TBPTTLSTM))
    return lstm, [to_numpy(s).copy() for s in lstm.states]


def snapshot(model):
    return [to_numpy(v).copy() for v in model.trainable_weights + model.optimizer.variables]


@pytest.mark.parametrize("path", PATHS)
def test_an_unweighted_batch_moves_only_the_states(path):
    """Weights and every Adam variable bit-identical after a forward-only
    batch; the states as `predict_on_batch` carries them from the same
    states; the next weighted batch steps (and plain arrays always step)."""
    plan = plan_of_8_chunks()
    model = compile_model(lstm_model(plan, path), keras.optimizers.Adam(0.05))
    assert isinstance(model, kt.SkipUnweightedModel)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 10, 2)).astype("float32")
    y = np.array([1.0, 0.0], "float32")
    inputs = x if path == "callbacks" else [x, np.zeros(2, "float32")]
    model.train_on_batch(inputs, y, sample_weight=np.ones(2, "float32"))
    model.train_on_batch(inputs, y)  # no sample weight: the full step
    assert int(to_numpy(model.optimizer.iterations)) == 2
    before = snapshot(model)
    lstm, start = lstm_states(model)
    logs = model.train_on_batch(inputs, y, sample_weight=np.zeros(2, "float32"), return_dict=True)
    after = snapshot(model)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    _, carried = lstm_states(model)
    for state, value in zip(lstm.states, start):
        state.assign(value)
    model.predict_on_batch(inputs)
    _, reference = lstm_states(model)
    assert not np.allclose(carried[0], start[0])  # the states did move
    for a, b in zip(carried, reference):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert logs["loss"] == 0.0
    model.train_on_batch(inputs, y, sample_weight=np.ones(2, "float32"))
    assert int(to_numpy(model.optimizer.iterations)) == 3


def several_steps(path):
    """Batches per execution beyond 1: 3, or 4 with the callbacks (a
    reset every 8 batches needs a divisor of 8); 1 under torch."""
    return executable_steps(4 if path == "callbacks" else 3)


@pytest.mark.parametrize("path", ["callbacks", "flags"])
@pytest.mark.parametrize("several", [False, True], ids=["steps1", "steps_several"])
def test_fit_equals_the_skipping_optimizer(path, several):
    """2 epochs: same weights, iterations, per-epoch loss and accuracy as
    the plain model compiled with SkipUnweightedBatches(Adam)."""
    if several and executable_steps(3) == 1:
        pytest.skip("Keras runs one batch per execution under torch")
    steps_per_execution = several_steps(path) if several else 1
    plan = plan_of_8_chunks()
    fast = compile_model(lstm_model(plan, path), keras.optimizers.Adam(0.05), steps_per_execution)
    reference = compile_model(lstm_model(plan, path, skip=False),
                              kt.SkipUnweightedBatches(keras.optimizers.Adam(0.05)),
                              steps_per_execution)
    fast_history = fit(fast, plan, path, epochs=2).history
    reference_history = fit(reference, plan, path, epochs=2).history
    assert int(to_numpy(fast.optimizer.iterations)) == 4  # 2 weighted batches per epoch
    assert int(to_numpy(reference.optimizer.iterations)) == 4
    for a, b in zip(fast.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert fast_history.keys() == reference_history.keys()
    for key, values in reference_history.items():
        np.testing.assert_allclose(fast_history[key], values, rtol=1e-6)


@pytest.mark.parametrize("skip, backward_passes", [(True, 2), (False, 16)],
                         ids=["skip_unweighted", "skipping_optimizer"])
def test_the_unweighted_batches_run_no_backward_pass(skip, backward_passes):
    """16 batches, 2 weighted: 2 backward passes with the forward-only
    step, 16 with the reference (so the counter counts)."""
    plan = plan_of_8_chunks()
    optimizer = keras.optimizers.Adam(0.05) if skip else kt.SkipUnweightedBatches(
        keras.optimizers.Adam(0.05))
    model = compile_model(lstm_model(plan, skip=skip, counter=True), optimizer,
                          several_steps("callbacks"))
    fit(model, plan, "callbacks")
    counter = next(layer for layer in model.layers if isinstance(layer, CountBackward))
    assert counter.count == backward_passes
    assert int(to_numpy(model.optimizer.iterations)) == 2


@pytest.mark.parametrize("regularizer, iterations", [
    (None, 2), ("kernel", 16), ("activity", 16), ("add_loss", 16)])
def test_a_model_with_its_own_losses_takes_the_full_step(regularizer, iterations):
    """A regularizer or add_loss has a gradient on unweighted batches too:
    then plain Adam steps on every batch (16), as it would unwrapped."""
    plan = plan_of_8_chunks()
    model = compile_model(lstm_model(plan, regularizer=regularizer), keras.optimizers.Adam(0.05))
    fit(model, plan, "callbacks")
    assert int(to_numpy(model.optimizer.iterations)) == iterations


def test_saves_and_loads_and_keeps_skipping(tmp_path):
    """With reset flags: the nested WithResetFlags model is saved too."""
    path = "flags"
    plan = plan_of_8_chunks()
    model = compile_model(lstm_model(plan, path), keras.optimizers.Adam(0.05))
    fit(model, plan, path)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(loaded, kt.SkipUnweightedModel)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    fit(loaded, plan, path)
    assert int(to_numpy(loaded.optimizer.iterations)) == 4  # 2 saved + 2 weighted batches


def test_wrapping_twice_returns_the_model():
    model = lstm_model(plan_of_8_chunks())
    assert kt.skip_unweighted(model) is model


class Subclassed(keras.Model):
    def call(self, x):
        return x


@pytest.mark.parametrize("model, error, match", [
    ("a model", TypeError, "`model` must be a keras.Model"),
    (keras.layers.Dense(2), TypeError, "Received: model of type Dense"),
    (Subclassed(), ValueError, "must be a built model with inputs and outputs"),
    (keras.Sequential([keras.layers.Dense(2)]), ValueError, "Received: model 'sequential"),
], ids=["string", "layer", "subclassed", "unbuilt_sequential"])
def test_refuses_what_it_cannot_wrap(model, error, match):
    with pytest.raises(error, match=match):
        kt.skip_unweighted(model)
