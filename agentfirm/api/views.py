"""The JSON shapes front ends show (ARCHITECTURE.md §11): one place builds them from the store, so
``agentfirm tasks list|show --json``, ``costs --json`` and the daemon's API can never disagree.

``tasks list`` and ``costs ID`` are built from plain rows (``Reads``), never models: the daemon
builds them from its store, a command in-process from a plain reader of the SQLite file that
loads no pydantic (``agentfirm.store.sqlite.reader``) — the same code, so the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentfirm.domain.costs import call_row, summarize_groups
from agentfirm.domain.status import FINAL_STATUSES, TaskStatus
from agentfirm.money import nano_to_float
from agentfirm.store.sql.access import no_task

if TYPE_CHECKING:
    from agentfirm.bus.base import Bus
    from agentfirm.store.base import Reads, Store


async def task_rows(
    store: Reads, *, limit: int = 50, driven: Callable[[str], bool] | None = None
) -> list[dict[str, Any]]:
    """``tasks list``: ``{task_id, status, persona, request, budget_usd, cost_usd, created_at,
    waiting_on}`` per task, newest first. ``waiting_on``: the kind of the question the task waits
    on (its oldest pending approval: ``clarify``, ``plan``, ``budget``, ``review``, ``failure``),
    else null — the one way to tell that an ``executing`` task waits on a failed module; or
    ``resume`` for a task that is under way but that nothing drives (``driven`` says which are
    driven: a run stopped by Ctrl-C or killed), which ``agentfirm resume`` picks up."""
    tasks = await store.task_heads(limit=limit)
    waiting = await _waiting_on(store, [t.id for t in tasks if t.status not in FINAL_STATUSES])
    if driven is not None:
        for task in tasks:
            if task.status in UNDER_WAY and task.id not in waiting and not driven(task.id):
                waiting[task.id] = "resume"
    rows = []
    for task in tasks:
        spent = await _spent(store, task.id)
        rows.append(
            {
                "task_id": task.id,
                "status": task.status,
                "persona": task.persona,
                "request": task.request,
                "budget_usd": nano_to_float(task.budget_nano),
                "cost_usd": nano_to_float(spent),
                "created_at": task.created_at.isoformat(),
                "waiting_on": waiting.get(task.id),
            }
        )
    return rows


UNDER_WAY = frozenset(
    {
        TaskStatus.RECEIVED,
        TaskStatus.CLASSIFIED,
        TaskStatus.CLARIFYING,
        TaskStatus.PLANNED,
        TaskStatus.APPROVED,
        TaskStatus.HANDED_OFF,
        TaskStatus.EXECUTING,
        TaskStatus.REVISING,
        TaskStatus.ASSEMBLING,
        TaskStatus.ABORTING,
    }
)
"""Statuses in which a task moves on by itself while something drives it (the others wait for
a human, or are final)."""


async def _spent(store: Reads, task_id: str) -> int:
    """What the task's ledger adds up to, from the store's running totals: summing its rows
    read every call the task made into memory, for every task listed."""
    groups, _ = await store.cost_groups(task_id)
    return sum(group.cost_nano for group in groups)


async def _waiting_on(store: Reads, task_ids: list[str]) -> dict[str, str]:
    """Task id → the kind of its oldest pending approval, for those that have one. Final tasks
    are left out by the caller: nobody answers a question a finished task left behind."""
    waiting: dict[str, str] = {}
    for task_id, kind in await store.pending_kinds(task_ids):
        waiting.setdefault(task_id, kind)
    return waiting


async def task_detail(store: Store, task_id: str) -> dict[str, Any]:
    """``tasks show``: the task (without its spec) plus ``modules``, ``transitions`` and its
    ``calls_in_flight`` (what a cancel would wait for). Raises
    ``NotFound`` for an unknown task."""
    task = await store.get_task(task_id)
    runs = await store.list_module_runs(task_id)
    transitions = await store.list_transitions(task_id)
    spent = await _spent(store, task_id)
    data = task.model_dump(mode="json", exclude={"spec"})
    data["task_id"] = data.pop("id")
    data["budget_usd"] = nano_to_float(data.pop("budget_nano"))
    data["cost_usd"] = nano_to_float(spent)
    data["calls_in_flight"] = await store.calls_in_flight(task_id)
    data["modules"] = [
        {
            "id": r.module_id,
            "wave": r.wave + 1,
            "tier": r.tier,
            "depends_on": r.depends_on,
            "status": str(r.status),
            "attempts": r.attempts,
            "provider": r.provider,
            "model": r.model,
            "started_at": r.started_at.isoformat() if r.started_at else None,
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            "cost_usd": nano_to_float(r.cost_nano),
        }
        for r in runs
    ]
    data["transitions"] = [
        {
            "from": str(t.from_status) if t.from_status else None,
            "to": str(t.to_status),
            "actor": t.actor,
            "reason": t.reason,
            "at": t.at.isoformat(),
        }
        for t in transitions
    ]
    return data


async def task_costs(
    store: Reads, task_id: str, *, calls: int = 50, after_seq: int = 0
) -> dict[str, Any]:
    """``costs ID``: totals by module, tier and provider from the store's running totals, and
    one page of calls: up to ``calls`` after ``after_seq``; ``next_after_seq`` continues it
    (None: that was the last). Memory does not grow with the ledger. Raises ``NotFound`` for an
    unknown task."""
    if not await store.has_task(task_id):
        raise no_task(task_id)
    groups, upper = await store.cost_groups(task_id)
    summary = summarize_groups(groups, upper_bound_nano=upper)
    page = await store.ledger_rows(task_id, after_seq=after_seq, limit=calls) if calls else []
    summary["calls"] = [call_row(entry) for _, entry in page]
    summary["next_after_seq"] = page[-1][0] if page and len(page) == calls else None
    return summary


async def task_transcript(
    store: Store, bus: Bus, task_id: str, module_id: str | None = None
) -> dict[str, Any]:
    """Every model turn and tool call of a task, or of one module, redacted, in order
    (``tasks transcript --json``; ``build_master.journal.transcript`` says the entries'
    shape). An unknown task is ``NotFound``, not an empty transcript."""
    from agentfirm.build_master.journal import transcript

    await store.get_task(task_id)
    entries = transcript(await bus.replay(task_id), module_id)
    return {"task_id": task_id, "module": module_id, "entries": entries}
