"""keras_tbptt: truncated backpropagation through time for Keras 3 LSTMs.

The data schemes (`naive_split` and friends) and `SplitPlan` are numpy and
pandas only; the Keras parts (`TBPTTLSTM`, `rebatch`, `callbacks`,
`layers`, `dataset`) are imported on first use, so `import keras_tbptt`
does not start TensorFlow or JAX.

`keras.models.load_model` needs `TBPTTLSTM` registered: it is when Keras
was imported before keras_tbptt, or after any use of `keras_tbptt.TBPTTLSTM`
(or `import keras_tbptt.layers`).
"""

import importlib
import sys

from keras_tbptt.as_is import as_is
from keras_tbptt.decoupled_split import decoupled_split
from keras_tbptt.naive_split import naive_split
from keras_tbptt.one_step import one_step
from keras_tbptt.plan import SplitPlan
from keras_tbptt.plot_layout import plot_layout
from keras_tbptt.random_windows import random_windows
from keras_tbptt.truncate import truncate

__version__ = "0.1.0"

_LAZY = {
    "TBPTTLSTM": ("keras_tbptt.layers", "TBPTTLSTM"),
    "rebatch": ("keras_tbptt.rebatching", "rebatch"),
    "ResetStates": ("keras_tbptt.callbacks", "ResetStates"),
    "callbacks": ("keras_tbptt.callbacks", None),
    "layers": ("keras_tbptt.layers", None),
    "dataset": ("keras_tbptt.dataset", None),
}

__all__ = [
    "SplitPlan",
    "as_is",
    "decoupled_split",
    "naive_split",
    "one_step",
    "plot_layout",
    "random_windows",
    "truncate",
    *_LAZY,
]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_tbptt' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)


def __dir__():
    return sorted(__all__)


if "keras" in sys.modules:
    # Keras is loaded already, so registering TBPTTLSTM (for load_model)
    # costs nothing; otherwise it registers on first use of a Keras part.
    importlib.import_module("keras_tbptt.layers")
