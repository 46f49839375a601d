"""Import structure: no import cycles between the modules of our packages.

Every import counts: those at the top of a module, those deferred inside functions and
those under ``if TYPE_CHECKING:``. Modules in a cycle cannot be understood, tested or moved
one without the other; break a cycle by moving what both need into a module below them, or
by inverting one of the dependencies. The layers between and inside the packages are
import-linter contracts (``[tool.importlinter]`` in pyproject.toml, run by ``lint-imports``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Set

import grimp

PACKAGES = ("sim", "datasets", "models", "pipeline")
"""All our packages: the import graph spans them all."""
ACYCLIC = PACKAGES
"""The packages whose modules must form no cycle."""


def strongly_connected(imports: Mapping[str, Set[str]]) -> list[set[str]]:
    """The groups of modules that all reach each other through imports (Tarjan's algorithm,
    iterative); a group of two or more modules is one or more cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in sorted(imports):
        if root in index:
            continue
        # Each frame: a module and the imports of it still to visit.
        frames = [(root, iter(sorted(imports[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while frames:
            module, pending = frames[-1]
            child = next((m for m in pending if m in imports), None)
            if child is None:
                frames.pop()
                if frames:
                    parent = frames[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == module:
                            break
                    groups.append(group)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                frames.append((child, iter(sorted(imports[child]))))
            elif child in on_stack:
                low[module] = min(low[module], index[child])
    return groups


def shortest_cycle(imports: Mapping[str, Set[str]], start: str, within: Set[str]) -> list[str]:
    """A shortest import path from ``start`` back to itself through modules in ``within``."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for child in sorted(imports[module] & within):
            if child == start:
                path = [module]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if child not in came_from:
                came_from[child] = module
                queue.append(child)
    raise ValueError(f"{start} is in no cycle within {sorted(within)}")


def import_cycles(imports: Mapping[str, Set[str]]) -> list[str]:
    """One line per group of modules in a cycle: an example cycle and the whole group."""
    lines = []
    for group in strongly_connected(imports):
        if len(group) > 1:
            cycle = " -> ".join(shortest_cycle(imports, min(group), group))
            lines.append(f"{cycle}  (modules in this cycle group: {', '.join(sorted(group))})")
    return sorted(lines)


def module_imports(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Which of their modules each module of ``packages`` imports, in any way."""
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=False, cache_dir=None)
    ours = {m for m in graph.modules if m.split(".")[0] in packages}
    return {m: graph.find_modules_directly_imported_by(m) & ours for m in ours}


def test_no_import_cycles():
    cycles = import_cycles(module_imports(ACYCLIC))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_cycle_finder_reports_each_cycle():
    imports = {
        "a": {"b"},
        "b": {"c", "d"},
        "c": {"a"},
        "d": {"e"},
        "e": {"d", "f"},
        "f": set(),
        "g": {"a", "f"},
    }
    assert import_cycles(imports) == [
        "a -> b -> c -> a  (modules in this cycle group: a, b, c)",
        "d -> e -> d  (modules in this cycle group: d, e)",
    ]
    assert import_cycles({"a": {"b"}, "b": set()}) == []
