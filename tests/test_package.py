"""Package rules: the data side imports no Keras; load_model finds TBPTTLSTM."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "keras_tbptt"
DATA_SIDE = ["core", "schemes", "timesteps/suggest.py"]


def _imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("room", DATA_SIDE)
def test_data_side_never_imports_keras(room):
    files = [PACKAGE / room] if room.endswith(".py") else sorted((PACKAGE / room).glob("*.py"))
    assert files and all(f.exists() for f in files), files
    offending = {
        f"{f.relative_to(PACKAGE)}: {module}"
        for f in files
        for module in _imported_modules(f)
        if module.split(".")[0] in ("keras", "tensorflow", "jax", "torch")
        # plan.py hands over to the Keras side lazily, inside dataset()/callbacks()
        or module.startswith(("keras_tbptt.layers", "keras_tbptt.training"))
        and f.name != "plan.py"
    }
    assert not offending, sorted(offending)

SAVE = """
import keras, numpy as np, keras_tbptt as kt
model = keras.Sequential([keras.Input((5, 2)), kt.TBPTTLSTM(3, truncate_gradient=2)])
model.compile(optimizer=kt.SkipUnweightedBatches(keras.optimizers.Adam()), loss="mse")
model.save({path!r})
np.save({path!r} + ".npy", model.predict(np.ones((1, 5, 2), "float32"), verbose=0))
"""

LOAD = {
    "keras_tbptt_first": "import keras_tbptt\nimport keras",
    "keras_first": "import keras\nimport keras_tbptt",
    "keras_only": "import keras",
}


@pytest.mark.keras
@pytest.mark.parametrize("imports", list(LOAD.values()), ids=list(LOAD))
def test_load_model_in_a_fresh_process(tmp_path, imports):
    path = str(tmp_path / "model.keras")
    run = lambda code: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    saved = run(SAVE.format(path=path))
    assert saved.returncode == 0, saved.stderr[-2000:]
    load = imports + f"""
import numpy as np
model = keras.models.load_model({path!r})
layer = model.layers[0]
print(type(layer).__name__, layer.truncate_gradient)
out = model.predict(np.ones((1, 5, 2), "float32"), verbose=0)
print(np.allclose(out, np.load({path!r} + ".npy")))
print(type(model.optimizer).__name__)
"""
    loaded = run(load)
    if imports == LOAD["keras_only"]:
        # Without keras_tbptt nothing can register the class: Keras must say so.
        assert loaded.returncode != 0 and "TBPTTLSTM" in loaded.stderr
    else:
        assert loaded.returncode == 0, loaded.stderr[-2000:]
        assert loaded.stdout.split() == ["TBPTTLSTM", "2", "True", "SkipUnweightedBatches"]


@pytest.mark.keras
def test_checking_for_keras_does_not_use_up_the_registration():
    code = (
        "import importlib.util, keras_tbptt\n"
        "assert importlib.util.find_spec('keras') is not None\n"
        "import keras\n"
        "print(keras.saving.get_registered_object('keras_tbptt>TBPTTLSTM').__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["TBPTTLSTM"]
