"""`stateful_layers`: the stateful recurrent layers of a model."""

import keras


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
