"""The package's rooms and doors (docs/architecture.md): which module may
import which, checked on the source, function-level imports included."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "keras_tbptt"
# The plan's documented door to the Keras side: `SplitPlan.dataset()` and
# `SplitPlan.callbacks()` import their classes when called, and those
# modules know the plan. The only import circle allowed.
DOORS = {
    ("keras_tbptt.core.plan", "keras_tbptt.training.dataset"),
    ("keras_tbptt.core.plan", "keras_tbptt.training.callbacks"),
}


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _package_imports(name):
    """The package modules `name` imports, anywhere in its source."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from keras_tbptt.layers import stateful` imports a module too.
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: _package_imports(name) for name in MODULES}


def _cycles():
    """Every elementary circle of the import graph minus the doors (as
    lists of modules), found by depth-first search."""
    graph = {a: {b for b in targets if (a, b) not in DOORS} for a, targets in GRAPH.items()}
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_the_walker_sees_function_level_imports():
    # The doors are imports inside methods: a walker blind to them would
    # pass the test below for the wrong reason.
    assert {b for a, b in DOORS} <= GRAPH["keras_tbptt.core.plan"]
    assert "keras_tbptt.training.checks" in GRAPH["keras_tbptt.timesteps.grid_runs"]


def test_no_import_circle():
    assert _cycles() == []


def test_the_cycle_finder_finds_a_planted_circle(monkeypatch):
    monkeypatch.setitem(GRAPH, "keras_tbptt.layers.stateful",
                        GRAPH["keras_tbptt.layers.stateful"] | {"keras_tbptt.training.checks"})
    assert any("keras_tbptt.layers.stateful" in cycle for cycle in _cycles())


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("keras_tbptt.layers")])
def test_layers_import_nothing_from_training(name):
    assert not {t for t in GRAPH[name] if t.startswith("keras_tbptt.training")}


def test_the_stack_is_read_in_one_module_only():
    readers = sorted(
        name for name, path in MODULES.items()
        if any(word in path.read_text() for word in ("_getframe", "f_locals", "f_back"))
    )
    assert readers == ["keras_tbptt.training.running_call"]


# What a module outside core/ may use of core/ is its public names: a name
# with a leading underscore is core's own business (docs/architecture.md).
def _private_core_imports(source):
    """`module.name` of every underscore name imported from keras_tbptt.core
    in `source`, function-level imports included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and (
            node.module == "keras_tbptt.core" or node.module.startswith("keras_tbptt.core.")
        ):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_no_module_outside_core_imports_a_private_core_name():
    offending = {
        name: _private_core_imports(MODULES[name].read_text())
        for name in MODULES
        if not name.startswith("keras_tbptt.core")
    }
    assert {name: found for name, found in offending.items() if found} == {}


def test_the_private_import_finder_finds_a_planted_import():
    planted = "def f():\n    from keras_tbptt.core.arrays import _planted, as_float\n"
    assert _private_core_imports(planted) == ["keras_tbptt.core.arrays._planted"]
    assert _private_core_imports("from keras_tbptt.core.batches import batches_of\n") == []


MAX_LINES = 500


def _long_files(limit):
    """`{path: lines}` of the package's files longer than `limit` lines."""
    lines = {path: len(path.read_text().splitlines()) for path in MODULES.values()}
    return {str(path.relative_to(PACKAGE)): n for path, n in lines.items() if n > limit}


def test_no_file_of_the_package_exceeds_500_lines():
    assert _long_files(MAX_LINES) == {}


def test_the_line_count_sees_every_file():
    # A lower limit must find files: the check reads the real sources.
    assert "core/plan.py" in _long_files(100)
