"""The documentation: every snippet runs and prints what it claims, and the
site builds with `mkdocs build --strict` (broken links, missing pages and
docstrings griffe cannot parse fail the build), with an API page that
documents every public name, the committed benchmark results and every
tutorial notebook."""

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

import keras_tbptt

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_snippets_run_and_print_what_they_claim(page):
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "check_snippets.py"), str(page)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"ok: {page}" in result.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built once for the tests below, as strictly as `make docs`."""
    folder = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return folder


def _public_objects():
    """`(name, dotted path)` of every documented object in `__all__`."""
    for name in keras_tbptt.__all__:
        if name in keras_tbptt._LAZY:
            module, attribute = keras_tbptt._LAZY[name]
            if attribute is None:  # a subpackage: its members are listed themselves
                continue
        else:
            module, attribute = getattr(keras_tbptt, name).__module__, name
        yield name, f"{module}.{attribute}"


def test_api_page_documents_every_public_name(site):
    page = (site / "api" / "index.html").read_text()
    objects = list(_public_objects())
    assert {"TBPTTLSTM", "naive_split", "SplitPlan"} <= {name for name, _ in objects}
    for name, path in objects:
        # mkdocstrings gives every documented object a heading with its path as id
        assert f'id="{path}"' in page, f"{name} ({path}) is missing from the API page"
    # The docstrings' doctests render as code, not as Markdown quotes
    assert "<blockquote>" not in page
    assert page.count('class="gp">&gt;&gt;&gt; </span>') >= len(objects) // 2


def test_benchmarks_page_shows_the_committed_results(site):
    page = html.unescape(re.sub(r"<[^>]+>", "", (site / "benchmarks" / "index.html").read_text()))
    reports = sorted((ROOT / "benchmarks" / "results").glob("*.md"))
    assert reports
    for report in reports:
        title = report.read_text().splitlines()[0].lstrip("# ").replace("`", "")
        assert title in page, f"{report.name} is not on the benchmarks page"


def test_every_notebook_and_figure_is_on_the_site(site):
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 4
    for notebook in notebooks:
        assert (site / "notebooks" / notebook.stem / "index.html").is_file(), notebook.name
    figures = sorted((site / "img").glob("*.png"))
    assert len(figures) >= 4 and all(f.stat().st_size > 10_000 for f in figures)
    concepts = (site / "concepts" / "index.html").read_text()
    for figure in figures:
        assert f"img/{figure.name}" in concepts, figure.name


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_pages_show_outputs_figures_and_downloads(site, notebook):
    """The notebooks are stored executed: their pages show figures and
    printed results, offer the notebook for download, hide the test suite's
    quick switch and have a table of contents whose links all land."""
    folder = site / "notebooks" / notebook.stem
    page = (folder / "index.html").read_text()
    content = page[page.index('<div class="jupyter-wrapper">'):]
    figures = re.findall(r'<img\b[^>]*\bsrc="(data:image/[^"]+|[^"]+\.(?:png|svg|jpg))"', content)
    assert figures, f"{notebook.name}: no figure on its page (executed? see docs/execute_notebooks.py)"
    printed = re.findall(r'class="[^"]*\bjp-OutputArea-output\b[^"]*"[^>]*>\s*<pre>(.*?)</pre>',
                         content, re.S)
    assert any(html.unescape(re.sub(r"<[^>]+>", "", text)).strip() for text in printed), (
        f"{notebook.name}: no printed output on its page")
    # the quick switch and its cell are not shown
    text = html.unescape(re.sub(r"<[^>]+>", "", content))
    assert "KERAS_TBPTT_QUICK" not in text and not re.search(r"\bQUICK\b", text), notebook.name
    assert "remove_cell" not in content, notebook.name
    # the download link points at the notebook copied next to the page
    assert f'href="{notebook.name}" download' in page, notebook.name
    assert (folder / notebook.name).is_file(), notebook.name
    # every table-of-contents link lands on a heading of the page
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    toc = re.findall(r'<a href="#([^"]+)" class="md-nav__link">', page)
    assert toc, f"{notebook.name}: no table of contents"
    dead = sorted(set(toc) - ids)
    assert not dead, f"{notebook.name}: table of contents links to missing anchors {dead}"
