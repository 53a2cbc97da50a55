"""Keras layers of keras_tbptt."""

from keras_tbptt.layers.tbptt_lstm import TBPTTLSTM

__all__ = ["TBPTTLSTM"]
