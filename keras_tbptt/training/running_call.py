"""What the running Keras `fit`/`evaluate`/`predict` call was given.

Keras hands a data adapter none of the call's arguments (the model, the
callbacks, `shuffle`, `class_weight`, `validation_data`), yet the plan's
checks must see them before Keras reads a batch. This module is the one
place that reads them, from the Python stack: private Keras behaviour,
pinned by `tests/test_keras_private_api.py` (see docs/architecture.md).
"""

import sys

import keras

_KERAS_METHODS = ("fit", "evaluate", "predict")


def keras_call():
    """`(method, frame locals)` of the innermost running `Model.fit`,
    `evaluate` or `predict` of this thread, or `None`.

    Lets the plan's dataset see the model, the callbacks and the other
    arguments of the call that wraps it, before Keras reads a batch. Only
    the documented argument names (`self`, `x`, `callbacks`,
    `validation_data`, `steps_per_epoch`, ...) are read. Returns `None` when
    the data is not read from inside such a call (for example by TensorFlow's
    input pipeline thread), and callers then skip their checks.
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name in _KERAS_METHODS and frame.f_globals.get(
            "__name__", ""
        ).startswith("keras."):
            local = frame.f_locals
            if isinstance(local.get("self"), keras.Model):
                return frame.f_code.co_name, local
        frame = frame.f_back
    return None


def _epoch_iterator_frame(dataset, depth=6):
    """The frame (a few calls up) of the Keras epoch iterator reading `dataset`."""
    frame = sys._getframe(2)
    for _ in range(depth):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        try:
            if owner is not dataset and getattr(owner, "data_adapter", None) is dataset:
                return frame
        except Exception:  # an object whose attributes cannot be read: not Keras'
            pass
        frame = frame.f_back
    return None


def reading_epoch_iterator(dataset):
    """The Keras `EpochIterator` asking `dataset` (a data adapter) for
    batches, or `None`."""
    frame = _epoch_iterator_frame(dataset)
    return None if frame is None else frame.f_locals["self"]


def epoch_iterator_arguments(dataset):
    """`(iterator, arguments)` while a Keras `EpochIterator.__init__` wraps
    `dataset` (it reads `num_batches` right after), else `None`.

    `arguments` are the `__init__`'s: `shuffle`, `class_weight`, ...
    """
    frame = _epoch_iterator_frame(dataset)
    if frame is None or "shuffle" not in frame.f_locals:
        return None
    local = dict(frame.f_locals)
    return local["self"], local
