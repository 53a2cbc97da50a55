"""Package rules: the data side imports no Keras; load_model finds TBPTTLSTM;
the packaging metadata (extras, URLs, classifiers, py.typed, LICENSE,
CITATION.cff, CHANGELOG.md) says what a user of the wheel gets."""

import ast
import configparser
import datetime
import hashlib
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

import keras_tbptt

PACKAGE = Path(__file__).resolve().parent.parent / "keras_tbptt"
DATA_SIDE = ["core", "schemes", "timesteps/suggest.py", "timesteps/suggestion.py",
             "timesteps/correlogram.py", "timesteps/horizon.py"]


def _imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("room", DATA_SIDE)
def test_data_side_never_imports_keras(room):
    files = [PACKAGE / room] if room.endswith(".py") else sorted((PACKAGE / room).glob("*.py"))
    assert files and all(f.exists() for f in files), files
    offending = {
        f"{f.relative_to(PACKAGE)}: {module}"
        for f in files
        for module in _imported_modules(f)
        if module.split(".")[0] in ("keras", "tensorflow", "jax", "torch")
        # plan.py hands over to the Keras side lazily, inside dataset()/callbacks()
        or module.startswith(("keras_tbptt.layers", "keras_tbptt.training"))
        and f.name != "plan.py"
    }
    assert not offending, sorted(offending)

SAVE = """
import keras, numpy as np, keras_tbptt as kt
model = keras.Sequential([keras.Input((5, 2)), kt.TBPTTLSTM(3, truncate_gradient=2)])
model.compile(optimizer=kt.SkipUnweightedBatches(keras.optimizers.Adam()), loss="mse")
model.save({path!r})
np.save({path!r} + ".npy", model.predict(np.ones((1, 5, 2), "float32"), verbose=0))
"""

LOAD = {
    "keras_tbptt_first": "import keras_tbptt\nimport keras",
    "keras_first": "import keras\nimport keras_tbptt",
    "keras_only": "import keras",
}


@pytest.mark.keras
@pytest.mark.parametrize("imports", list(LOAD.values()), ids=list(LOAD))
def test_load_model_in_a_fresh_process(tmp_path, imports):
    path = str(tmp_path / "model.keras")
    run = lambda code: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    saved = run(SAVE.format(path=path))
    assert saved.returncode == 0, saved.stderr[-2000:]
    load = imports + f"""
import numpy as np
model = keras.models.load_model({path!r})
layer = model.layers[0]
print(type(layer).__name__, layer.truncate_gradient)
out = model.predict(np.ones((1, 5, 2), "float32"), verbose=0)
print(np.allclose(out, np.load({path!r} + ".npy")))
print(type(model.optimizer).__name__)
"""
    loaded = run(load)
    if imports == LOAD["keras_only"]:
        # Without keras_tbptt nothing can register the class: Keras must say so.
        assert loaded.returncode != 0 and "TBPTTLSTM" in loaded.stderr
    else:
        assert loaded.returncode == 0, loaded.stderr[-2000:]
        assert loaded.stdout.split() == ["TBPTTLSTM", "2", "True", "SkipUnweightedBatches"]


@pytest.mark.keras
def test_checking_for_keras_does_not_use_up_the_registration():
    code = (
        "import importlib.util, keras_tbptt\n"
        "assert importlib.util.find_spec('keras') is not None\n"
        "import keras\n"
        "print(keras.saving.get_registered_object('keras_tbptt>TBPTTLSTM').__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["TBPTTLSTM"]


# --- Packaging metadata: what `pip install keras_tbptt[...]` gives a user ---

ROOT = PACKAGE.parent
BACKENDS = ("tensorflow", "jax", "torch")
HOME = "https://github.com/keras-tbptt/keras_tbptt"
DOCS = "https://keras-tbptt.github.io/keras_tbptt/"
# md5 of the Apache License 2.0 as apache.org publishes it (LICENSE-2.0.txt).
APACHE_2_MD5 = "3b83ef96387f14655fc854ddc3c6bd57"


@pytest.fixture(scope="module")
def setup_cfg():
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "setup.cfg")
    return config


def _lines(value):
    return [line.strip() for line in value.splitlines() if line.strip()]


def _requirements(setup_cfg, extra=None):
    if extra is None:
        return [Requirement(r) for r in _lines(setup_cfg["options"]["install_requires"])]
    return [Requirement(r) for r in _lines(setup_cfg["options.extras_require"][extra])]


def _names_for(requirements, platform):
    """Names of the requirements that apply on `platform` (marker variables)."""
    return sorted(r.name for r in requirements if r.marker is None or r.marker.evaluate(platform))


def test_base_install_is_keras_and_the_data_side_without_a_backend(setup_cfg):
    requirements = _requirements(setup_cfg)
    assert sorted(r.name for r in requirements) == sorted(
        ["keras", "numpy", "pandas", "statsmodels", "matplotlib", "scipy", "joblib", "tqdm"]
    )
    assert all(r.marker is None and str(r.specifier).startswith(">=") for r in requirements)
    assert str(next(r for r in requirements if r.name == "keras").specifier) == ">=3.15"
    assert not [r.name for r in requirements if r.name.startswith(BACKENDS)]


LINUX_X86 = {"sys_platform": "linux", "platform_machine": "x86_64"}
LINUX_ARM = {"sys_platform": "linux", "platform_machine": "aarch64"}
MACOS_ARM = {"sys_platform": "darwin", "platform_machine": "arm64"}
WINDOWS = {"sys_platform": "win32", "platform_machine": "AMD64"}


@pytest.mark.parametrize(("extra", "platform", "expected"), [
    ("tensorflow", LINUX_X86, ["tensorflow-cpu"]),
    ("tensorflow", LINUX_ARM, ["tensorflow"]),
    ("tensorflow", MACOS_ARM, ["tensorflow"]),
    ("tensorflow", WINDOWS, ["tensorflow"]),
    ("jax", LINUX_X86, ["jax"]),
    ("jax", MACOS_ARM, ["jax"]),
    ("torch", LINUX_X86, ["torch"]),
    ("torch", WINDOWS, ["torch"]),
])
def test_each_backend_extra_installs_exactly_its_backend(setup_cfg, extra, platform, expected):
    requirements = _requirements(setup_cfg, extra)
    assert _names_for(requirements, platform) == expected
    floors = {r.name: str(r.specifier) for r in requirements}
    assert floors == {
        "tensorflow": {"tensorflow-cpu": ">=2.16", "tensorflow": ">=2.16"},
        "jax": {"jax": ">=0.4.30"},
        "torch": {"torch": ">=2.4"},
    }[extra]


def test_extras_are_the_backends_and_the_optional_features(setup_cfg):
    assert list(setup_cfg["options.extras_require"]) == [
        "tensorflow", "jax", "torch", "distributed", "tuner", "dev", "docs"
    ]


def test_make_install_takes_the_backends_the_tests_run_under():
    makefile = (ROOT / "Makefile").read_text()
    [extras] = re.findall(r'pip install --quiet -e "\.\[([a-z,]+)\]"', makefile)
    assert extras.split(",") == ["tensorflow", "jax", "torch", "dev", "docs"]
    # The CPU build on the CI machines' disk, not a CUDA build from PyPI.
    assert '"torch==2.13.0"' in makefile
    [targets] = re.findall(r"^test: (.*)$", makefile, flags=re.M)
    assert targets.split() == ["test-tensorflow", "test-jax", "test-torch"]
    for backend in ("jax", "torch"):
        assert f"KERAS_BACKEND={backend} $(PYTEST) -m keras tests" in makefile


def test_python_versions_agree(setup_cfg):
    supported = SpecifierSet(setup_cfg["options"]["python_requires"])
    assert str(supported) == ">=3.11"  # keras>=3.15 requires Python 3.11
    classifiers = _lines(setup_cfg["metadata"]["classifiers"])
    minors = [c.rsplit(" :: ", 1)[1] for c in classifiers
              if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert minors == ["3.11", "3.12", "3.13"]
    assert all(m in supported for m in minors) and "3.10" not in supported
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert running in supported


def test_classifiers_exist_and_say_what_they_should(setup_cfg):
    from trove_classifiers import classifiers as known

    classifiers = _lines(setup_cfg["metadata"]["classifiers"])
    assert [c for c in classifiers if c not in known] == []
    assert len(set(classifiers)) == len(classifiers)
    assert {
        "Development Status :: 4 - Beta",
        "Intended Audience :: Science/Research",
        "License :: OSI Approved :: Apache Software License",
        "Operating System :: OS Independent",
    } <= set(classifiers)


def test_project_urls_agree_with_the_docs_site_and_the_citation(setup_cfg):
    pairs = [line.split("=", 1) for line in _lines(setup_cfg["metadata"]["project_urls"])]
    urls = {name.strip(): url.strip() for name, url in pairs}
    assert urls == {
        "Homepage": HOME,
        "Documentation": DOCS,
        "Source": HOME,
        "Changelog": f"{HOME}/blob/main/CHANGELOG.md",
        "Issues": f"{HOME}/issues",
    }
    mkdocs = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert (mkdocs["site_url"], mkdocs["repo_url"]) == (DOCS, HOME)
    assert mkdocs["repo_name"] == "keras-tbptt/keras_tbptt"
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert (citation["url"], citation["repository-code"]) == (DOCS, HOME)


def test_py_typed_is_package_data(setup_cfg):
    assert (PACKAGE / "py.typed").read_bytes() == b""
    assert _lines(setup_cfg["options.package_data"]["keras_tbptt"]) == ["py.typed"]


def test_license_is_the_full_apache_2_text_and_a_license_file(setup_cfg):
    text = (ROOT / "LICENSE").read_bytes()
    assert hashlib.md5(text).hexdigest() == APACHE_2_MD5
    sections = re.findall(rb"^   (\d)\. ", text, re.M)
    assert sections == [str(i).encode() for i in range(1, 10)]
    assert b"END OF TERMS AND CONDITIONS" in text
    assert setup_cfg["metadata"]["license"] == "Apache-2.0"
    assert _lines(setup_cfg["metadata"]["license_files"]) == ["LICENSE"]


def test_citation_is_cff_1_2_0_with_the_package_version():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    required = {"cff-version", "message", "title", "authors"}
    assert required <= set(citation)
    assert citation["cff-version"] == "1.2.0"
    assert citation["version"] == keras_tbptt.__version__
    assert isinstance(citation["version"], str)  # not a YAML float such as 0.3
    assert citation["type"] == "software" and citation["license"] == "Apache-2.0"
    assert citation["authors"] and all(
        a.get("name") or a.get("family-names") for a in citation["authors"]
    )
    assert isinstance(citation["date-released"], datetime.date)


def test_changelog_is_keep_a_changelog_with_the_current_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", changelog, re.M)
    assert headings[0] == ("Unreleased", "")
    versions = [v for v, _ in headings[1:]]
    assert versions[0] == keras_tbptt.__version__
    assert versions == sorted(versions, key=lambda v: tuple(map(int, v.split("."))),
                              reverse=True)
    assert versions[-1] == "0.1.0"
    dates = [d for _, d in headings[1:]]
    assert all(dates) and dates == sorted(dates, reverse=True)
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert dates[0] == citation["date-released"].isoformat()
    sections = set(re.findall(r"^### (\w+)$", changelog, re.M))
    assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def _fenced_bash_blocks(path):
    return re.findall(r"^```bash\n(.*?)^```", path.read_text(), re.M | re.S)


def test_readme_opens_with_make_then_the_pip_way():
    first, second = _fenced_bash_blocks(ROOT / "README.md")[:2]
    assert [line.split("#")[0].strip() for line in first.splitlines()] == [
        "make demo", "make test"
    ]
    assert [line.split("#")[0].strip() for line in second.splitlines()] == [
        f'pip install "keras_tbptt[{backend}]"' for backend in ("jax", "tensorflow", "torch")
    ]


def test_getting_started_leads_with_pip_and_its_extras():
    first = _fenced_bash_blocks(ROOT / "docs" / "getting_started.md")[0]
    assert [line.split("#")[0].strip() for line in first.splitlines()] == [
        f'pip install "keras_tbptt[{backend}]"' for backend in ("jax", "tensorflow", "torch")
    ]


def test_ci_runs_the_tests_then_the_wheel_smoke_test():
    steps = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line and not line.startswith(("#", "set ", "cd "))]
    assert steps == ["make test", "bash .ci/wheel_smoke.sh"]
    smoke = (ROOT / ".ci" / "wheel_smoke.sh").read_text()
    assert '"$wheel[jax]"' in smoke and "KERAS_BACKEND=jax" in smoke


def test_build_backend_is_setuptools():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["build-system"]["build-backend"] == "setuptools.build_meta"


def test_the_wheel_ships_py_typed_the_license_and_backend_free_requirements(tmp_path):
    """Builds the wheel offline (no build isolation) from a copy of the tree."""
    setuptools = pytest.importorskip("setuptools")
    if tuple(int(p) for p in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.skip("setuptools >= 70.1 builds wheels without the wheel package")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "keras_tbptt",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, (built.stdout + built.stderr)[-3000:]
    [wheel] = (tmp_path / "dist").glob("keras_tbptt-*.whl")
    version = keras_tbptt.__version__
    assert wheel.name == f"keras_tbptt-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"keras_tbptt-{version}.dist-info/METADATA").decode()
    info = f"keras_tbptt-{version}.dist-info"
    assert "keras_tbptt/py.typed" in names
    assert {f"{info}/licenses/LICENSE", f"{info}/LICENSE"} & names
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "docs/"))]
    headers = metadata.split("\n\n", 1)[0].splitlines()
    requires = [Requirement(h.split(": ", 1)[1]) for h in headers
                if h.startswith("Requires-Dist: ")]
    base = [r.name for r in requires if r.marker is None]
    assert base == ["keras", "numpy", "pandas", "statsmodels", "matplotlib", "scipy",
                    "joblib", "tqdm"]
    for backend in BACKENDS:
        assert f"Provides-Extra: {backend}" in headers
        chosen = [r.name for r in requires if r.marker is not None
                  and r.marker.evaluate({"extra": backend, **LINUX_X86})]
        assert chosen == ["tensorflow-cpu" if backend == "tensorflow" else backend]
    assert "Requires-Python: >=3.11" in headers
    assert "Project-URL: Documentation, " + DOCS in headers
