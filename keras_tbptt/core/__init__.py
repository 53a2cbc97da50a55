"""The numpy/pandas core: inputs, the stateful layout and `SplitPlan`.

No Keras import anywhere below this folder.
"""
