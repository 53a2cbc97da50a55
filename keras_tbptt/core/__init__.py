"""The numpy/pandas core: checking and normalising inputs, the stateful
layout and `SplitPlan` (see docs/architecture.md for the modules).

No Keras import anywhere below this folder.
"""
