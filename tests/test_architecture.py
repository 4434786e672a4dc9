"""Module layering, read from the source (ast; no detx module is imported): layers, no cycles, no long files.

Imports point one way, down the layers of docs/architecture.md's table (listed
there from the bottom up, as in LAYERS): a module imports its own layer and the
ones below it. A cycle means two ideas have no clear home (each module needs
the other). A function-level import only hides either from Python, not from the
reader, so those count too, as do imports under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The folders setup.py installs as detx.<folder>; their modules must not import each other in a cycle.
PACKAGES = ("pipeline", "components", "serving")
# docs/architecture.md's layers, lowest first, as module prefixes (the first that matches wins): a module may
# import its own layer and those listed before it. The file-system helpers sit below the data code's span store.
LAYERS = (
    ("file-system helpers", ("detx.components.storage",)),
    ("data code", ("detx.components.data",)),
    ("modeling", ("detx.components.modeling",)),
    ("metrics", ("detx.components.evaluation",)),
    ("TFX components", ("detx.components",)),
    ("serving", ("detx.serving",)),
    ("orchestration and CLI", ("detx.pipeline",)),
)
# "Plain modules that know nothing of TFX or Beam": these layers import neither, nor TFX's own libraries.
PLAIN = ("data code", "modeling")
TFX_AND_BEAM = (
    "tfx",
    "tfx_bsl",
    "apache_beam",
    "tensorflow_data_validation",
    "tensorflow_model_analysis",
    "ml_metadata",
)
# Every Python file of these folders must stay readable in one sitting.
LENGTH_CHECKED = (*PACKAGES, "bench", "tests", "testing")
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


def _imports(tree: ast.Module, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """(dotted name, line) of every name an import anywhere in the tree may refer to: `from a import b` gives `a.b`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                anchor = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            yield from ((f"{base}.{alias.name}", node.lineno) for alias in node.names)


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> Iterator[str]:
    """Every dotted name an import anywhere in the tree may refer to."""
    return (name for name, _ in _imports(tree, module, is_package))


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


def layer(module: str) -> int | None:
    """The index in LAYERS of a detx module's layer, or None for a module outside them."""
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def layer_violations(imports: dict[str, list[tuple[str, int]]]) -> list[str]:
    """Each import that points up the layers, or brings TFX or Beam into a plain layer, as `module:line ...`.

    Args:
        imports: module to the (imported module or library name, line) of each of its imports.
    """
    found = []
    plain = {i for i, (name, _) in enumerate(LAYERS) if name in PLAIN}
    for module, targets in sorted(imports.items()):
        own = layer(module)
        if own is None:
            continue
        for target, line in targets:
            other = layer(target)
            where = f"{module}:{line} ({LAYERS[own][0]})"
            if other is not None and other > own:
                found.append(f"{where} imports {target} ({LAYERS[other][0]}), a layer above it")
            if own in plain and target.split(".")[0] in TFX_AND_BEAM:
                found.append(f"{where} imports {target}: {LAYERS[own][0]} knows nothing of TFX or Beam")
    return found


def layered_imports() -> dict[str, list[tuple[str, int]]]:
    """Module of PACKAGES to each import: the module of PACKAGES it names, else the name itself (a library)."""
    modules = _modules()
    imports = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        found = _imports(tree, module, path.name == "__init__.py")
        imports[module] = [(_resolve(name, modules) or name, line) for name, line in found]
    return imports


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


def test_imports_point_down_the_layers():
    # The checker itself first: the same imports (at the top, under TYPE_CHECKING, inside a function) in three
    # layers. Orchestration may import all of them, a TFX component all but the two layers above it, and
    # modeling none of the detx ones nor Beam.
    source = """
from typing import TYPE_CHECKING
from detx.components.model_store import ModelStore
if TYPE_CHECKING:
    from detx.pipeline.config import PipelineConfig
def push():
    from detx.serving import client
    import apache_beam
"""
    toy = {
        module: list(_imports(ast.parse(source.lstrip()), module, False))
        for module in ("detx.components.pusher.toy", "detx.components.modeling.toy", "detx.pipeline.toy")
    }
    assert layer_violations(toy) == [
        "detx.components.modeling.toy:2 (modeling) imports detx.components.model_store.ModelStore "
        "(TFX components), a layer above it",
        "detx.components.modeling.toy:4 (modeling) imports detx.pipeline.config.PipelineConfig "
        "(orchestration and CLI), a layer above it",
        "detx.components.modeling.toy:6 (modeling) imports detx.serving.client (serving), a layer above it",
        "detx.components.modeling.toy:7 (modeling) imports apache_beam: modeling knows nothing of TFX or Beam",
        "detx.components.pusher.toy:4 (TFX components) imports detx.pipeline.config.PipelineConfig "
        "(orchestration and CLI), a layer above it",
        "detx.components.pusher.toy:6 (TFX components) imports detx.serving.client (serving), a layer above it",
    ]
    imports = layered_imports()
    # Every module has a layer, and the table's rows are all populated.
    assert {layer(module) for module in imports} == set(range(len(LAYERS)))
    assert ("detx.components.storage", 30) in imports["detx.components.data.spans"]
    found = layer_violations(imports)
    assert not found, "imports against docs/architecture.md's layers:\n" + "\n".join(found)


def test_no_file_is_longer_than_400_lines():
    paths = sorted(p for folder in LENGTH_CHECKED for p in (ROOT / folder).rglob("*.py"))
    assert paths
    long = {str(p.relative_to(ROOT)): n for p in paths if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines (split them along a real seam): {long}"
