"""Serving a trained stateful model: streaming inference with explicit states.

- `streaming`: a stateless copy of the model whose recurrent states are
  inputs and outputs (exportable to SavedModel, ONNX and LiteRT).
- `StreamStates`: the states of many named streams, kept in numpy.
"""

from keras_tbptt.serving.streaming import streaming
from keras_tbptt.serving.streams import StreamStates

__all__ = ["StreamStates", "streaming"]
