"""The tutorial notebooks of notebooks/: stored from the run their prose
describes, checking their own claims, and still running.

The notebooks are stored executed by docs/execute_notebooks.py, always from
their full run (each is designed to show its whole lesson in minutes on two
cores), so that the site shows the outputs and figures the prose talks
about. Their lessons are `assert` cells the reader sees; the numbers their
Markdown quotes must stand in their code or stored outputs. The script
records the hash of the code cells in the notebook's metadata: a notebook
whose code changed since it was executed fails
`test_notebook_outputs_are_fresh`.

`test_notebook_executes` runs a reduced copy of each notebook in a fresh
"python3" kernel (the interpreter running pytest) with the notebooks folder
as its working directory; any cell that raises fails the test. The kernel
inherits `KERAS_TBPTT_QUICK=1`, which the notebooks read (only as
`small if QUICK else full`) to shrink epochs and series. Cells tagged
`full_run_only` hold asserts on what only the full run shows; the reduced
copy skips them (the stored full run has run them all). The notebooks
choose the TensorFlow backend themselves. Not marked `keras`: they run in
the TensorFlow pass only. The run works on a copy in memory and never
rewrites the stored notebooks.

(nbclient is the engine nbmake runs on; this file adds the quick switch and
the freshness check.)
"""

import ast
import base64
import importlib.util
import re
import struct
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
MKDOCS_YML = NOTEBOOK_DIR.parent / "mkdocs.yml"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
DOCS_DIR = NOTEBOOK_DIR.parent / "docs"
HIDDEN_TAG = "remove_cell"  # the quick switch's cell, which the site drops
FULL_RUN_ONLY = "full_run_only"
MAX_LINE = 85  # characters of code that fit the page's column at 1280 px
MAX_FIGURE_WIDTH = 750  # pixels of a stored figure that the column shows unscaled


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
              if HIDDEN_TAG in cell.metadata.get("tags", [])]
    assert any("KERAS_TBPTT_QUICK" in cell.source for cell in tagged), path.name
    untagged = [cell.source for cell in notebook.cells
                if cell.cell_type == "code" and cell not in tagged]
    assert not any("KERAS_TBPTT_QUICK" in source for source in untagged), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("KERAS_TBPTT_QUICK", "1")  # inherited by the kernel
    stored = path.read_bytes()
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if FULL_RUN_ONLY in cell.metadata.get("tags", []):
            cell.source = "pass"  # asserts on what only the full run shows
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


def _code_sources(notebook):
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def _output_texts(notebook):
    """What the stored outputs show as text: streams, results, errors."""
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                texts.append(output.text)
            for kind in ("text/plain", "text/markdown", "text/html"):
                if kind in output.get("data", {}):
                    texts.append(output.data[kind])
            texts += output.get("traceback", [])
    return texts


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_from_its_full_run(path):
    metadata = nbformat.read(path, as_version=4).metadata.get("keras_tbptt", {})
    assert metadata.get("quick") is False, (
        f"{path.name}: stored from a reduced run; store the full run with "
        f"`python docs/execute_notebooks.py {path.name[:2]}`")
    assert metadata.get("seconds", 0) > 0, f"{path.name}: the stored run's seconds are missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_checks_its_claims_with_asserts(path):
    notebook = nbformat.read(path, as_version=4)
    asserts = 0
    for cell in notebook.cells:
        if cell.cell_type != "code" or HIDDEN_TAG in cell.metadata.get("tags", []):
            continue
        tree = ast.parse(cell.source)
        asserts += sum(isinstance(node, ast.Assert) for node in ast.walk(tree))
        statements = tree.body
        if FULL_RUN_ONLY in cell.metadata.get("tags", []):
            assert statements and all(isinstance(node, ast.Assert) for node in statements), (
                f"{path.name}: a cell tagged {FULL_RUN_ONLY} holds only assert statements "
                f"(the reduced copy skips it), not:\n{cell.source}")
    assert asserts >= 2, f"{path.name}: {asserts} assert statements; a tutorial checks its claims"


# A number in prose: digits with optional thousands separators and decimals,
# not inside a name (k2, float32) and not a list marker or section number.
NUMBER = re.compile(r"(?<![\w.])\d(?:[\d,_]*\d)?(?:\.\d+)?%?")
THOUSANDS = re.compile(r"(?<=\d)[,_](?=\d{3}(?!\d))")
CITATION = re.compile(r"[A-Z][\w-]+(?: (?:&|and) [A-Z][\w-]+| et al\.)?,? \(?(?:19|20)\d\d\b")


def prose_numbers(markdown):
    """The numbers a Markdown cell quotes (thousands separators removed),
    leaving out link targets, citation years, list markers and section
    numbers."""
    text = re.sub(r"\]\([^)]*\)", "]", markdown)
    text = CITATION.sub("", text)
    text = re.sub(r"^(\s*(?:#+\s*)?)\d+\.(?=\s)", r"\1", text, flags=re.MULTILINE)
    return {THOUSANDS.sub("", number) for number in NUMBER.findall(text)}


def quotes(number, haystack):
    return re.search(rf"(?<![\d.]){re.escape(number)}(?!\d|\.\d)", haystack) is not None


def test_prose_numbers_can_fail():
    assert prose_numbers("## 3. The table\n1. In 12 epochs (Williams & Peng 1990), "
                         "k2 = 10 reached 0.648 and 78%, [see](../04_grid_search/) 3,000") == {
        "12", "10", "0.648", "78%", "3000"}
    assert quotes("0.648", "accuracy 0.648\n") and not quotes("0.64", "accuracy 0.648")
    assert not quotes("78%", "78.5%") and quotes("3000", "LENGTH = 3000")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_numbers_in_prose_come_from_the_notebook(path):
    """A number the Markdown quotes stands in the code or the stored outputs,
    so a result that changes cannot leave the prose behind."""
    notebook = nbformat.read(path, as_version=4)
    haystack = THOUSANDS.sub("", "\n".join(_code_sources(notebook) + _output_texts(notebook)))
    missing = {}
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            absent = sorted(n for n in prose_numbers(cell.source) if not quotes(n, haystack))
            if absent:
                missing[f"cell {index}"] = absent
    assert not missing, (
        f"{path.name}: numbers in the prose that no code or output shows (quote them from an "
        f"output, e.g. display(Markdown(...)), or describe the result): {missing}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_code_and_figures_fit_the_column(path):
    notebook = nbformat.read(path, as_version=4)
    long_lines = [line for cell in notebook.cells if cell.cell_type == "code"
                  and HIDDEN_TAG not in cell.metadata.get("tags", [])
                  for line in cell.source.splitlines() if len(line) > MAX_LINE]
    assert not long_lines, f"{path.name}: code lines over {MAX_LINE} characters: {long_lines}"
    widths = [struct.unpack(">I", base64.b64decode(output.data["image/png"])[16:20])[0]
              for cell in notebook.cells for output in cell.get("outputs", [])
              if "image/png" in output.get("data", {})]
    assert widths, f"{path.name}: no figure"
    wide = [w for w in widths if w > MAX_FIGURE_WIDTH]
    assert not wide, (f"{path.name}: figures {wide} px wide are shrunk to the column; "
                      f"draw them at most 7 inches wide")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_shows_what_a_downloaded_copy_can_do(path):
    """No machine's paths in the outputs, no file outside the package read,
    only the public API imported."""
    notebook = nbformat.read(path, as_version=4)
    outputs = "\n".join(_output_texts(notebook))
    for leak in ("ipykernel_", str(NOTEBOOK_DIR.parent)):
        assert leak not in outputs, f"{path.name}: its outputs show {leak!r}"
    code = "\n".join(_code_sources(notebook))
    assert "../" not in code and "benchmarks" not in code, (
        f"{path.name}: reads files next to the repository's notebooks; a downloaded copy "
        "has only the package: generate the data or load it from the package")
    private = re.findall(r"(?:from|import) keras_tbptt\.[\w.]+", code)
    assert not private, f"{path.name}: imports beyond the public API: {private}"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_links_land_on_pages(path):
    """Links relative to the page's URL (notebooks/<name>/): another
    notebook `../04_grid_search/`, a docs page `../../classification/`."""
    notebook = nbformat.read(path, as_version=4)
    targets = [target.split("#")[0] for cell in notebook.cells if cell.cell_type == "markdown"
               for target in LINK.findall(cell.source)]
    dead = []
    for target in targets:
        if not target or re.match(r"[a-z]+:", target):
            continue
        parts = Path("notebooks", path.stem, target).as_posix().split("/")
        resolved = []
        for part in parts:
            if part == "..":
                resolved.pop()
            elif part not in ("", "."):
                resolved.append(part)
        page = "/".join(resolved)
        exists = ((NOTEBOOK_DIR.parent / f"{page}.ipynb").is_file() if page.startswith("notebooks/")
                  else (DOCS_DIR / f"{page or 'index'}.md").is_file())
        if not exists or not target.endswith("/"):
            dead.append(target)
    assert not dead, f"{path.name}: links that land on no page of the site: {dead}"


@pytest.mark.parametrize("source, shown", [
    ("n = 2 if QUICK else 5\n", "n = 5\n"),
    ("n = (2_000 if QUICK else 5_000)\n", "n = 5_000\n"),
    ("seeds = range(2 if QUICK else 5)\n", "seeds = range(5)\n"),
    ("fit(x, epochs=(1 if QUICK else 30))\n", "fit(x, epochs=30)\n"),
])
def test_the_site_shows_the_full_runs_code(source, shown):
    spec = importlib.util.spec_from_file_location("hooks", DOCS_DIR / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    assert hooks._without_quick_branches(source, "test.ipynb") == shown
