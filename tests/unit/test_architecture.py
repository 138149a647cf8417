"""The package's shape, as bench/__init__.py describes it: layers that import one way only, no
import cycle, and harness functions short enough to read on one screen."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


PACKAGES = ("bench", "workloads")


LONGEST_HARNESS_FUNCTION = 80  # lines; the bar for "reads on one screen"


# Layer of each module prefix (the longest prefix wins): a module may import its own layer and
# the ones below it. bench.analysis and bench.serving share a rank but not their modules.
LAYERS = {
    "bench.commands": 5, "bench.cli": 5, "bench.__main__": 5,
    "bench.analysis": 4, "bench.serving": 4,
    "bench.harness": 3,
    "workloads": 2,
    "bench.data": 1,
    "bench": 0,  # bench.errors, bench.paths, bench.results, bench.cells, bench.checkpoint
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every project module `path` imports, wherever the import stands (top level, inside a
    function, under TYPE_CHECKING): a lazy import is still a dependency."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in imported if name in MODULES}


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _layer(module: str) -> tuple[int, str]:
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[prefix], prefix


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for module, imported in GRAPH.items():
        rank, prefix = _layer(module)
        for other in imported:
            other_rank, other_prefix = _layer(other)
            beside = rank == LAYERS["bench.analysis"] and other_rank == rank and other_prefix != prefix
            if other_rank > rank or beside:
                upward.append(f"{module} -> {other}")
    assert upward == []


def test_the_data_layer_never_imports_a_workload():
    assert [m for m in GRAPH if m.startswith("bench.data") and any(o.startswith("workloads") for o in GRAPH[m])] == []


def test_there_is_no_import_cycle():
    # Tarjan's strongly connected components: any component of two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in GRAPH[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert cycles == []


@pytest.mark.parametrize("path", sorted((ROOT / "bench" / "harness").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT / "bench" / "harness")))
def test_no_harness_function_is_longer_than_a_screen(path):
    long = [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > LONGEST_HARNESS_FUNCTION
    ]
    assert long == []

