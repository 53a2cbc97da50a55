"""Keras layers of keras_tbptt."""

from keras_tbptt.layers.reset_flags import WithResetFlags, with_reset_flags
from keras_tbptt.layers.tbptt_lstm import TBPTTLSTM

__all__ = ["TBPTTLSTM", "WithResetFlags", "with_reset_flags"]
