"""Module graphs: the checks (unique ids, known dependencies, no cycles) and the dependency levels
people call waves — one implementation for persona files, adapted plans and the scheduler."""

from __future__ import annotations

import graphlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from agentfirm.errors import BadInput


class ModuleLike(Protocol):
    """What graph checks need of a module: persona templates and plan modules both fit."""

    @property
    def id(self) -> str: ...

    @property
    def depends_on(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class GraphProblem:
    """One problem of a module graph: which module (its index), which of its dependencies
    (``None`` for the module's id itself), what is wrong and how to fix it."""

    index: int
    dependency: int | None
    what: str
    fix: str


def graph_problems(modules: Sequence[ModuleLike]) -> list[GraphProblem]:
    """Every problem of the graph, in module order; empty when it is valid."""
    problems: list[GraphProblem] = []
    first_index: dict[str, int] = {}
    for index, module in enumerate(modules):
        if module.id in first_index:
            problems.append(
                GraphProblem(
                    index,
                    None,
                    f"module id '{module.id}' is used twice (a duplicate)",
                    "rename this module: ids must be unique",
                )
            )
        else:
            first_index[module.id] = index
    for index, module in enumerate(modules):
        for position, dep in enumerate(module.depends_on):
            if dep == module.id:
                what = f"module '{dep}' depends on itself"
                fix = f"remove '{dep}' from its depends_on"
            elif dep not in first_index:
                others = [m for m in first_index if m != module.id]
                what = f"module '{module.id}' depends on unknown module '{dep}'"
                fix = "use one of: " + (", ".join(others) or "(no other modules)")
            else:
                continue
            problems.append(GraphProblem(index, position, what, fix))
    cycle = _find_cycle(modules, set(first_index))
    if cycle:
        # graphlib lists each node before the node that depends on it; reversed, each depends on
        # the next, which is how people read "a depends on b".
        chain = list(reversed(cycle))
        start = first_index[chain[0]]
        position = list(modules[start].depends_on).index(chain[1])
        problems.append(
            GraphProblem(
                start,
                position,
                "modules form a dependency cycle: "
                + " → ".join(chain)
                + " (each depends on the next)",
                "remove one of these dependencies",
            )
        )
    return problems


def check_graph(modules: Sequence[ModuleLike]) -> None:
    """Raise ``BadInput`` with the first problem of the graph, if it has one."""
    problems = graph_problems(modules)
    if problems:
        raise BadInput(f"invalid plan: {problems[0].what}", hint=problems[0].fix)


def prepared_sorter(modules: Sequence[ModuleLike]) -> graphlib.TopologicalSorter[str]:
    """A prepared sorter over a graph; raises ``BadInput`` if the graph is invalid."""
    check_graph(modules)
    sorter = graphlib.TopologicalSorter({m.id: list(m.depends_on) for m in modules})
    sorter.prepare()
    return sorter


def waves(modules: Sequence[ModuleLike]) -> list[list[str]]:
    """Module ids grouped by dependency level: the first wave has no dependencies, each later one
    depends on the one before at the deepest; each wave keeps the modules' order. Raises
    ``BadInput`` if the graph is invalid."""
    sorter = prepared_sorter(modules)
    order = {m.id: i for i, m in enumerate(modules)}
    levels: list[list[str]] = []
    # Releasing a whole level before marking any of it done makes each batch one level.
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=order.__getitem__)
        levels.append(ready)
        sorter.done(*ready)
    return levels


def _find_cycle(modules: Sequence[ModuleLike], known: set[str]) -> list[str]:
    graph: dict[str, list[str]] = {}
    for m in modules:
        # A duplicate id is reported on its own; its dependencies would only blur the cycle.
        graph.setdefault(m.id, [d for d in m.depends_on if d in known and d != m.id])
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        return list(err.args[1])
    return []
