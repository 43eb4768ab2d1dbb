"""Whether the tools a task needs can be used, asked before anything is spent on it: before
planning (the persona's modules) and before its plan is put to anyone (the plan's modules).
A server that cannot start stops the task where it is, in one line per tool naming the fix and
the command that goes on once it is fixed (``domain.tools.stopped_for_tools``). A server that
starts says which of its tools may change things: the plan question says what becomes of each
(``domain.tools.tool_consents``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from agentfirm.domain.tools import ChangingTools, stopped_for_tools


class ToolProbe(Protocol):
    """What is asked of the tool catalog (``tools.catalog.ToolCatalog``)."""

    async def inspect(
        self, names: Iterable[str]
    ) -> tuple[list[str], dict[str, list[tuple[str, str]]]]: ...


async def unavailable_tools(catalog: ToolProbe | None, names: Iterable[str]) -> list[str]:
    """Why tools of ``names`` cannot be used, one line each (``ToolCatalog.unavailable``:
    servers started and stopped again); empty when all can be, or when there is no catalog."""
    problems, _changing = await _inspect(catalog, names)
    return problems


async def _inspect(
    catalog: ToolProbe | None, names: Iterable[str]
) -> tuple[list[str], ChangingTools]:
    wanted = sorted(set(names))
    if catalog is None or not wanted:
        return [], {}
    return await catalog.inspect(wanted)


async def check_tools(
    catalog: ToolProbe | None, task_id: str, names: Iterable[str], *, before: str, then: str
) -> ChangingTools:
    """Raise ``ConfigError`` when a tool of ``names`` cannot be used: the task stopped
    ``before`` a step, ``agentfirm THEN TASK`` going on once it is fixed. Else the tools of
    their servers that may change things."""
    problems, changing = await _inspect(catalog, names)
    if problems:
        raise stopped_for_tools(problems, task_id, before=before, then=then)
    return changing
