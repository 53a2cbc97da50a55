"""mkdocs hooks: the parts of the site that are generated when it is built.

- The tutorial notebooks of `notebooks/` become pages under `notebooks/`,
  rendered by mkdocs-jupyter without executing them: they are stored with
  their outputs (`docs/execute_notebooks.py`). The page shows what a reader
  needs: the cells tagged `remove_cell` (the test suite's quick switch) are
  dropped and `small if QUICK else full` reads `full`, the run whose
  outputs are stored. That copy, under `.cache/notebooks/`, is also the notebook the
  page offers for download, next to a link to the original; the page's
  table of contents is made to point at the headings' real ids.
- The figures of `docs/make_figures.py` are drawn with matplotlib into
  `img/` (nothing is stored in the repository, nothing needs the network).
- The API reference: one page `api/<name>.md` per public object (the names
  of `keras_tbptt.__all__`, and those of its subpackages' `__all__` that
  the top level does not export, such as `kt.layers.WithResetFlags`), each
  a mkdocstrings entry, added to the nav under "API reference"; `api.md`'s
  `<!-- api-reference -->` marker becomes their index, grouped by package,
  one line per object (its docstring's summary). A new public name is
  documented as soon as it is exported.
- `benchmarks.md`: the `<!-- benchmark-results -->` marker becomes the
  committed `benchmarks/results/*.md`, so the page never goes stale.
- The other pages' ```python blocks, read with docs/check_snippets.py's
  parser: a checked line that raises, warns, prints an `output below` or is
  too long loses its comment, and an output block under the code shows what
  it prints, raises or warns (`rendered_snippets`).
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
API_NAV_TITLE = "API reference"  # the nav entry of api.md, made a section
BENCHMARKS_MARKER = "<!-- benchmark-results -->"
CLASSIFICATION_MARKER = "<!-- classification-costs -->"

# Package of the implementing module -> section of the API page, in order.
API_SECTIONS = {
    "keras_tbptt.schemes": "Splitting schemes",
    "keras_tbptt.core": "Plans and drawings",
    "keras_tbptt.timesteps": "Choosing timesteps",
    "keras_tbptt.layers": "The layers",
    "keras_tbptt.training": "Training, forecasting and state resets",
    "keras_tbptt.serving": "Serving",
}
# mkdocstrings options of single pages, on top of mkdocs.yml's.
API_OPTIONS = {
    # Plans come from the schemes: the constructor is not for users.
    "keras_tbptt.core.plan.SplitPlan": {"merge_init_into_class": False},
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
    for entries in api_sections().values():
        for name, path, page in entries:
            files.append(File.generated(config, page, content=api_page(path)))
    return files


def _without_quick_branches(source, name):
    """`small if QUICK else full` -> `full`, from the syntax tree (exact
    spans)."""
    if "QUICK" not in source:
        return source
    tree = ast.parse(source)
    spans = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.IfExp) and isinstance(node.test, ast.Name)
                and node.test.id == "QUICK"):
            spans.append((node, node.orelse))
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
        grouping = (source[start - 1:start] == "(" and source[end:end + 1] == ")"
                    and not re.search(r"[\w)\]]\s*$", source[:start - 1]))  # not a call's
        if grouping and re.fullmatch(r"[\w.]+", text):  # `(2_000 if QUICK else 5_000)` -> `5_000`
            start, end = start - 1, end + 1
        source = source[:start] + text + source[end:]
    if re.search(r"\bQUICK\b", source):
        raise ValueError(
            f"notebooks/{name}: QUICK is used other than as `small if QUICK else full`; "
            "the site cannot show the full run's code (see reader_notebook in docs/hooks.py)")
    return source


def reader_notebook(text, name):
    """The notebook as the site shows it (JSON text): cells tagged
    `remove_cell` dropped, quick-run branches resolved to the full run."""
    notebook = json.loads(text)
    cells = []
    for cell in notebook["cells"]:
        if HIDDEN_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        if cell["cell_type"] == "code":
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell = {**cell, "source": _without_quick_branches(source, name)}
        cells.append(cell)
    notebook["cells"] = cells
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def _source(module):
    """The source file of `module` (a package's `__init__.py`), unimported."""
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _package_members(package):
    """`(name, defining module)` of each name in `package.__all__`, read
    from its source: the Keras subpackages are not imported."""
    tree = ast.parse(_source(package).read_text())
    origins, names = {}, []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            origins.update((alias.asname or alias.name, node.module) for alias in node.names)
        elif isinstance(node, ast.Assign) and any(
                getattr(target, "id", None) == "__all__" for target in node.targets):
            names = ast.literal_eval(node.value)
    return [(name, origins[name]) for name in names]


def api_objects():
    """`[(public name, dotted path of its definition)]`: the names of
    `keras_tbptt.__all__` in order, then the members of its subpackages
    (`kt.layers`) not exported at the top, as `layers.WithResetFlags`."""
    import keras_tbptt

    objects, packages = [], []
    for name in keras_tbptt.__all__:
        if name in keras_tbptt._LAZY:  # Keras names: read the path, import nothing
            module, attribute = keras_tbptt._LAZY[name]
            if attribute is None:  # a subpackage (`kt.layers`)
                packages.append((name, module))
                continue
        else:
            module, attribute = getattr(keras_tbptt, name).__module__, name
        objects.append((name, f"{module}.{attribute}"))
    for name, package in packages:
        documented = {path for _, path in objects}
        objects += [(f"{name}.{member}", f"{origin}.{member}")
                    for member, origin in _package_members(package)
                    if f"{origin}.{member}" not in documented]
    return objects


def api_sections():
    """`{section title: [(public name, path, page)]}`, in the order of
    API_SECTIONS; within a section, `api_objects()`'s order, except that a
    subpackage's member follows the public name of its own module (the
    `WithResetFlags` page comes after `with_reset_flags`)."""
    sections = {title: [] for title in API_SECTIONS.values()}
    pages = {}
    for name, path in api_objects():
        module = path.rsplit(".", 1)[0]
        package = ".".join(module.split(".")[:2])
        if package not in API_SECTIONS:
            raise ValueError(
                f"keras_tbptt.{name} lives in {module}, which has no section on the "
                f"API page; add its package to API_SECTIONS in {__file__}")
        page = f"api/{name.rsplit('.', 1)[-1]}.md"
        if page.lower() in pages:
            raise ValueError(f"{name} and {pages[page.lower()]} would share the page {page}")
        pages[page.lower()] = name
        entries = sections[API_SECTIONS[package]]
        same_module = [i for i, (_, other, _) in enumerate(entries)
                       if other.rsplit(".", 1)[0] == module]
        at = same_module[-1] + 1 if "." in name and same_module else len(entries)
        entries.insert(at, (name, path, page))
    return {title: entries for title, entries in sections.items() if entries}


def _summary(path):
    """The first paragraph of the docstring of `path`, on one line."""
    module, name = path.rsplit(".", 1)
    for node in ast.parse(_source(module).read_text()).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            docstring = ast.get_docstring(node) or ""
            return " ".join(docstring.split("\n\n")[0].split())
    raise ValueError(f"{path}: no such class or function")


def api_index():
    """api.md's index: per section, one table row per object (a link to
    its page and its docstring's summary)."""
    lines = []
    for title, entries in api_sections().items():
        lines += [f"## {title}", "", "| Name | Summary |", "| --- | --- |"]
        lines += [f"| [`{name}`]({page}) | {_summary(path).replace('|', '&#124;')} |"
                  for name, path, page in entries]
        lines.append("")
    return "\n".join(lines)


def api_page(path):
    """The Markdown of one object's page: its mkdocstrings entry, whose
    heading (the page's title) is the object's name."""
    lines = [f"::: {path}"]
    if path in API_OPTIONS:
        lines.append("    options:")
        lines += [f"      {key}: {json.dumps(value)}" for key, value in API_OPTIONS[path].items()]
    return "\n".join(lines) + "\n"


def on_config(config):
    """The nav's "API reference" entry (api.md) becomes a section: the
    index, then one subsection per package with a page per object
    (made anew when `mkdocs serve` rebuilds)."""
    for i, entry in enumerate(config.nav or []):
        if isinstance(entry, dict) and API_NAV_TITLE in entry:
            config.nav[i] = {API_NAV_TITLE: [{"Overview": "api.md"}] + [
                {title: [{name: page} for name, _, page in entries]}
                for title, entries in api_sections().items()]}
            return config
    raise ValueError(f"mkdocs.yml's nav has no `{API_NAV_TITLE}: api.md` entry")


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


def classification_costs():
    """The cost table of classification.md and the sentence on its ratios,
    from `bench_classification.json` (no number typed into the page)."""
    report = json.loads((RESULTS / "bench_classification.json").read_text())
    backends = report["backends"]
    names = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "torch"}
    seconds = [{row["way"]: row["best_epoch_s"] for row in b["rows"]} for b in backends]
    ratios = [b["ratios"] for b in backends]
    lines = ["| | " + " | ".join(names[b["backend"]] for b in backends) + " |",
             "|---|" + "---:|" * len(backends)]

    def row(label, values):
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    for way, label in [
            ("chunked", "epoch, chunked (`naive_split` + `SkipUnweightedBatches`)"),
            ("decoupled", "epoch, decoupled (`truncate_gradient=250`)"),
            ("full", "epoch, full BPTT (`keras.layers.LSTM`)")]:
        row(label, [f"{s[way]:.2f} s" for s in seconds])
    row("epoch, truncated / downsampled to 250 steps",
        [f"{s['truncate']:.2f} / {s['downsample']:.2f} s" for s in seconds])
    for key, label in [
            ("time_chunked_over_decoupled", "epoch time chunked / decoupled"),
            ("time_full_over_decoupled", "epoch time full BPTT / decoupled"),
            ("mem_chunked_over_decoupled", "peak memory chunked / decoupled"),
            ("mem_decoupled_over_full", "peak memory decoupled / full BPTT")]:
        row(label, [f"{r[key]:.2f}" for r in ratios])

    def span(key):
        values = sorted(r[key] for r in ratios)
        return f"{values[0]:.2f} to {values[-1]:.2f}" if len(values) > 1 else f"{values[0]:.2f}"

    lines += ["", f"In this run the decoupled way is {span('time_chunked_over_decoupled')} "
              "times faster per epoch than the chunked way, and "
              f"{span('time_full_over_decoupled')} times faster than full BPTT; the "
              f"chunked way is {span('time_full_over_chunked')} times faster than "
              f"full BPTT. Peak memory, decoupled over full BPTT: "
              f"{span('mem_decoupled_over_full')}; chunked over full BPTT: "
              f"{span('mem_chunked_over_full')}."]
    return "\n".join(lines)


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "api.md":
        if API_MARKER not in markdown:
            raise ValueError(f"api.md lost its {API_MARKER} marker")
        return markdown.replace(API_MARKER, api_index())
    if page.file.src_uri == "benchmarks.md":
        if BENCHMARKS_MARKER not in markdown:
            raise ValueError(f"benchmarks.md lost its {BENCHMARKS_MARKER} marker")
        markdown = rendered_snippets(markdown, page.file.src_uri)
        return markdown.replace(BENCHMARKS_MARKER, benchmark_results())
    if page.file.src_uri.endswith(".ipynb"):
        return markdown
    if page.file.src_uri == "classification.md":
        if CLASSIFICATION_MARKER not in markdown:
            raise ValueError(f"classification.md lost its {CLASSIFICATION_MARKER} marker")
        markdown = markdown.replace(CLASSIFICATION_MARKER, classification_costs())
    return rendered_snippets(markdown, page.file.src_uri)


def _load_checker():
    """docs/check_snippets.py, whose parser the pages' rendering shares."""
    spec = importlib.util.spec_from_file_location(
        "check_snippets", Path(__file__).with_name("check_snippets.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rendered_snippets(markdown, path):
    """The page's ```python blocks as readers see them. The snippet
    checker's tags (```python jax, ```python no-run) are not valid
    superfences headers (the block would render as text): they go, and
    every ```python block gets the class `tbptt-python` (the docs tests find
    the Python code in the HTML by it). A checked
    line of docs/check_snippets.py that raises or warns, that prints an
    `output below`, or that is longer than its LONG_LINE loses its comment,
    and the block is followed by an output block (a ```text block in a
    `tbptt-output` div) showing what those lines print, raise or warn, in
    order; the ```text blocks of `output below` move into it."""
    checker = _load_checker()
    parts, at = [], 0
    for block in checker.page_blocks(markdown, path):
        header = markdown[block.start:markdown.index("\n", block.start)]
        if block.info in ("", "jax", "no-run"):
            header = "```{.python .tbptt-python}"
        lines = block.source.splitlines()
        shown = []
        for check in block.checks:
            line = lines[check.line - 1]
            if check.kind != "print" or check.below or len(line) > checker.LONG_LINE:
                lines[check.line - 1] = line[:check.column].rstrip()
                shown.append(checker.shown_output(check))
        parts += [markdown[at:block.start], header, "\n", "\n".join(lines), "\n```"]
        if shown:
            parts += ['\n\n<div class="tbptt-output" markdown>\n\n```text\n',
                      "\n".join(shown), "\n```\n\n</div>"]
        at = block.end
    parts.append(markdown[at:])
    return "".join(parts)


def _notebook_page_links(html, page, config):
    """Download and source links under the notebook page's title."""
    name = Path(page.file.src_path).name
    links = [f'<a class="md-button" href="{name}" download>Download the notebook</a>']
    if config.repo_url:
        url = f"{config.repo_url.rstrip('/')}/blob/main/notebooks/{name}"
        links.append(f'<a class="md-button" href="{url}">View it on GitHub</a>')
    bar = f'<p class="tbptt-notebook-links">{" ".join(links)}</p>'
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
