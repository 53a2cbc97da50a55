"""`stateful_layers`: the stateful recurrent layers of a model."""

import keras

from keras_tbptt.layers.truncation import TruncatedRNN


def stateful_layers(model):
    """The stateful recurrent layers of `model`, nested ones included.

    Finds layers inside nested models, `Bidirectional` and `TimeDistributed`
    wrappers.
    """
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.RNN) and layer.stateful
    ]


def keras_own_layer_names(layers):
    """The names of the layers in `layers` that are Keras' own RNNs rather
    than keras_tbptt's (which track their states, reset rows in the graph
    and train under every backend)."""
    return [layer.name for layer in layers if not isinstance(layer, TruncatedRNN)]
