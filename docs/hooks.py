"""mkdocs hooks: the parts of the site that are generated when it is built.

- The tutorial notebooks of `notebooks/` become pages under `notebooks/`
  (rendered by mkdocs-jupyter, without executing them).
- The figures of `docs/make_figures.py` are drawn with matplotlib into
  `img/` (nothing is stored in the repository, nothing needs the network).
- `api.md`: the `<!-- api-reference -->` marker becomes one mkdocstrings
  entry per name in `keras_tbptt.__all__`, grouped by package, so a new
  public name is documented as soon as it is exported.
- `benchmarks.md`: the `<!-- benchmark-results -->` marker becomes the
  committed `benchmarks/results/*.md`, so the page never goes stale.
"""

import importlib.util
import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
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
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        # A real file under the repository root (mkdocs-jupyter reads it from
        # its path), served as notebooks/<name>/ like the repository's layout.
        files.append(File(f"notebooks/{notebook.name}", src_dir=str(ROOT),
                          dest_dir=config.site_dir, use_directory_urls=config.use_directory_urls))
    for name, png in _load_figures_module().draw_all().items():
        files.append(File.generated(config, f"img/{name}", content=png))
    return files


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
