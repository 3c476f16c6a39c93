"""The package's modules import each other in one direction: no circle, counting the imports
deferred into functions (they hide a circle from Python, not from a reader), and not counting
those under ``if TYPE_CHECKING:`` (annotations only)."""

from __future__ import annotations

import ast
from pathlib import Path

import massif

ROOT = Path(massif.__file__).parent


def _modules() -> dict[str, tuple[Path, list[str]]]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ["massif", *path.relative_to(ROOT).with_suffix("").parts]
        package = parts[:-1]
        if parts[-1] == "__init__":
            parts = package = parts[:-1]
        found[".".join(parts)] = (path, package)
    return found


def _type_checking_only(tree: ast.AST) -> set[ast.AST]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(ast.walk(child))
    return skipped


def import_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports (a package's ``__init__`` importing its own
    modules, and a module importing the package it is in, are not edges)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, (path, package) in modules.items():
        tree = ast.parse(path.read_text())
        skipped = _type_checking_only(tree)
        targets: set[str] = set()
        for node in ast.walk(tree):
            if node in skipped:
                continue
            if isinstance(node, ast.ImportFrom):
                base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
                module = ".".join(p for p in (base, node.module or "") if p)
                candidates = [module] + [f"{module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            for candidate in candidates:
                while candidate and candidate not in modules:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name and not name.startswith(candidate + ".") \
                        and not candidate.startswith(name + "."):
                    targets.add(candidate)
        graph[name] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_finder_sees_a_circle_held_by_a_deferred_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_massif_imports_itself_in_a_circle():
    graph = import_graph()
    assert len(graph) > 40
    assert circles(graph) == []


def test_the_ground_floor_imports_nothing_of_massif_but_errors():
    graph = import_graph()
    for module in ("massif.errors", "massif.process", "massif.devices", "massif.files"):
        assert graph[module] <= {"massif.errors"}, (module, graph[module])
