"""How a run of the Master Agent ended: ``RunResult`` (the ``run --json`` document)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentfirm.domain.costs import summarize
from agentfirm.money import nano_to_float
from agentfirm.store.base import Store


@dataclass(frozen=True)
class RunResult:
    task_id: str
    status: str
    """``completed``, ``failed``, ``aborted``, ``rejected`` or ``budget_exhausted``."""
    persona: str | None
    deliverable: str | None
    repo: str | None
    budget_nano: int
    cost: dict[str, Any]
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "task_id": self.task_id,
            "status": self.status,
            "persona": self.persona,
            "deliverable": self.deliverable,
            "repo": self.repo,
            "budget_usd": nano_to_float(self.budget_nano),
            "cost": self.cost,
        }
        if self.error:
            out["error"] = self.error
        return out


async def result_of(
    store: Store, task_id: str, status: str, *, error: str | None = None
) -> RunResult:
    """The ``RunResult`` of ``task_id`` as the store has it now, ended as ``status``."""
    task = await store.get_task(task_id)
    ledger = await store.list_ledger(task_id)
    budget = await store.get_budget(task_id) if task.budget_nano else None
    return RunResult(
        task_id=task_id,
        status=status,
        persona=task.persona,
        deliverable=task.deliverable_path,
        repo=task.repo_path,
        budget_nano=budget.ceiling_nano if budget else task.budget_nano,
        cost=summarize(ledger),
        error=error,
    )
