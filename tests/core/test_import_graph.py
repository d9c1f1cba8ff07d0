"""No import cycle in portal/: every import counts, also one inside a function (a cycle hidden there
still makes one module need the other to be loaded first)."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (ROOT / "portal").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(source: str, package: str, modules: Iterable[str]) -> set[str]:
    """The modules of `modules` that `source` (a module of `package`) imports, at any depth of
    the code; `from package import name` counts as the submodule when `name` is one."""
    modules = set(modules)

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    targets = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets |= {known(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.add(full if full in modules else known(base))
    return targets - {None}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        graph[module] = imports_of(path.read_text(), package, modules) - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while (member := stack.pop()) != node:
                component.add(member)
            if component:
                found.append(component | {node})

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_finder_sees_imports_inside_functions_and_relative_ones():
    source = (
        "from portal.api import errors\n"
        "def render():\n"
        "    from portal.api.api import api\n"
        "    from .routers import common\n"
    )
    modules = ["portal.api", "portal.api.api", "portal.api.errors", "portal.api.routers.common"]
    found = imports_of(source, "portal.api", modules)
    assert found == {"portal.api.errors", "portal.api.api", "portal.api.routers.common"}
    graph = {"portal.api.api": {"portal.api.errors"}, "portal.api.errors": found, "portal.api": set()}
    graph["portal.api.routers.common"] = set()
    assert cycles(graph) == [{"portal.api.api", "portal.api.errors"}]
