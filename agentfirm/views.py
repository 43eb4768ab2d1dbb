"""The JSON shapes front ends show (ARCHITECTURE.md §11): one place builds them from the store, so
``agentfirm tasks list|show --json``, ``costs --json`` and the daemon's API can never disagree."""

from __future__ import annotations

from typing import Any

from agentfirm.costs import summarize
from agentfirm.money import nano_to_float
from agentfirm.store.base import Store


async def task_rows(store: Store, *, limit: int = 50) -> list[dict[str, Any]]:
    """``tasks list``: ``{task_id, status, persona, request, budget_usd, cost_usd, created_at,
    waiting_on}`` per task, newest first. ``waiting_on``: the kind of the question the task waits
    on (its oldest pending approval: ``clarify``, ``plan``, ``budget``, ``review``, ``failure``),
    else null — the one way to tell that an ``executing`` task waits on a failed module."""
    tasks = await store.list_tasks(limit=limit)
    waiting = await _waiting_on(store, [t.id for t in tasks if not t.status.is_final])
    rows = []
    for task in tasks:
        spent = sum(e.cost_nano for e in await store.list_ledger(task.id))
        rows.append(
            {
                "task_id": task.id,
                "status": str(task.status),
                "persona": task.persona,
                "request": task.request,
                "budget_usd": nano_to_float(task.budget_nano),
                "cost_usd": nano_to_float(spent),
                "created_at": task.created_at.isoformat(),
                "waiting_on": waiting.get(task.id),
            }
        )
    return rows


async def _waiting_on(store: Store, task_ids: list[str]) -> dict[str, str]:
    """Task id → the kind of its oldest pending approval, for those that have one. Final tasks
    are left out by the caller: nobody answers a question a finished task left behind."""
    waiting: dict[str, str] = {}
    for approval in await store.list_pending_approvals(task_ids):
        waiting.setdefault(approval.task_id, approval.kind)
    return waiting


async def task_detail(store: Store, task_id: str) -> dict[str, Any]:
    """``tasks show``: the task (without its spec) plus ``modules`` and ``transitions``. Raises
    ``NotFound`` for an unknown task."""
    task = await store.get_task(task_id)
    runs = await store.list_module_runs(task_id)
    transitions = await store.list_transitions(task_id)
    spent = sum(e.cost_nano for e in await store.list_ledger(task_id))
    data = task.model_dump(mode="json", exclude={"spec"})
    data["task_id"] = data.pop("id")
    data["budget_usd"] = nano_to_float(data.pop("budget_nano"))
    data["cost_usd"] = nano_to_float(spent)
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


async def task_costs(store: Store, task_id: str) -> dict[str, Any]:
    """``costs ID``: totals by module, tier and provider, and every call. Raises ``NotFound`` for
    an unknown task."""
    await store.get_task(task_id)
    return summarize(await store.list_ledger(task_id), with_calls=True)
