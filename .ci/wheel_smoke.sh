#!/usr/bin/env bash
# Wheel smoke test: what `pip install keras_tbptt[jax]` gives a user.
#
# Builds the wheel into dist/ from a clean copy of the tree (so no stale
# build/ folder leaks into it), installs it with the `jax` extra only into a
# fresh virtual environment, checks that no TensorFlow came along and that
# py.typed and LICENSE were shipped, then trains a stateful TBPTTLSTM for one
# epoch under JAX from outside the repository (so the installed wheel is
# what gets imported). Needs python3 with venv and PyPI; PYTHON overrides
# the interpreter, as in the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
start=$SECONDS

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A clean copy of the sources: the package, its metadata and what they name.
mkdir "$work/src"
tar --exclude='__pycache__' --exclude='*.pyc' -cf - \
    setup.cfg pyproject.toml README.md LICENSE keras_tbptt | tar -xf - -C "$work/src"

"$PYTHON" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --upgrade pip

mkdir -p dist
rm -f dist/keras_tbptt-*.whl
"$py" -m pip wheel --quiet --no-deps -w dist "$work/src"
wheels=(dist/keras_tbptt-*.whl)
if [ "${#wheels[@]}" -ne 1 ]; then
    echo "wheel_smoke: expected one wheel in dist/, found: ${wheels[*]}" >&2
    exit 1
fi
wheel=${wheels[0]}
echo "wheel_smoke: built $wheel"

"$py" -m pip install --quiet "$wheel[jax]"

echo "wheel_smoke: pip list | grep -i -E '^(tensorflow|torch|jax|keras)':"
"$py" -m pip list 2>/dev/null | grep -i -E '^(tensorflow|torch|jax|keras)' || true

cd "$work"  # away from the repository: import the installed wheel
"$py" - <<'EOF'
import importlib.metadata as metadata

installed = sorted(d.metadata["Name"] for d in metadata.distributions())
tensorflow = [n for n in installed if n.lower().startswith("tensorflow")]
assert not tensorflow, f"`pip install keras_tbptt[jax]` installed {tensorflow}"
assert not [n for n in installed if n.lower() == "torch"], "torch was installed"
files = {str(f) for f in metadata.files("keras_tbptt")}
assert "keras_tbptt/py.typed" in files, "py.typed is not in the wheel"
assert any(f.endswith(".dist-info/licenses/LICENSE") or f.endswith(".dist-info/LICENSE")
           for f in files), "LICENSE is not in the wheel's metadata"
requires = metadata.requires("keras_tbptt")
assert all("extra ==" in r for r in requires if r.lower().startswith(("tensorflow", "jax", "torch"))), requires
print("wheel_smoke: no tensorflow or torch installed; py.typed and LICENSE shipped")
EOF

KERAS_BACKEND=jax "$py" - <<'EOF'
import math

import numpy as np

import keras_tbptt as kt

assert "site-packages" in kt.__file__, kt.__file__  # the wheel, not the sources

import keras

assert keras.backend.backend() == "jax", keras.backend.backend()
keras.utils.set_random_seed(0)

steps = np.arange(1_201)
noise = 0.05 * np.random.default_rng(0).normal(size=(4, steps.size))
series = (np.sin(steps / 20.0) + noise)[..., None].astype("float32")
plan = kt.naive_split(series[:, :-1], 100, series[:, 1:])  # next-step prediction
assert (plan.batch_size, plan.timesteps) == (4, 100), plan

model = keras.Sequential([
    keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 1)),
    kt.TBPTTLSTM(8, stateful=True, return_sequences=True),
    keras.layers.Dense(1),
])
model.compile(loss="mse", optimizer=keras.optimizers.Adam(0.01))
before = [w.copy() for w in model.get_weights()]
loss_before = model.evaluate(plan.dataset(), callbacks=plan.callbacks(), verbose=0)
history = model.fit(plan.dataset(), shuffle=False, callbacks=plan.callbacks(),
                    epochs=1, verbose=0)
loss_after = model.evaluate(plan.dataset(), callbacks=plan.callbacks(), verbose=0)

fit_loss = history.history["loss"][0]
changed = any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
print(f"wheel_smoke: keras_tbptt {kt.__version__} under {keras.backend.backend()}: "
      f"loss {loss_before:.4f} -> {loss_after:.4f} (fit {fit_loss:.4f}), weights changed: {changed}")
assert all(math.isfinite(v) for v in (loss_before, fit_loss, loss_after))
assert changed, "one epoch of fit left every weight as it was"
assert loss_after < loss_before, (loss_before, loss_after)
EOF

echo "wheel_smoke: ok in $((SECONDS - start)) s"
