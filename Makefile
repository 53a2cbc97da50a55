# keras_tbptt: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-tensorflow test-jax test-torch notebooks benchmarks clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[jax,dev,docs]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m keras_tbptt.apps.demo

# The whole suite under TensorFlow, then the Keras-facing tests under JAX
# (Keras' own stateful RNNs lose their states there: prove ours do not).
test: test-tensorflow test-jax

test-tensorflow: $(STAMP)
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest -q

test-jax: $(STAMP)
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q -m keras tests

# Optional: the Keras tests under torch (CPU build; not part of `make test`).
test-torch: $(STAMP)
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	KERAS_BACKEND=torch $(BIN)/python -m pytest -q -m keras tests

notebooks: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_notebooks.py

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/bench_data_path.py
	$(BIN)/python benchmarks/bench_tbptt_lstm.py

clean:
	rm -rf $(VENV) build *.egg-info
