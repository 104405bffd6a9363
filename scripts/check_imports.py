"""Fail when modules of Puente import each other in a cycle, one line per cycle.

    python scripts/check_imports.py

`make lint` runs it beside import-linter's contracts (pyproject.toml), which say who may
import whom but not that the module graph has no cycles: import-linter's own acyclic
contract compares packages as wholes, and Puente's domain packages legitimately use each
other's tables in both directions. See docs/decisions/0007-import-layering.md.

Every import counts, those inside functions and under TYPE_CHECKING too (grimp's graph as
it comes). They do not fail at import time, but they are dependencies all the same:
moving an import into a function to quieten a cycle hides the coupling instead of
removing it, so the way out of a cycle here is to move code to where it belongs.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "puente"


def main() -> int:
    sys.path.insert(0, str(ROOT / "src"))
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    cycles = sorted(set(cycles_of(graph)))
    for cycle in cycles:
        print("import cycle: " + describe(graph, cycle))
    return 1 if cycles else 0


def cycles_of(graph: grimp.ImportGraph) -> Iterator[tuple[str, ...]]:
    """The shortest cycle through each module that is on one, each starting at its
    smallest module name so that a cycle found from two of its modules is named once."""
    for component in strongly_connected(graph):
        for module in sorted(component):
            cycle = shortest_cycle(graph, module, component)
            start = cycle.index(min(cycle))
            yield cycle[start:] + cycle[:start]


def strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """Tarjan's components with more than one module (a module importing itself is not a
    layering question), iteratively so that a deep import chain cannot hit the recursion
    limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, imported = work[-1]
            step = next(imported, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph.find_modules_directly_imported_by(step)))))
                elif step in on_stack:
                    low[module] = min(low[module], index[step])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == module:
                        break
                if len(component) > 1:
                    components.append(component)
    return components


def shortest_cycle(graph: grimp.ImportGraph, start: str, component: set[str]) -> tuple[str, ...]:
    """Breadth first from `start` back to itself, inside its component (where a way back
    always exists)."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in component:
                continue
            if imported == start:
                path = [module]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return tuple(reversed(path))
            if imported not in came_from:
                came_from[imported] = module
                queue.append(imported)
    raise AssertionError(f"{start} is in a component but on no cycle")


def describe(graph: grimp.ImportGraph, cycle: tuple[str, ...]) -> str:
    """a (l.12) -> b (l.30) -> a: each module with the line where it imports the next."""
    steps = []
    for importer, imported in zip(cycle, cycle[1:] + cycle[:1], strict=True):
        details = graph.get_import_details(importer=importer, imported=imported)
        lines = ",".join(str(d["line_number"]) for d in details)
        steps.append(f"{importer} (l.{lines})" if lines else importer)
    return " -> ".join([*steps, cycle[0]])


if __name__ == "__main__":
    sys.exit(main())
