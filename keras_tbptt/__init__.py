"""keras_tbptt: truncated backpropagation through time for Keras 3 RNNs.

The package is grouped by role:

- `core/`: numpy/pandas only: input validation (`inputs`), the stateful
  batch layout (`layout`), `SplitPlan` (`plan`), `plot_layout` and
  `load_pydoc_text` (a text corpus for examples, from Python's help).
- `schemes/`: one module per splitting scheme, each returning a `SplitPlan`.
- `timesteps/`: choosing `timesteps`: `suggest_timesteps` (ACF/PACF),
  `grid_search` and `GradientHorizon` (what `gradient_horizon` measured).
- `layers/` and `training/`: the Keras side: `TBPTTLSTM`, `TBPTTGRU`,
  `TBPTTSimpleRNN` and `TBPTTRNN` (one shared truncation), the reset
  callbacks, the plan's dataset, `skip_unweighted`,
  `SkipUnweightedBatches`, `rebatch`, `forecast`, `gradient_horizon` and
  `GradientHorizonLog`.
- `serving/`: `streaming` (states as explicit inputs and outputs, for
  serving and export) and `StreamStates`.
- `apps/`: the `keras-tbptt` command line and `make demo`.

The data side imports no Keras: the Keras names below load on first use,
so `import keras_tbptt` does not start TensorFlow or JAX. The layers are
registered for `keras.models.load_model` as soon as Keras is imported,
whichever of the two packages is imported first.
"""

from keras_tbptt import _lazy
from keras_tbptt.core.plan import SplitPlan
from keras_tbptt.core.plot_layout import plot_layout
from keras_tbptt.core.text import load_pydoc_text
from keras_tbptt.schemes.as_is import as_is
from keras_tbptt.schemes.decoupled_split import decoupled_split
from keras_tbptt.schemes.domain_split import domain_split
from keras_tbptt.schemes.naive_split import naive_split
from keras_tbptt.schemes.one_step import one_step
from keras_tbptt.schemes.random_windows import random_windows
from keras_tbptt.schemes.sentence_split import sentence_split
from keras_tbptt.schemes.truncate import truncate
from keras_tbptt.timesteps.grid_result import GridSearchResult
from keras_tbptt.timesteps.grid_search import grid_search
from keras_tbptt.timesteps.horizon import GradientHorizon
from keras_tbptt.timesteps.suggest import TimestepsSuggestion, suggest_timesteps

__version__ = "0.2.0"

# name -> (module, attribute): imported on first access (they need Keras).
_LAZY = {
    "TBPTTLSTM": ("keras_tbptt.layers.tbptt_lstm", "TBPTTLSTM"),
    "TBPTTGRU": ("keras_tbptt.layers.tbptt_gru", "TBPTTGRU"),
    "TBPTTSimpleRNN": ("keras_tbptt.layers.tbptt_simple_rnn", "TBPTTSimpleRNN"),
    "TBPTTRNN": ("keras_tbptt.layers.tbptt_rnn", "TBPTTRNN"),
    "ResetStates": ("keras_tbptt.training.callbacks", "ResetStates"),
    "PlanDataset": ("keras_tbptt.training.dataset", "PlanDataset"),
    "rebatch": ("keras_tbptt.training.rebatch", "rebatch"),
    "forecast": ("keras_tbptt.training.forecast", "forecast"),
    "with_reset_flags": ("keras_tbptt.layers.reset_flags", "with_reset_flags"),
    "SkipUnweightedBatches": (
        "keras_tbptt.training.skip_unweighted",
        "SkipUnweightedBatches",
    ),
    "gradient_horizon": ("keras_tbptt.training.gradient_horizon", "gradient_horizon"),
    "GradientHorizonLog": ("keras_tbptt.training.horizon_log", "GradientHorizonLog"),
    "skip_unweighted": ("keras_tbptt.training.skip_unweighted_model", "skip_unweighted"),
    "SkipUnweightedModel": (
        "keras_tbptt.training.skip_unweighted_model",
        "SkipUnweightedModel",
    ),
    "layers": ("keras_tbptt.layers", None),
    "streaming": ("keras_tbptt.serving.streaming", "streaming"),
    "StreamStates": ("keras_tbptt.serving.streams", "StreamStates"),
}

__all__ = [
    "SplitPlan",
    "as_is",
    "decoupled_split",
    "domain_split",
    "load_pydoc_text",
    "naive_split",
    "one_step",
    "plot_layout",
    "random_windows",
    "sentence_split",
    "truncate",
    "GridSearchResult",
    "grid_search",
    "GradientHorizon",
    "TimestepsSuggestion",
    "suggest_timesteps",
    *_LAZY,
]

__getattr__, __dir__ = _lazy.module_getattr(__name__, _LAZY, __all__)
_lazy.register_layers_when_keras_loads()
