"""Keras layers of keras_tbptt."""

from keras_tbptt.layers.reset_flags import WithResetFlags, with_reset_flags
from keras_tbptt.layers.tbptt_gru import TBPTTGRU
from keras_tbptt.layers.tbptt_lstm import TBPTTLSTM
from keras_tbptt.layers.tbptt_rnn import TBPTTRNN
from keras_tbptt.layers.tbptt_simple_rnn import TBPTTSimpleRNN
from keras_tbptt.layers.truncation import TruncatedRNN

__all__ = [
    "TBPTTGRU",
    "TBPTTLSTM",
    "TBPTTRNN",
    "TBPTTSimpleRNN",
    "TruncatedRNN",
    "WithResetFlags",
    "with_reset_flags",
]
