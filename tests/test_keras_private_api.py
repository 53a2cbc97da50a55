"""The private Keras API keras_tbptt relies on, one test each.

Each test fails when a Keras release changes what the package reads, so the
change shows here first rather than as a check that silently stops firing.
The list, with where each is used, is on the architecture page
(docs/architecture.md); keep the two in step.
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import keras_tbptt as kt
from keras_tbptt.training.running_call import epoch_iterator_arguments, keras_call

pytestmark = pytest.mark.keras


def stateful_model(batch_size=2, timesteps=5):
    model = keras.Sequential([
        keras.Input(batch_shape=(batch_size, timesteps, 1)),
        kt.TBPTTLSTM(3, stateful=True, return_sequences=True),
    ])
    model.compile(loss="mse")
    return model


class RecordCall(keras.callbacks.Callback):
    """What `keras_call()` sees from inside each Keras method."""

    def __init__(self):
        super().__init__()
        self.seen = {}

    def _record(self, logs=None):
        method, local = keras_call()
        self.seen[method] = (local["self"], set(local))

    on_train_begin = on_test_begin = on_predict_begin = _record


def test_keras_call_reads_the_running_method_and_its_arguments():
    # training/running_call.py: the plan's dataset and ResetStates read
    # these names of the running fit/evaluate/predict.
    model = stateful_model()
    data = np.zeros((2, 5, 1), "float32")
    recorder = RecordCall()
    model.fit(data, data, batch_size=2, shuffle=False, verbose=0, callbacks=[recorder])
    model.evaluate(data, data, batch_size=2, verbose=0, callbacks=[recorder])
    model.predict(data, batch_size=2, verbose=0, callbacks=[recorder])
    assert set(recorder.seen) == {"fit", "evaluate", "predict"}
    assert all(owner is model for owner, _ in recorder.seen.values())
    assert {"self", "x", "callbacks", "validation_data", "steps_per_epoch",
            "validation_split", "batch_size"} <= recorder.seen["fit"][1]
    assert {"self", "x", "callbacks", "steps", "batch_size"} <= recorder.seen["evaluate"][1]
    assert {"self", "x", "callbacks", "steps"} <= recorder.seen["predict"][1]
    assert keras_call() is None  # outside any Keras call


def test_epoch_iterator_arguments_reach_the_plan_dataset():
    # training/running_call.py: Keras' EpochIterator.__init__ reads
    # `num_batches` of a DataAdapter it was given, with `shuffle` and
    # `class_weight` among its arguments.
    from keras.src.trainers.epoch_iterator import EpochIterator

    data = kt.as_is(np.zeros((4, 5, 1)), batch_size=2).dataset()
    seen = []

    class Spy(type(data)):
        @property
        def num_batches(self):
            seen.append(epoch_iterator_arguments(self))
            return len(self)

    spy = Spy(data.plan)
    iterator = EpochIterator(x=spy, shuffle=True, class_weight={0: 2.0})
    assert seen and seen[0][0] is iterator
    assert seen[0][1]["shuffle"] is True and seen[0][1]["class_weight"] == {0: 2.0}


def test_keras_takes_the_dataset_as_its_own_adapter():
    # training/dataset.py: the DataAdapter base class, and Keras using an
    # instance as is (else it would silently go back to PyDatasetAdapter).
    from keras.src.trainers.data_adapters import data_adapter_utils, get_data_adapter
    from keras.src.trainers.data_adapters.data_adapter import DataAdapter

    data = kt.one_step(np.zeros((2, 10, 1)), np.zeros((2, 10, 1))).dataset()
    assert isinstance(data, DataAdapter)
    assert get_data_adapter(data, shuffle=False) is data
    assert callable(data_adapter_utils.get_torch_dataloader)


def test_bidirectional_asks_its_layers_before_fusing():
    # layers/truncation.py wraps Bidirectional._can_attempt_fused_lstm and
    # _can_attempt_fused_gru.
    for name in ("_can_attempt_fused_lstm", "_can_attempt_fused_gru"):
        method = getattr(keras.layers.Bidirectional, name)
        assert getattr(method, "_asks_layers", False), name


def test_attributes_set_in_a_do_not_track_scope_stay_plain():
    # layers/truncation.py sets a layer's (nested) `states` list in
    # DotNotTrackScope, as keras.layers.RNN does: a tracked list would reach
    # JAX's scan as a type JAX does not know.
    from keras.src.utils.tracking import DotNotTrackScope, TrackedList

    layer = keras.layers.Layer()
    with DotNotTrackScope():
        layer.plain = [[1], [2]]
    layer.tracked = [[1], [2]]
    assert not isinstance(layer.plain[0], TrackedList)
    assert isinstance(layer.tracked[0], TrackedList)


def test_stateful_rnn_states_its_batch_size():
    # training/checks.py reads RNN._expected_batch_size.
    layer = stateful_model(batch_size=4).layers[0]
    assert int(layer._expected_batch_size) == 4


def test_flatten_layers_finds_nested_stateful_layers():
    # layers/stateful.py, training/rebatch.py, serving: Layer._flatten_layers.
    inner = stateful_model()
    outer = keras.Sequential([keras.Input(batch_shape=(2, 5, 1)), inner])
    found = [layer for layer in outer._flatten_layers(include_self=False, recursive=True)
             if isinstance(layer, kt.TBPTTLSTM)]
    assert found == [inner.layers[0]]


def test_symbolic_outputs_carry_keras_masks():
    # training/checks.py (masked-output weights) and serving/streaming.py
    # read `_keras_mask` of a functional model's symbolic tensors.
    x = keras.Input((5, 1))
    masked = keras.layers.Masking()(x)
    assert getattr(masked, "_keras_mask", None) is not None
    assert getattr(x, "_keras_mask", None) is None


def test_functional_models_run_through_their_graph():
    # serving/streaming.py: Functional._run_through_graph(inputs, operation_fn).
    x = keras.Input((3,))
    model = keras.Model(x, keras.layers.Dense(2)(x))
    data = np.ones((1, 3), "float32")
    calls = []

    def operation_fn(op):
        calls.append(op.name)
        return op

    out = model._run_through_graph([data], operation_fn=operation_fn)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), model.predict(data, verbose=0),
                               rtol=1e-6)
    assert calls == [model.layers[-1].name]


def test_variables_are_laid_out_by_their_layout():
    # layers/truncation.py shards stateful states by setting `_layout`.
    variable = keras.Variable(np.zeros((2, 3), "float32"))
    assert hasattr(variable, "_layout")


def test_distributions_say_whether_they_span_processes():
    # training/dataset.py copies Keras' multi-worker refusal, which reads
    # `_is_multi_process` and `auto_shard_dataset`.
    if keras.backend.backend() != "jax":
        pytest.skip("keras.distribution runs on JAX only")
    distribution = keras.distribution.DataParallel()
    assert distribution._is_multi_process is False
    assert distribution.auto_shard_dataset is True


def test_the_loss_tracker_and_the_jax_metrics_update_are_what_fit_reports():
    # training/skip_unweighted_model.py: the forward-only step updates
    # Trainer._loss_tracker (the "loss" of fit's logs) and, under JAX,
    # JAXTrainer._update_metrics_variables(metrics_variables, unscaled_loss,
    # x, y, y_pred, sample_weight) -> (logs, metrics_variables); it unscales
    # the loss with keras.src.losses.loss.unscale_loss_for_distribution.
    from keras.src.losses.loss import unscale_loss_for_distribution

    model = stateful_model()
    data = np.ones((2, 5, 1), "float32")
    logs = model.train_on_batch(data, data, return_dict=True)
    assert isinstance(model._loss_tracker, keras.metrics.Mean)
    assert float(model._loss_tracker.result()) == pytest.approx(logs["loss"])
    assert float(unscale_loss_for_distribution(keras.ops.convert_to_tensor(2.0))) == 2.0
    if keras.backend.backend() == "jax":
        y_pred = model.predict_on_batch(data)
        variables = [v.value for v in model.metrics_variables]
        logs, new = model._update_metrics_variables(variables, 3.0, data, data, y_pred, None)
        assert set(logs) == {"loss"} and len(new) == len(variables)


def test_tensorflow_says_when_a_graph_compiles_to_xla():
    # layers/fused_kernels.py: BlockLSTM has no XLA kernel, so a graph that
    # compiles to XLA (jit_compile=True) takes Keras' loop.
    if keras.backend.backend() != "tensorflow":
        pytest.skip("a TensorFlow graph")
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    seen = []

    def probe(x):
        seen.append(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))
        return x

    tf.function(probe, jit_compile=True)(tf.ones(1))
    tf.function(probe)(tf.ones(1))
    assert seen == [True, False]


def test_torch_has_functional_rnn_kernels():
    # layers/fused_kernels.py: torch._VF.lstm and torch._VF.gru, with the
    # arguments Keras' torch backend passes them on CUDA.
    if keras.backend.backend() != "torch":
        pytest.skip("torch's kernels")
    import torch

    x, h = torch.ones(2, 3, 1), torch.zeros(1, 2, 4)
    lstm = [torch.ones(16, 1), torch.ones(16, 4), torch.zeros(16), torch.zeros(16)]
    gru = [torch.ones(12, 1), torch.ones(12, 4), torch.zeros(12), torch.zeros(12)]
    outputs, h_n, c_n = torch._VF.lstm(x, (h, h), lstm, True, 1, 0.0, False, False, True)
    assert tuple(outputs.shape) == (2, 3, 4) and tuple(c_n.shape) == (1, 2, 4)
    outputs, h_n = torch._VF.gru(x, h, gru, True, 1, 0.0, False, False, True)
    assert tuple(outputs.shape) == (2, 3, 4) and tuple(h_n.shape) == (1, 2, 4)
