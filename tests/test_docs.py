"""The documentation: every snippet runs and prints what it claims, and the
site builds with `mkdocs build --strict` (broken links, missing pages and
docstrings griffe cannot parse fail the build), with an API reference of
one typed page per public name, the committed benchmark results and every
tutorial notebook."""

import ast
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


def _source(module):
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _public_objects():
    """`(public name, dotted path)` of every documented object: the names of
    `__all__`, and the members of its subpackages (`kt.layers`) that the top
    level does not export, as `layers.WithResetFlags`. Read from the
    sources: no Keras is imported."""
    found = {}
    for name in keras_tbptt.__all__:
        if name in keras_tbptt._LAZY:
            module, attribute = keras_tbptt._LAZY[name]
            if attribute is None:  # a subpackage: its own `__all__`, from its source
                tree = ast.parse(_source(module).read_text())
                origins = {alias.asname or alias.name: node.module for node in tree.body
                           if isinstance(node, ast.ImportFrom) for alias in node.names}
                members = next(ast.literal_eval(node.value) for node in tree.body
                               if isinstance(node, ast.Assign)
                               and any(getattr(t, "id", None) == "__all__" for t in node.targets))
                for member in members:
                    found.setdefault(f"{origins[member]}.{member}", f"{name}.{member}")
                continue
        else:
            module, attribute = getattr(keras_tbptt, name).__module__, name
        found[f"{module}.{attribute}"] = name  # a top-level name wins
    return [(name, path) for path, name in found.items()]


def _definition(path):
    """The `ast` node of the class or function at `path`."""
    module, name = path.rsplit(".", 1)
    return next(node for node in ast.parse(_source(module).read_text()).body
                if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name)


def _unannotated(function, owner=""):
    """The arguments and return of `function` that have no annotation."""
    arguments = function.args
    missing = [
        f"{owner}{function.name}({a.arg})"
        for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                  *filter(None, [arguments.vararg, arguments.kwarg])]
        if a.annotation is None and a.arg not in ("self", "cls")
    ]
    setter = any(getattr(d, "attr", None) == "setter" for d in function.decorator_list)
    if function.returns is None and not setter:
        missing.append(f"{owner}{function.name} -> ?")
    return missing


def test_public_api_is_annotated():
    """Every public function, and every public method and property of a
    public class, annotates its arguments and its return (the API pages
    show the types; `py.typed` promises them)."""
    missing = []
    for name, path in _public_objects():
        node = _definition(path)
        if isinstance(node, ast.FunctionDef):
            missing += _unannotated(node)
            continue
        for member in node.body:
            if isinstance(member, ast.FunctionDef) and (
                    not member.name.startswith("_")
                    or member.name in ("__init__", "__call__", "__len__", "__getitem__")):
                missing += _unannotated(member, f"{name}.")
    assert not missing, missing


def test_api_reference_has_a_page_per_public_name(site):
    """`api/` is an index (a section per package, one linked line per object)
    and one page per object: its heading, its signature with the types,
    typed parameters and results (no bare `– text` entries) and its
    doctests rendered as code."""
    whole_index = (site / "api" / "index.html").read_text()
    index = whole_index[whole_index.index("<article"):whole_index.index("</article>")]
    objects = _public_objects()
    names = {name for name, _ in objects}
    assert {"TBPTTLSTM", "naive_split", "SplitPlan", "layers.WithResetFlags"} <= names
    for name, path in objects:
        slug = name.rsplit(".", 1)[-1]
        assert f'href="{slug}/"' in index, f"the API index does not link to {name}"
        assert f'<a href="{slug}/" class="md-nav__link' in whole_index, (
            f"{name} is not in the nav")
        page = (site / "api" / slug / "index.html").read_text()
        page = page[page.index("<article"):page.index("</article>")]
        # mkdocstrings gives every documented object a heading with its path as id
        assert f'<h1 id="{path}"' in page, f"{name} ({path}) has no page of its own"
        signatures = [html.unescape(re.sub(r"<[^>]+>", "", s)) for s in re.findall(
            r'<div class="doc-signature[^"]*">(.*?)</div>', page, re.DOTALL)]
        assert any(":" in s or "->" in s for s in signatures), (
            f"{name}: no annotated signature on its page: {signatures}")
        items = [html.unescape(re.sub(r"<[^>]+>", "", item)).split() for item in re.findall(
            r'<li class="doc-section-item[^"]*">(.*?)</li>', page, re.DOTALL)]
        assert not [item for item in items if item[:1] == ["–"]], (
            f"{name}: entries without a name or type on its page")
        # The docstrings' doctests render as code, not as Markdown quotes or text
        assert "<blockquote>" not in page and "<p>Examples:</p>" not in page, name
        assert 'class="gp">&gt;&gt;&gt; </span>' in page, f"{name}: no example on its page"
    # Plans come from the schemes: the internal constructor is not documented
    plan = (site / "api" / "SplitPlan" / "index.html").read_text()
    assert "rebuild" not in plan and "segments" not in plan


def test_benchmarks_page_shows_the_committed_results(site):
    page = html.unescape(re.sub(r"<[^>]+>", "", (site / "benchmarks" / "index.html").read_text()))
    reports = sorted((ROOT / "benchmarks" / "results").glob("*.md"))
    assert reports
    for report in reports:
        title = report.read_text().splitlines()[0].lstrip("# ").replace("`", "")
        assert title in page, f"{report.name} is not on the benchmarks page"


def test_classification_costs_come_from_the_committed_results(site):
    """The cost table of the classification guide is rendered from
    bench_classification.json: every epoch time and ratio is on the page,
    and no number of it is typed into docs/classification.md."""
    import json

    report = json.loads((ROOT / "benchmarks" / "results" / "bench_classification.json")
                        .read_text())
    page = html.unescape(re.sub(r"<[^>]+>", " ", (site / "classification" / "index.html")
                                .read_text()))
    page = " ".join(page.split())
    source = (ROOT / "docs" / "classification.md").read_text()
    assert "<!-- classification-costs -->" in source
    assert "classification-costs" not in page
    for backend in report["backends"]:
        for row in backend["rows"]:
            assert f"{row['best_epoch_s']:.2f}" in page, (backend["backend"], row["way"])
        for key, value in backend["ratios"].items():
            assert f"{value:.2f}" in page, (backend["backend"], key)
            assert f"{value:.2f}" not in source, (backend["backend"], key)


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


def _checker():
    """docs/check_snippets.py as a module (the docs folder is no package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "check_snippets", ROOT / "docs" / "check_snippets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _site_page(site, page):
    """The built HTML of docs/<page>.md."""
    return site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")


def _text(fragment):
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def _python_blocks(page_html):
    """The text of the page's ```python blocks (docs/hooks.py gives them the
    class `tbptt-python`)."""
    return [_text(code) for code in re.findall(
        r'<div class="tbptt-python highlight"><pre>.*?<code>(.*?)</code></pre></div>',
        page_html, re.S)]


def _output_blocks(page_html):
    return [_text(block) for block in re.findall(
        r'<div class="tbptt-output">\s*<div class="highlight"><pre>.*?<code>(.*?)</code>',
        page_html, re.S)]


DOC_PAGES = sorted((ROOT / "docs").glob("*.md"))


def test_pages_show_no_test_scaffolding(site):
    """Readers see the code they would write: errors and warnings are
    checked by the snippet checker (`# raises`, `# warns`), not by helpers
    on the page, and the test suite's quick switch is not shown. (The
    tutorial notebooks are Jupyter sessions, checked on their own above.)"""
    pages = [path for path in site.rglob("*.html") if "notebooks" not in path.parts]
    assert len(pages) > 20
    for path in pages:
        text = _text(path.read_text())
        for scaffolding in ("error_of(", "catch_warnings", "KERAS_TBPTT_QUICK"):
            assert scaffolding not in text, f"{path.relative_to(site)} shows {scaffolding}"
    for page in DOC_PAGES:
        source = page.read_text()
        assert "error_of(" not in source and "catch_warnings" not in source, page.name


def test_python_code_fits_the_column(site):
    """The outputs of long lines live under the code, not in comments that
    run off the block: no line of a rendered Python block is over 100
    characters."""
    long_lines, blocks = [], 0
    for page in DOC_PAGES:
        for code in _python_blocks(_site_page(site, page).read_text()):
            blocks += 1
            long_lines += [f"{page.name}: {line}" for line in code.splitlines()
                           if len(line) > 100]
    assert blocks > 100, "no Python blocks found: did docs/hooks.py stop marking them?"
    assert not long_lines, "\n".join(long_lines)


def test_outputs_render_below_the_code(site):
    """Every `raises` and `warns` line, every `output below` and every long
    checked print shows its output in an output block under its code,
    without its comment in the code; the errors read `ValueError: ...`."""
    checker = _checker()
    raising_pages = 0
    for page in DOC_PAGES:
        rendered = _site_page(site, page).read_text()
        outputs = " ".join(" ".join(_output_blocks(rendered)).split())
        code = "\n".join(_python_blocks(rendered))
        checks = [check for block in checker.page_blocks(page.read_text(), page.name)
                  for check in block.checks]
        raising_pages += any(check.kind == "raises" for check in checks)
        for check in checks:
            if check.kind == "raises":
                assert f"{check.type.rsplit('.', 1)[-1]}:" in outputs, (page.name, check)
            if check.kind == "print" and not check.below and "# " + check.expected in code:
                continue  # a short line keeps its comment
            shown = " ".join(checker.shown_output(check).split())
            assert shown in outputs, f"{page.name}: no output block shows\n{shown}"
            assert "# raises" not in code and "# warns" not in code, page.name
            assert "output below" not in code, page.name
    assert raising_pages >= 5
    faq = _output_blocks((site / "faq" / "index.html").read_text())
    assert any(block.startswith("ValueError: The series do not split evenly") for block in faq)
    domain = _output_blocks((site / "domain_split" / "index.html").read_text())
    assert any(block.startswith("suggested timesteps: 11\nrule:") for block in domain), domain


CHECKED_PAGE = '''# A page

```python
import warnings


def positive(x):
    if x < 0:
        raise ValueError(f"x must be >= 0.\\n- Received: x={x}")
    if x > 9:
        warnings.warn(f"x={x} is large", UserWarning)
    return x


positive(
    -1,
)  # raises ValueError: x must be >= 0. - Received: x=-1
big = positive(10)  # warns UserWarning: x=10 is ...
print(big)  # 10
print("one\\n  two")  # output below
positive(-2)  # raises ValueError: output below
```

```text
one
two
```

```text
ValueError: x must be >= 0.
- Received: x=-2
```
'''


@pytest.mark.parametrize("change, passes", [
    (None, True),
    (("Received: x=-1\n", "Received: x=-7\n"), False),  # the wrong message
    (("raises ValueError: x must", "raises TypeError: x must"), False),  # the wrong type
    (("    -1,\n", "    1,\n"), False),  # nothing raised
    (("x=10 is ...", "x=11 is ..."), False),  # the wrong warning
    (("big = positive(10)", "big = positive(9)"), False),  # no warning
    (("print(big)  # 10", "print(big)  # 9"), False),  # a wrong print
    (("one\ntwo\n", "one\nthree\n"), False),  # a wrong output below
    (("- Received: x=-2\n", "- Received: x=-3\n"), False),  # a wrong error below
    (("```text\none\ntwo\n```\n", ""), False),  # a text block missing
], ids=["right", "raises-message", "raises-type", "raises-nothing", "warns-message",
        "warns-nothing", "print", "below-print", "below-raises", "below-missing"])
def test_the_snippet_checker_can_fail(tmp_path, change, passes):
    """The checker's forms check: a page whose `raises`, `warns` or
    `output below` says what does not happen fails."""
    text = CHECKED_PAGE
    if change:
        assert text.count(change[0]) == 1, change
        text = text.replace(*change)
    page = tmp_path / "page.md"
    page.write_text(text)
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "check_snippets.py"), str(page)],
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode == 0) == passes, result.stdout + result.stderr[-3000:]
    if passes:
        assert f"ok: {page}" in result.stdout
