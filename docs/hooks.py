"""mkdocs hooks: the parts of the site that are generated when it is built.

- The tutorial notebooks of `notebooks/` become pages under `notebooks/`,
  rendered by mkdocs-jupyter without executing them: they are stored with
  their outputs (`docs/execute_notebooks.py`). The page shows what a reader
  needs: the cells tagged `remove_cell` (the test suite's quick switch) are
  dropped and `small if QUICK else full` reads as the run whose outputs
  are stored (`full` unless the notebook's metadata says it was executed
  quick). That copy, under `.cache/notebooks/`, is also the notebook the
  page offers for download, next to a link to the original; the page's
  table of contents is made to point at the headings' real ids.
- The figures of `docs/make_figures.py` are drawn with matplotlib into
  `img/` (nothing is stored in the repository, nothing needs the network).
- `api.md`: the `<!-- api-reference -->` marker becomes one mkdocstrings
  entry per name in `keras_tbptt.__all__`, grouped by package, so a new
  public name is documented as soon as it is exported.
- `benchmarks.md`: the `<!-- benchmark-results -->` marker becomes the
  committed `benchmarks/results/*.md`, so the page never goes stale.
"""

import ast
import importlib.util
import json
import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
READER_NOTEBOOKS = ROOT / ".cache" / "notebooks"  # what the site renders and serves
HIDDEN_TAG = "remove_cell"
RESULTS = ROOT / "benchmarks" / "results"
API_MARKER = "<!-- api-reference -->"
BENCHMARKS_MARKER = "<!-- benchmark-results -->"

# Package of the implementing module -> section of the API page, in order.
API_SECTIONS = {
    "keras_tbptt.schemes": "Splitting schemes",
    "keras_tbptt.core": "Plans and drawings",
    "keras_tbptt.timesteps": "Choosing timesteps",
    "keras_tbptt.layers": "The layer",
    "keras_tbptt.training": "Training, forecasting and state resets",
    "keras_tbptt.serving": "Serving",
}


def _load_figures_module():
    spec = importlib.util.spec_from_file_location(
        "make_figures", Path(__file__).with_name("make_figures.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Before mkdocs-jupyter's on_files, which wraps the notebooks it includes.
@event_priority(100)
def on_files(files, config):
    READER_NOTEBOOKS.mkdir(parents=True, exist_ok=True)
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        # A real file (mkdocs-jupyter reads it from its path), served as
        # notebooks/<name>/ like the repository's layout. Written only when it
        # changes, so that mkdocs-jupyter's cache (keyed by content) hits.
        reader = READER_NOTEBOOKS / "notebooks" / notebook.name
        reader.parent.mkdir(exist_ok=True)
        text = reader_notebook(notebook.read_text(), notebook.name)
        if not reader.is_file() or reader.read_text() != text:
            reader.write_text(text)
        files.append(File(f"notebooks/{notebook.name}", src_dir=str(READER_NOTEBOOKS),
                          dest_dir=config.site_dir, use_directory_urls=config.use_directory_urls))
    for name, png in _load_figures_module().draw_all().items():
        files.append(File.generated(config, f"img/{name}", content=png))
    return files


def _without_quick_branches(source, name, quick=False):
    """`small if QUICK else full` -> `full` (`small` if quick), from the
    syntax tree (exact spans)."""
    if "QUICK" not in source:
        return source
    tree = ast.parse(source)
    spans = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.IfExp) and isinstance(node.test, ast.Name)
                and node.test.id == "QUICK"):
            spans.append((node, node.body if quick else node.orelse))
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(lineno, col):  # ast columns count UTF-8 bytes
        line = lines[lineno - 1]
        return starts[lineno - 1] + len(line.encode()[:col].decode())

    edits = sorted(
        ((offset(n.lineno, n.col_offset), offset(n.end_lineno, n.end_col_offset),
          ast.get_source_segment(source, keep)) for n, keep in spans), reverse=True)
    for start, end, text in edits:
        if source[start - 1:start] == "(" and source[end:end + 1] == ")" and (
                re.fullmatch(r"[\w.]+", text)):  # `(2_000 if QUICK else 5_000)` -> `5_000`
            start, end = start - 1, end + 1
        source = source[:start] + text + source[end:]
    if re.search(r"\bQUICK\b", source):
        raise ValueError(
            f"notebooks/{name}: QUICK is used other than as `small if QUICK else full`; "
            "the site cannot show the full run's code (see reader_notebook in docs/hooks.py)")
    return source


def reader_notebook(text, name):
    """The notebook as the site shows it (JSON text): cells tagged
    `remove_cell` dropped, quick-run branches resolved to the stored run."""
    notebook = json.loads(text)
    quick = notebook["metadata"].get("keras_tbptt", {}).get("quick", False)
    cells = []
    for cell in notebook["cells"]:
        if HIDDEN_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        if cell["cell_type"] == "code":
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell = {**cell, "source": _without_quick_branches(source, name, quick)}
        cells.append(cell)
    notebook["cells"] = cells
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def api_entries():
    """The API page's Markdown: one `:::` entry per name of `__all__`."""
    import keras_tbptt

    sections = {title: [] for title in API_SECTIONS.values()}
    for name in keras_tbptt.__all__:
        if name in keras_tbptt._LAZY:  # Keras names: read the path, import nothing
            module, attribute = keras_tbptt._LAZY[name]
            if attribute is None:  # a subpackage (`kt.layers`): its members are listed
                continue
        else:
            module, attribute = getattr(keras_tbptt, name).__module__, name
        package = ".".join(module.split(".")[:2])
        if package not in API_SECTIONS:
            raise ValueError(
                f"keras_tbptt.{name} lives in {module}, which has no section on the "
                f"API page; add its package to API_SECTIONS in {__file__}")
        sections[API_SECTIONS[package]].append(f"{module}.{attribute}")
    lines = []
    for title, paths in sections.items():
        if not paths:
            continue
        lines += [f"## {title}", ""]
        for path in paths:
            lines += [f"::: {path}", ""]
    return "\n".join(lines)


def benchmark_results():
    """The committed benchmark reports, headings moved one level down."""
    parts = []
    for report in sorted(RESULTS.glob("*.md")):
        text = report.read_text()
        text = re.sub(r"^(#+) ", r"#\1 ", text, flags=re.M)
        parts.append(f"{text.rstrip()}\n\n_Source: `benchmarks/results/{report.name}`, "
                     f"raw numbers in `{report.with_suffix('.json').name}`._\n")
    if not parts:
        raise ValueError(f"no benchmark reports in {RESULTS}")
    return "\n".join(parts)


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "api.md":
        if API_MARKER not in markdown:
            raise ValueError(f"api.md lost its {API_MARKER} marker")
        return markdown.replace(API_MARKER, api_entries())
    if page.file.src_uri == "benchmarks.md":
        if BENCHMARKS_MARKER not in markdown:
            raise ValueError(f"benchmarks.md lost its {BENCHMARKS_MARKER} marker")
        return markdown.replace(BENCHMARKS_MARKER, benchmark_results())
    # The snippet checker's tags (```python jax, ```python no-run) are not
    # valid superfences headers: the block would render as text.
    return re.sub(r"^```python (?:jax|no-run)[ \t]*$", "```python", markdown, flags=re.M)


def _notebook_page_links(html, page, config):
    """Download and source links under the notebook page's title."""
    name = Path(page.file.src_path).name
    links = [f'<a class="md-button" href="{name}" download>Download the notebook</a>']
    if config.repo_url:
        url = f"{config.repo_url.rstrip('/')}/blob/main/notebooks/{name}"
        links.append(f'<a class="md-button" href="{url}">View it on GitHub</a>')
    bar = f'<p class="tbptt-notebook-links">{" ".join(links)}</p>'
    metadata = json.loads(Path(page.file.abs_src_path).read_text())["metadata"]
    if metadata.get("keras_tbptt", {}).get("quick"):
        bar += ('<div class="admonition note"><p class="admonition-title">Quick run</p>'
                "<p>The outputs on this page come from the notebook's quick run (fewer "
                "epochs, shorter series), and so does the code shown; the text quotes the "
                "full run, whose numbers differ. The notebook on GitHub has both: run it "
                "as it is for the full run.</p></div>")
    head = re.search(r"</h1>", html)
    if head is None:
        raise ValueError(f"{page.file.src_path}: no title to put the download link under")
    return html[:head.end()] + bar + html[head.end():]


def _fix_notebook_toc(html, page):
    """mkdocs-jupyter builds the table of contents from its own Markdown
    rendering, which drops inline code from the anchors (`1-from-to` for
    "1. From `[100, 50000, 1]` to ..."), while the headings' ids keep it:
    point the dead entries at the headings no entry reaches, in order, with
    the headings' titles."""
    ids = re.findall(r'<h[1-6][^>]*\bid="([^"]+)"', html)
    entries = []

    def walk(items):
        for item in items:
            entries.append(item)
            walk(item.children)

    walk(page.toc)
    dead = [entry for entry in entries if entry.id not in ids]
    if not dead:
        return
    reached = {entry.id for entry in entries}
    free = [anchor for anchor in ids if anchor not in reached]
    if len(free) < len(dead):
        raise ValueError(f"{page.file.src_path}: table of contents entries "
                         f"{[e.id for e in dead]} match no heading")
    # Entries and headings follow the notebook's order: take the free headings
    # that sit where the dead entries sit.
    order = {anchor: i for i, anchor in enumerate(ids)}
    for entry in dead:
        before = [order[e.id] for e in entries[:entries.index(entry)] if e.id in order]
        after = [a for a in free if order[a] > (max(before) if before else -1)]
        if not after:
            raise ValueError(f"{page.file.src_path}: no heading for the entry {entry.title!r}")
        entry.id = after[0]
        free.remove(after[0])
        # its title lost the inline code as well: take the heading's
        heading = re.search(rf'<h[1-6][^>]*\bid="{re.escape(entry.id)}"[^>]*>(.*?)</h[1-6]>', html, re.S)
        entry.title = re.sub(r'<a class="anchor-link".*?</a>', "", heading.group(1)).strip()


def on_page_content(html, page, config, files):
    if not page.file.src_uri.startswith("notebooks/") or not page.file.src_uri.endswith(".ipynb"):
        return html
    _fix_notebook_toc(html, page)
    return _notebook_page_links(html, page, config)
