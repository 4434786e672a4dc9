"""Module layering, read from the source (ast; no detx module is imported): no import cycles, no long files.

A cycle means two ideas have no clear home (each module needs the other), and
a function-level import only hides it from Python, not from the reader, so
those count too, as do imports under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The folders setup.py installs as detx.<folder>; their modules must not import each other in a cycle.
PACKAGES = ("pipeline", "components", "serving")
# Every Python file of these folders must stay readable in one sitting.
LENGTH_CHECKED = (*PACKAGES, "bench", "tests")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    """`detx.<dotted path>` of every module under PACKAGES (a package is its `__init__.py`) to its file."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(("detx", *parts))] = path
    return modules


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> Iterator[str]:
    """Every dotted name an import anywhere in the tree may refer to: `from a import b` yields `a.b`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                anchor = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module a dotted name lives in (`a.b.Class` -> `a.b`), or None outside PACKAGES."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module to the modules of PACKAGES it imports (the packages' `__init__.py` files hold only docstrings)."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        names = _imported_names(tree, module, path.name == "__init__.py")
        graph[module] = {m for m in (_resolve(n, modules) for n in names) if m is not None and m != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_modules_import_each_other():
    # The finder itself first: a direct cycle and a longer one, beside a module outside any cycle.
    toy = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c", "f"}, "f": set()}
    assert sorted(cycles(toy)) == [["a", "b"], ["c", "d", "e"]]
    graph = import_graph()
    assert len(graph) > 50 and "detx.components.data.records" in graph["detx.components.data.scan"]
    found = cycles(graph)
    assert not found, "modules that import each other (directly or round a longer cycle): " + "; ".join(
        " <-> ".join(component) for component in found
    )


def test_no_file_is_longer_than_400_lines():
    paths = sorted(p for folder in LENGTH_CHECKED for p in (ROOT / folder).rglob("*.py"))
    assert paths
    long = {str(p.relative_to(ROOT)): n for p in paths if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines (split them along a real seam): {long}"
