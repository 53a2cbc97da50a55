"""The Keras side of training: reset callbacks, the plan's dataset, rebatching."""
