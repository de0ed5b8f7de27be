"""No import circle among codex_mcp modules.

Every ``import`` statement counts: at module level, under ``TYPE_CHECKING`` and inside functions (a
lazy import is still a dependency; it only hides the circle until the day someone moves it up). A
module importing ``codex_mcp.a.b`` depends on ``codex_mcp.a.b`` only, not on the package ``codex_mcp.a``
that Python also runs on the way: a package re-exporting its own submodules is not a design circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "codex_mcp"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    where: str  # path:line of the import statement


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def imported(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]
) -> Iterator[str]:
    """The codex_mcp modules one import statement names (the most specific existing module each)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = module.split(".") if is_package else module.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        # `from pkg import name`: name may be a submodule (an edge to it) or an attribute (to pkg).
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            yield name


def import_graph() -> dict[str, list[Edge]]:
    found = modules()
    known = set(found)
    graph: dict[str, list[Edge]] = {name: [] for name in found}
    for name, path in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in imported(node, name, path.name == "__init__.py", known):
                    if target != name and all(e.target != target for e in graph[name]):
                        where = f"{path.relative_to(ROOT)}:{node.lineno}"
                        graph[name].append(Edge(name, target, where))
    return graph


def components(graph: dict[str, list[Edge]]) -> list[set[str]]:
    """The groups of modules that import each other in a circle (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for edge in graph[node]:
            if edge.target not in index:
                visit(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            group: set[str] = set()
            while not group or node not in group:
                group.add(stack.pop())
            if len(group) > 1:
                found.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def find_cycles(graph: dict[str, list[Edge]]) -> list[list[Edge]]:
    """One circle per group of modules that import each other."""
    cycles = []
    for group in components(graph):
        inside = {n: [e for e in graph[n] if e.target in group] for n in group}
        cycle = find_cycle(inside)
        assert cycle is not None
        cycles.append(cycle)
    return cycles


def find_cycle(graph: dict[str, list[Edge]]) -> list[Edge] | None:
    """One import circle, as the edges that close it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[Edge] = []

    def visit(node: str) -> list[Edge] | None:
        state[node] = 1
        for edge in graph[node]:
            if state.get(edge.target) == 1:
                start = next((i for i, e in enumerate(path) if e.source == edge.target), len(path))
                return [*path[start:], edge]
            if edge.target not in state:
                path.append(edge)
                if (cycle := visit(edge.target)) is not None:
                    return cycle
                path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def describe(cycle: list[Edge]) -> str:
    chain = " -> ".join([cycle[0].source, *(e.target for e in cycle)])
    steps = "\n".join(f"  {e.source} imports {e.target}  ({e.where})" for e in cycle)
    return (
        f"import circle among {PACKAGE} modules:\n  {chain}\n{steps}\n"
        "Break it: move what both sides need into a lower module, or inject it from the composition "
        "root (codex_mcp/serve.py). A lazy import inside a function still counts."
    )


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert len(graph) > 20
    targets = {e.target for edges in graph.values() for e in edges}
    assert "codex_mcp.store.instances" in targets  # `from codex_mcp.store import instances as x`
    assert "codex_mcp.store" in targets  # `from codex_mcp.store import Database`
    # A circle is found and named, edge by edge; a module that only leads into it is not part of it.
    fake = {
        "codex_mcp.a": [Edge("codex_mcp.a", "codex_mcp.b", "a.py:1")],
        "codex_mcp.b": [Edge("codex_mcp.b", "codex_mcp.c", "b.py:2")],
        "codex_mcp.c": [Edge("codex_mcp.c", "codex_mcp.a", "c.py:3")],
    }
    (cycle,) = find_cycles({**fake, "codex_mcp.d": [Edge("codex_mcp.d", "codex_mcp.a", "d.py:4")]})
    assert "codex_mcp.a -> codex_mcp.b -> codex_mcp.c -> codex_mcp.a" in describe(cycle)
    assert "codex_mcp.c imports codex_mcp.a  (c.py:3)" in describe(cycle)


def test_relative_and_lazy_imports_are_edges() -> None:
    code = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from codex_mcp.app import App\n"
        "def f():\n    from . import git\n    import codex_mcp.http\n"
    )
    tree = ast.parse(code)
    known = set(modules())
    targets = {
        t
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for t in imported(node, "codex_mcp.server", False, known)
    }
    assert targets == {"codex_mcp.app", "codex_mcp.git", "codex_mcp.http"}


def test_no_import_circle() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "\n\n".join(describe(cycle) for cycle in cycles)
