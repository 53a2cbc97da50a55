"""Run every tutorial notebook in notebooks/ from top to bottom.

Each notebook executes in a fresh "python3" kernel (the interpreter running
pytest) with the notebooks folder as its working directory; any cell that
raises fails the test. The kernel inherits `KERAS_TBPTT_QUICK=1`, which the
notebooks read to shrink epochs and series so that all of them run in a few
minutes on two cores. The notebooks choose the TensorFlow backend
themselves. Not marked `keras`: they run in the TensorFlow pass only.

The notebooks are stored executed (by docs/execute_notebooks.py: the full
run, or the quick one where the full run is too long, as the page then
says), so that the site shows their outputs and figures; the run here works on a
copy in memory and never rewrites them. The script records the hash of the
code cells in the notebook's metadata: a notebook whose code changed since
it was executed fails `test_notebook_outputs_are_fresh`.

(nbclient is the engine nbmake runs on; this file adds the quick switch and
the freshness check.)
"""

import importlib.util
import re
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
MKDOCS_YML = NOTEBOOK_DIR.parent / "mkdocs.yml"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _execute_script():
    spec = importlib.util.spec_from_file_location(
        "execute_notebooks", NOTEBOOK_DIR.parent / "docs" / "execute_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebooks_are_the_numbered_tutorial_series():
    assert len(NOTEBOOKS) >= 4, f"tutorial notebooks missing from {NOTEBOOK_DIR}"
    for path in NOTEBOOKS:
        assert re.fullmatch(r"0[1-9]_[a-z0-9_]+\.ipynb", path.name), (
            f"{path.name}: tutorials are named NN_topic.ipynb (the docs list them in that order)")
    numbers = [path.name[:2] for path in NOTEBOOKS]
    assert len(set(numbers)) == len(numbers), f"two tutorials share a number: {numbers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_listed_in_the_site_navigation(path):
    assert f"notebooks/{path.name}" in MKDOCS_YML.read_text(), (
        f"{path.name} is not in the nav of mkdocs.yml")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_outputs_are_fresh(path):
    script = _execute_script()
    notebook = nbformat.read(path, as_version=4)
    rerun = f"run `python docs/execute_notebooks.py {path.name[:2]}` (or `make notebooks-execute`)"
    assert script.stored_hash(notebook), f"{path.name} was never executed by the script: {rerun}"
    assert script.is_fresh(notebook), f"{path.name}: its code changed since it was executed: {rerun}"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    not_run = [i for i, cell in enumerate(code) if not cell.execution_count]
    assert not not_run, f"{path.name}: code cells {not_run} have no stored run: {rerun}"
    errors = [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert not errors, f"{path.name}: stored with errors {[e.ename for e in errors]}: {rerun}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_quick_switch_is_hidden_from_the_site(path):
    """The switch lives in its own cell, tagged so that the site drops it."""
    notebook = nbformat.read(path, as_version=4)
    tagged = [cell for cell in notebook.cells
              if "remove_cell" in cell.metadata.get("tags", [])]
    assert any("KERAS_TBPTT_QUICK" in cell.source for cell in tagged), path.name
    untagged = [cell.source for cell in notebook.cells
                if cell.cell_type == "code" and cell not in tagged]
    assert not any("KERAS_TBPTT_QUICK" in source for source in untagged), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("KERAS_TBPTT_QUICK", "1")  # inherited by the kernel
    stored = path.read_bytes()
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on failure
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    assert path.read_bytes() == stored, f"{path.name}: the test run rewrote the stored notebook"
