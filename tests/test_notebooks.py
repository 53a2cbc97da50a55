"""Run every tutorial notebook in notebooks/ from top to bottom.

Each notebook executes in a fresh "python3" kernel (the interpreter running
pytest) with the notebooks folder as its working directory; any cell that
raises fails the test. The kernel inherits `KERAS_TBPTT_QUICK=1`, which the
notebooks read to shrink epochs and series so that all of them run in a few
minutes on two cores. The notebooks choose the TensorFlow backend
themselves. Not marked `keras`: they run in the TensorFlow pass only.

(nbclient is the engine nbmake runs on; this file adds the quick switch and
the check that notebooks are stored without outputs.)
"""

import re
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
MKDOCS_YML = NOTEBOOK_DIR.parent / "mkdocs.yml"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


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
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    stored = [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count)
    ]
    assert not stored, (
        f"{path.name}: cells {stored} were saved with outputs; clear them "
        "(e.g. jupyter nbconvert --clear-output --inplace) to keep diffs small"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("KERAS_TBPTT_QUICK", "1")  # inherited by the kernel
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
