"""Data parallel stateful training on 4 simulated devices (JAX).

Under `keras.distribution.DataParallel` the states of a stateful `TBPTTLSTM`
(and `TBPTTGRU`, `TBPTTRNN` of stacked cells) are sharded along the batch
axis like the data (each device holds `batch_size / 4` rows), and `fit`, `evaluate` and chunked stateful `predict`
give what one device gives: with the reset callbacks and with per-row reset
flags on a packed panel (lanes change series mid-epoch, inside a shard).

JAX reads `XLA_FLAGS` once, when it loads, so the runs happen in a fresh
process with 4 simulated CPU devices and `KERAS_BACKEND=jax`, whatever the
backend of this process. Not marked `keras`: it runs once, in the full
(TensorFlow) pass of `make test`.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICES = 4
BATCH = 8

SCRIPT = r'''
import json

import jax
import keras
import numpy as np

import keras_tbptt as kt

rng = np.random.default_rng(0)
# Equal series for the callback path: 2 groups of 8 rows, reset between them.
equal = rng.normal(size=(16, 41, 1)).astype("float32")
callback_plan = kt.naive_split(equal[:, :-1], 10, equal[:, 1:], batch_size=8)
# Ragged series packed into 8 lanes for the reset-flag path: rows reset
# mid-epoch, each at its own batch.
ragged = [rng.normal(size=(n, 1)).astype("float32") for n in rng.integers(15, 61, size=14)]
flag_plan = kt.naive_split(
    [s[:-1] for s in ragged], 10, [s[1:] for s in ragged],
    batch_size=8, remainder="pad", pack=True,
)
# A partial last call of 3 batches, and rows resetting after the first batch.
assert len(flag_plan) % 3 and flag_plan.reset_flags[8:].any()
PLANS = {"callbacks": callback_plan, "reset_flags": flag_plan}


LAYERS = {
    "lstm": lambda **kwargs: kt.TBPTTLSTM(4, **kwargs),
    "gru": lambda **kwargs: kt.TBPTTGRU(4, **kwargs),
    # nested states: one per cell, (h,) and (h, c)
    "stacked": lambda **kwargs: kt.TBPTTRNN(
        [keras.layers.GRUCell(4), keras.layers.LSTMCell(4)], **kwargs),
}


def build(plan, batch_size=None, layer="lstm"):
    keras.utils.set_random_seed(0)  # same initial weights everywhere
    return keras.Sequential([
        keras.Input(batch_shape=(batch_size or plan.batch_size, plan.timesteps, 1)),
        LAYERS[layer](stateful=True, return_sequences=True, **plan.layer_kwargs),
        keras.layers.Dense(1),
    ])


def sharding(layer):
    return {
        s.name: {
            "spec": [str(axis) for axis in getattr(s.value.sharding, "spec", ())],
            "shards": sorted(tuple(x.data.shape) for x in s.value.addressable_shards),
        }
        for s in keras.tree.flatten(layer.states)
    }


def run(path, kind="lstm"):
    plan = PLANS[path]
    inner = build(plan, layer=kind)
    layer = inner.layers[0]
    shardings = {"built": sharding(layer)}
    if path == "callbacks":
        model, data, callbacks = inner, plan.dataset(), plan.callbacks()
    else:
        model, data, callbacks = kt.with_reset_flags(inner), plan.dataset(reset_flags=True), []
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="mse",
        # In-graph resets allow several batches per call: the states carry
        # between them inside one compiled step.
        steps_per_execution=1 if path == "callbacks" else 3,
    )
    history = model.fit(data, shuffle=False, epochs=2, callbacks=callbacks, verbose=0)
    shardings["fit"] = sharding(layer)
    evaluated = model.evaluate(data, callbacks=callbacks, verbose=0)
    predictions = model.predict(data, callbacks=callbacks, verbose=0)
    shardings["predict"] = sharding(layer)
    carried = keras.ops.convert_to_numpy(keras.tree.flatten(layer.states)[0].value)
    layer.reset_state()
    shardings["reset_state"] = sharding(layer)
    return {
        "losses": history.history["loss"],
        "evaluate": float(evaluated),
        "predictions": np.asarray(predictions).tolist(),
        "carried_nonzero": bool(np.abs(carried).max() > 0),
        "shardings": shardings,
    }


results = {"devices": len(jax.devices())}
results["one_device"] = {path: run(path) for path in PLANS}
OTHER_LAYERS = [kind for kind in LAYERS if kind != "lstm"]
results["one_device_layers"] = {kind: run("reset_flags", kind) for kind in OTHER_LAYERS}

keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
results["data_parallel"] = {path: run(path) for path in PLANS}
results["data_parallel_layers"] = {kind: run("reset_flags", kind) for kind in OTHER_LAYERS}
try:
    build(callback_plan, batch_size=6)
    results["uneven_error"] = None
except ValueError as error:
    results["uneven_error"] = str(error)

# ModelParallel on a 2 x 2 mesh: unmapped states are sharded along 'batch'
# (2 rows a device), a state the LayoutMap maps keeps the user's layout.
mesh = keras.distribution.DeviceMesh((2, 2), ["batch", "model"], jax.devices())
layout_map = keras.distribution.LayoutMap(mesh)
layout_map[".*tbpttlstm.*recurrent_kernel"] = (None, "model")
layout_map[".*state_c"] = (None, "model")
keras.distribution.set_distribution(
    keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")
)
model = build(callback_plan)
results["model_parallel"] = {
    "shardings": sharding(model.layers[0]),
    "predictions": np.asarray(
        model.predict(callback_plan.dataset(), callbacks=callback_plan.callbacks(), verbose=0)
    ).tolist(),
}
keras.distribution.set_distribution(None)
model = build(callback_plan)
results["model_parallel_reference"] = np.asarray(
    model.predict(callback_plan.dataset(), callbacks=callback_plan.callbacks(), verbose=0)
).tolist()
print("RESULTS", json.dumps(results))
'''


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    script = tmp_path_factory.mktemp("multi_device") / "run.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}",
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # The package of this checkout, not another installed copy.
        "PYTHONPATH": os.pathsep.join(
            [ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    done = subprocess.run(
        [sys.executable, str(script)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULTS ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-5000:]
    return json.loads(lines[-1][len("RESULTS "):])


def test_four_simulated_devices(results):
    assert results["devices"] == DEVICES


@pytest.mark.parametrize("path", ["callbacks", "reset_flags"])
@pytest.mark.parametrize("stage", ["built", "fit", "predict", "reset_state"])
def test_states_are_sharded_along_the_batch(results, path, stage):
    for state in ("state_h", "state_c"):
        sharded = results["data_parallel"][path]["shardings"][stage][state]
        assert sharded["spec"] == ["batch", "None"]
        assert sharded["shards"] == [[BATCH // DEVICES, 4]] * DEVICES
        single = results["one_device"][path]["shardings"][stage][state]
        assert single["shards"] == [[BATCH, 4]]


@pytest.mark.parametrize("path", ["callbacks", "reset_flags"])
def test_same_losses_and_predictions_as_one_device(results, path):
    one, four = results["one_device"][path], results["data_parallel"][path]
    # Training moves the weights, and the states carry: a wrong shard would show.
    assert one["losses"][0] != pytest.approx(one["losses"][1], rel=1e-3)
    assert one["carried_nonzero"] and four["carried_nonzero"]
    np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(four["evaluate"], one["evaluate"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(four["predictions"], one["predictions"], atol=1e-5)


def test_batch_size_must_divide_across_devices(results):
    message = results["uneven_error"]
    assert message is not None, "a batch of 6 on 4 devices was accepted"
    assert "batch_size=6" in message and "multiple of 4" in message


def test_model_parallel_shards_unmapped_states_and_keeps_mapped_ones(results):
    shardings = results["model_parallel"]["shardings"]
    assert shardings["state_h"]["spec"] == ["batch", "None"]
    assert shardings["state_h"]["shards"] == [[BATCH // 2, 4]] * DEVICES
    assert shardings["state_c"]["spec"] == ["None", "model"]
    assert shardings["state_c"]["shards"] == [[BATCH, 2]] * DEVICES
    np.testing.assert_allclose(
        results["model_parallel"]["predictions"],
        results["model_parallel_reference"],
        atol=1e-5,
    )


STATES = {"gru": ["state_h"], "stacked": ["state_0", "state_1", "state_2"]}


@pytest.mark.parametrize("kind", list(STATES))
def test_every_layer_shards_its_states_and_matches_one_device(results, kind):
    """TBPTTGRU and TBPTTRNN of stacked cells (nested states) on the reset
    flag path: the same sharding and results as the LSTM."""
    one, four = results["one_device_layers"][kind], results["data_parallel_layers"][kind]
    for stage in ("built", "fit", "predict", "reset_state"):
        shardings = four["shardings"][stage]
        assert sorted(shardings) == STATES[kind]
        for sharded in shardings.values():
            assert sharded["spec"] == ["batch", "None"]
            assert sharded["shards"] == [[BATCH // DEVICES, 4]] * DEVICES
    assert one["carried_nonzero"] and four["carried_nonzero"]
    np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(four["evaluate"], one["evaluate"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(four["predictions"], one["predictions"], atol=1e-5)
