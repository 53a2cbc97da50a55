"""Lazy Keras imports and load_model registration, whatever the import order."""

import importlib
import importlib.abc
import importlib.util
import sys

# Modules whose Keras objects `load_model` must find registered.
_REGISTERED = ("keras_tbptt.layers", "keras_tbptt.training.skip_unweighted",
               "keras_tbptt.training.skip_unweighted_model",
               "keras_tbptt.serving.streaming")


def module_getattr(package, lazy, public):
    """`__getattr__` and `__dir__` for a package whose `lazy` names load on use."""

    def __getattr__(name):
        if name not in lazy:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, attribute = lazy[name]
        module = importlib.import_module(module_name)
        return module if attribute is None else getattr(module, attribute)

    def __dir__():
        return sorted(public)

    return __getattr__, __dir__


def _import_registered():
    for module in _REGISTERED:
        importlib.import_module(module)


class _AfterKerasImport(importlib.abc.MetaPathFinder):
    """Registers the layers (`TBPTTLSTM`, `TBPTTGRU`, `TBPTTSimpleRNN`,
    `TBPTTRNN`, `WithResetFlags`, the streamer's reset layer),
    `SkipUnweightedBatches` and `SkipUnweightedModel` right after `keras`
    finishes importing.

    `keras.models.load_model` finds custom layers only in its registry and
    imports modules of Keras' own packages alone, so a model saved with a
    `TBPTTLSTM` loads only if the layer was registered first. Importing the
    layer eagerly would start a backend on `import keras_tbptt`; this hook
    waits for the user's own `import keras` instead.
    """

    _finding = False  # True while asking the other finders (no recursion)

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras" or self._finding:
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec("keras")
        finally:
            self._finding = False
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            # Stays until Keras is really imported: a mere find_spec("keras")
            # (a library checking availability) must not use it up.
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            _import_registered()

        spec.loader.exec_module = exec_then_register
        return spec


def register_layers_when_keras_loads():
    if "keras" in sys.modules:
        _import_registered()
    elif not any(isinstance(f, _AfterKerasImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasImport())
