"""The draft review: approve, revise (the named modules and everything downstream of them re-run
with the notes, every other output reused) or reject."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

from agentfirm.bus.base import Bus
from agentfirm.domain.models import (
    Approval,
    ApprovalDecision,
    ApprovalKind,
    ModuleStatus,
    Plan,
    Task,
    TaskSpec,
    TaskStatus,
)
from agentfirm.errors import BadInput
from agentfirm.ids import new_id
from agentfirm.master.decisions import Decider, ReviewDecision
from agentfirm.master.transitions import move
from agentfirm.store.base import Store

S = TaskStatus


def descendants(plan: Plan, named: Collection[str]) -> set[str]:
    """``named`` (all modules when empty) and every module downstream of them. Raises
    ``BadInput`` for a name the plan does not have."""
    known = {m.id for m in plan.modules}
    unknown = sorted(set(named) - known)
    if unknown:
        raise BadInput(
            f"unknown module(s) to revise: {', '.join(unknown)}",
            hint=f"use one of: {', '.join(sorted(known))}",
        )
    selected = set(named) if named else set(known)
    changed = True
    while changed:
        changed = False
        for module in plan.modules:
            if module.id not in selected and selected.intersection(module.depends_on):
                selected.add(module.id)
                changed = True
    return selected


async def mark_pending(store: Store, task_id: str, module_ids: Collection[str]) -> None:
    """Set the rows of ``module_ids`` pending, so the next build runs them again."""
    for run in await store.list_module_runs(task_id):
        if run.module_id in module_ids:
            await store.upsert_module_run(run.model_copy(update={"status": ModuleStatus.PENDING}))


async def record_decision(
    store: Store,
    task_id: str,
    kind: ApprovalKind,
    payload: dict[str, Any],
    decision: ApprovalDecision,
    *,
    actor: str,
    notes: str = "",
) -> None:
    """A decision a decider took without an approval row of its own (a terminal prompt,
    ``--yes``), recorded as a decided approval: the audit trail, and what a resume needs."""
    approval = Approval(id=new_id("ap"), task_id=task_id, kind=kind, payload=payload)
    await store.create_approval(approval)
    await store.decide_approval(approval.id, decision, actor=actor, notes=notes)


@dataclass
class Reviewer:
    store: Store
    bus: Bus
    decider: Decider
    redact: Callable[[str], str] | None = None
    """Scrubs the notes a decider returns as typed (a terminal prompt); see ``MasterAgent``."""

    async def review(self, task: Task, spec: TaskSpec, markdown: str) -> str:
        """Ask for the draft's review and record the decision (an approval row); returns
        ``approved``, ``revise`` or ``rejected``. A revision marks the modules to re-run pending
        BEFORE the task moves, so a crash cannot lose it."""
        review = await self.decider.review_draft(task, markdown)
        if self.redact is not None:
            review = replace(review, notes=self.redact(review.notes))
        if not getattr(self.decider, "records_approvals", False):
            await record_decision(
                self.store,
                task.id,
                "review",
                {"modules": list(review.modules)},
                _DECISION[review.kind],
                actor=self.decider.actor,
                notes=review.notes,
            )
        if review.kind == "approve":
            await self._move(task.id, S.ASSEMBLING, review.notes or "draft approved")
            return "approved"
        if review.kind == "reject":
            await self._move(task.id, S.REJECTED, review.notes or "draft rejected")
            return "rejected"
        rerun = descendants(spec.plan, review.modules)
        await mark_pending(self.store, task.id, rerun)
        await self._move(task.id, S.REVISING, f"re-run {', '.join(sorted(rerun))}")
        return "revise"

    async def revision_notes(self, task_id: str) -> str:
        """The notes of the latest revision, for the modules a revision set pending."""
        reviews = [a for a in await self.store.list_approvals(task_id) if a.kind == "review"]
        return reviews[-1].notes if reviews and reviews[-1].decision == "revise" else ""

    async def _move(self, task_id: str, to: TaskStatus, reason: str) -> None:
        await move(self.store, self.bus, task_id, to, actor=self.decider.actor, reason=reason)


_DECISION: dict[str, ApprovalDecision] = {
    "approve": "approved",
    "reject": "rejected",
    "revise": "revise",
}


__all__ = ["ReviewDecision", "Reviewer", "descendants", "mark_pending", "record_decision"]
