"""Approvals as a core API: the Master Agent's decision points become approval rows any front end
(CLI, TUI, Slack, the daemon's HTTP API) can list and decide, from any process.

``StoreDecider`` implements ``Decider`` by persisting: each decision point creates an approval row
(kind ``plan``, ``budget`` or ``review``) whose payload carries what a front end shows, publishes
``approval.requested`` and waits. ``decide`` records the decision with ``store.decide_approval``,
publishes ``approval.decided`` with its parameters (a budget, modules to revise: the approval row
has no column for them) and wakes the waiter at once; a waiter in another process sees the row
change within ``poll_interval``.

After a restart the task asks again; the row of that kind created since the task entered its
waiting status is reused, pending or already decided, so a decision is never asked twice nor lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, get_args

import structlog

from agentfirm.build.scheduler import waves
from agentfirm.bus.base import Bus
from agentfirm.costs import summarize
from agentfirm.domain import (
    Approval,
    ApprovalDecision,
    ApprovalKind,
    Plan,
    Task,
    TaskStatus,
)
from agentfirm.errors import BadInput, NotFound
from agentfirm.ids import new_id
from agentfirm.master.decisions import AutoDecider, BudgetDecision, PlanDecision, ReviewDecision
from agentfirm.master.estimate import Estimate
from agentfirm.money import nano_to_float, usd_to_nano
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)

_DECISIONS: dict[str, ApprovalDecision] = {
    d: d for d in get_args(ApprovalDecision) if d != "pending"
}
DECISIONS: tuple[str, ...] = tuple(_DECISIONS)
"""What ``decide`` accepts: ``approved``, ``revise``, ``rejected``, ``aborted``."""
MAX_BUDGET_USD = Decimal(1_000_000)
_DELIVERABLE_ID = "_deliverable"
# Every payload written here carries a question; rows without one (the Master Agent's own
# record of a review) are never reused as a pending question.
_QUESTION = "question"
_WAITS_IN: dict[str, TaskStatus] = {
    "plan": TaskStatus.AWAITING_PLAN_APPROVAL,
    "budget": TaskStatus.AWAITING_BUDGET,
    "review": TaskStatus.AWAITING_REVIEW,
}
_ALLOWED: dict[str, frozenset[str]] = {
    "plan": frozenset({"approved", "rejected", "aborted"}),
    "budget": frozenset({"approved", "rejected", "aborted"}),
    "review": frozenset({"approved", "revise", "rejected", "aborted"}),
}


@dataclass(frozen=True)
class Outcome:
    """A decided approval with its parameters."""

    decision: ApprovalDecision
    actor: str
    notes: str = ""
    budget_nano: int | None = None
    modules: tuple[str, ...] = ()

    def because(self) -> str:
        return f"{self.decision} by {self.actor}" + (f": {self.notes}" if self.notes else "")


def parse_budget(value: Decimal | float | str | None) -> int | None:
    """A positive USD amount (at most ``MAX_BUDGET_USD``) → nano-dollars; ``None`` passes.
    Raises ``BadInput`` for anything else."""
    if value is None:
        return None
    try:
        usd = Decimal(str(value).strip().lstrip("$"))
    except (InvalidOperation, ValueError):
        usd = Decimal("NaN")
    if not usd.is_finite() or not 0 < usd <= MAX_BUDGET_USD:
        raise BadInput(
            f"budget {value!r} is not a positive amount of at most ${MAX_BUDGET_USD}",
            hint="e.g. budget_usd 2.50",
        )
    return usd_to_nano(usd)


def _round_up_to_cent(nano: int) -> int:
    return -(-nano // 10_000_000) * 10_000_000


def _suggested_ceiling(info: dict[str, Any]) -> int:
    """Half as much again, or at least room for the call that did not fit."""
    ceiling = usd_to_nano(Decimal(str(info.get("ceiling_usd", 0))))
    needed = usd_to_nano(Decimal(str(info.get("needed_usd", 0))))
    return _round_up_to_cent(ceiling + max(needed, ceiling // 2, 10_000_000))


class StoreDecider:
    """``Decider`` that persists every question as an approval row and waits for ``decide``.

    ``actor`` names the host in the transition log (``daemon``); the human who decided is in the
    approval row and in the transition's reason. A request no persona clearly matches is bad
    input, as under ``--yes``: there is no approval kind for choosing a persona."""

    records_approvals = True
    """Its questions are approval rows already: the Master Agent must not add its own."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        *,
        actor: str = "daemon",
        poll_interval: float = 1.0,
        details_grace: float = 5.0,
    ) -> None:
        self.store = store
        self.bus = bus
        self.actor = actor
        self.poll_interval = poll_interval
        self.details_grace = details_grace
        self._wakers: dict[str, asyncio.Event] = {}
        self._outcomes: dict[str, Outcome] = {}
        self._task_of: dict[str, str] = {}

    # ------------------------------------------------------------------ Decider
    async def choose_persona(
        self, request: str, candidates: Sequence[str], scores: dict[str, float]
    ) -> str:
        return await AutoDecider().choose_persona(request, candidates, scores)

    async def approve_plan(
        self, task: Task, plan: Plan, estimate: Estimate, budget_nano: int
    ) -> PlanDecision:
        levels = plan.waves or waves(plan.modules)
        budget = nano_to_float(budget_nano)
        payload = {
            _QUESTION: (
                f"Approve the plan — {len(plan.modules)} modules in {len(levels)} waves, expected "
                f"${nano_to_float(estimate.expected_nano):.4f}, worst case "
                f"${nano_to_float(estimate.worst_nano):.4f} — at a budget of ${budget:.2f}?"
            ),
            "persona": task.persona,
            "modules": [
                m.model_dump(mode="json", include={"id", "title", "tier", "depends_on"})
                for m in plan.modules
            ],
            "waves": levels,
            "estimate": estimate.to_json(),
            "suggested_budget_usd": nano_to_float(estimate.suggested_budget_nano()),
            "budget_usd": budget,
        }
        outcome = await self._ask(task.id, "plan", payload)
        if outcome.decision == "approved":
            return PlanDecision(True, outcome.budget_nano or budget_nano, outcome.because())
        return PlanDecision(False, budget_nano, "plan " + outcome.because())

    async def budget_exceeded(self, task: Task, info: dict[str, Any]) -> BudgetDecision:
        spend = summarize(await self.store.list_ledger(task.id))
        suggested = _suggested_ceiling(info)
        payload = {
            _QUESTION: (
                f"Budget reached: spent ${float(info.get('spent_usd', 0)):.4f} of "
                f"${float(info.get('ceiling_usd', 0)):.4f}. Raise the ceiling (suggested "
                f"${nano_to_float(suggested):.2f}) or abort?"
            ),
            "spent_usd": float(info.get("spent_usd", spend["total_usd"])),
            "ceiling_usd": float(info.get("ceiling_usd", 0)),
            "needed_usd": float(info.get("needed_usd", 0)),
            "suggested_ceiling_usd": nano_to_float(suggested),
            "by_module": spend["by_module"],
            "by_tier": spend["by_tier"],
            "by_provider": spend["by_provider"],
        }
        outcome = await self._ask(task.id, "budget", payload)
        if outcome.decision == "approved":
            return BudgetDecision(outcome.budget_nano or suggested, outcome.because())
        return BudgetDecision(None, outcome.because())

    async def review_draft(self, task: Task, draft_markdown: str) -> ReviewDecision:
        draft = (await self.store.latest_artifacts(task.id)).get(_DELIVERABLE_ID)
        payload = {
            _QUESTION: "Review the draft: approve it, revise (name modules to re-run), or reject?",
            "draft_markdown": draft_markdown,
            "artifact": {"module_id": _DELIVERABLE_ID, "version": draft.version if draft else None},
            "modules": [m.id for m in task.spec.plan.modules] if task.spec else [],
        }
        outcome = await self._ask(task.id, "review", payload)
        if outcome.decision == "approved":
            return ReviewDecision("approve", outcome.because())
        if outcome.decision == "revise":
            return ReviewDecision("revise", outcome.notes, outcome.modules)
        return ReviewDecision("reject", "draft " + outcome.because())

    # ------------------------------------------------------------------ the front ends' API
    async def pending(self, task_id: str) -> list[Approval]:
        """The task's undecided questions, oldest first. ``NotFound`` for an unknown task."""
        await self.store.get_task(task_id)
        return [a for a in await self.store.list_approvals(task_id) if a.decision == "pending"]

    async def find(self, approval_id: str) -> Approval:
        """The approval with this id, from any task. Raises ``NotFound``."""
        task_ids = [self._task_of[approval_id]] if approval_id in self._task_of else []
        if not task_ids:
            task_ids = [t.id for t in await self.store.list_tasks(limit=100_000)]
        for task_id in task_ids:
            for approval in await self.store.list_approvals(task_id):
                if approval.id == approval_id:
                    return approval
        raise NotFound(
            f"approval {approval_id} not found",
            hint="list a task's approvals with GET /tasks/ID/approvals",
        )

    async def decide(
        self,
        approval_id: str,
        decision: str,
        *,
        actor: str,
        notes: str = "",
        budget_usd: Decimal | float | str | None = None,
        modules: Collection[str] = (),
    ) -> Approval:
        """Record a human's decision and wake the task waiting on it; returns the decided row.

        ``decision``: ``approved``, ``rejected`` or ``aborted`` for every kind, ``revise`` for a
        review. ``budget_usd``: the ceiling for an approved plan (default: the one proposed) or
        the new ceiling for an approved budget question (above the current one; default: the
        suggested one). ``modules``: the modules a revision re-runs (default: all). Raises
        ``BadInput`` (``NotFound`` for an unknown id) for a decision that cannot be taken, before
        anything is written."""
        if decision not in DECISIONS:
            raise BadInput(
                f"decision {decision!r} is not one of {', '.join(DECISIONS)}",
                hint="approve with 'approved', or 'rejected' / 'revise'",
            )
        budget_nano = parse_budget(budget_usd)
        approval = await self.find(approval_id)
        names = tuple(dict.fromkeys(m.strip() for m in modules if m.strip()))
        self._check(approval, decision, budget_nano, names)
        task = await self.store.get_task(approval.task_id)
        if task.status.is_final:
            raise BadInput(f"task {task.id} is already {task.status}: nothing to decide")
        decided = await self.store.decide_approval(
            approval_id, _DECISIONS[decision], actor=actor, notes=notes
        )
        outcome = Outcome(decided.decision, actor, notes, budget_nano, names)
        await self.bus.publish(
            decided.task_id,
            "approval.decided",
            {
                "approval_id": approval_id,
                "kind": decided.kind,
                "decision": decision,
                "actor": actor,
                "notes": notes,
                "budget_nano": budget_nano,
                "budget_usd": nano_to_float(budget_nano) if budget_nano is not None else None,
                "modules": list(names),
            },
        )
        log.info(
            "approval.decided",
            task_id=decided.task_id,
            approval_id=approval_id,
            kind=decided.kind,
            decision=decision,
            actor=actor,
        )
        self._outcomes[approval_id] = outcome
        waker = self._wakers.get(approval_id)
        if waker is not None:
            waker.set()
        return decided

    @staticmethod
    def _check(
        approval: Approval, decision: str, budget_nano: int | None, modules: tuple[str, ...]
    ) -> None:
        where = f"approval {approval.id} ({approval.kind})"
        if approval.decision != "pending":
            raise BadInput(
                f"{where} was already decided: {approval.decision} by {approval.actor}",
                hint="a new question needs a new approval",
            )
        allowed = _ALLOWED.get(approval.kind)
        if allowed is not None and decision not in allowed:
            raise BadInput(
                f"{where} cannot be {decision}", hint="use " + ", ".join(sorted(allowed))
            )
        if budget_nano is not None:
            if approval.kind not in ("plan", "budget") or decision != "approved":
                raise BadInput(f"{where}: a budget goes only with approving a plan or a budget")
            ceiling = usd_to_nano(Decimal(str(approval.payload.get("ceiling_usd", 0))))
            if approval.kind == "budget" and budget_nano <= ceiling:
                raise BadInput(
                    f"{where}: the new ceiling must be above the current "
                    f"${nano_to_float(ceiling):.4f}",
                    hint=f"e.g. {approval.payload.get('suggested_ceiling_usd')}",
                )
        if modules:
            if decision != "revise":
                raise BadInput(f"{where}: modules go only with a revise decision")
            known = approval.payload.get("modules") or []
            unknown = sorted(set(modules) - set(known))
            if unknown:
                raise BadInput(
                    f"{where}: unknown module(s) to revise: {', '.join(unknown)}",
                    hint="use one of: " + ", ".join(known),
                )

    # ------------------------------------------------------------------ asking and waiting
    async def _ask(self, task_id: str, kind: ApprovalKind, payload: dict[str, Any]) -> Outcome:
        approval = await self.current(task_id, kind)
        if approval is None:
            approval = Approval(id=new_id("ap"), task_id=task_id, kind=kind, payload=payload)
            await self.store.create_approval(approval)
            await self.bus.publish(
                task_id,
                "approval.requested",
                {"approval_id": approval.id, "kind": kind, _QUESTION: payload[_QUESTION]},
            )
            log.info("approval.requested", task_id=task_id, approval_id=approval.id, kind=kind)
        self._task_of[approval.id] = task_id
        return await self._wait(approval)

    async def current(self, task_id: str, kind: ApprovalKind) -> Approval | None:
        """The question of ``kind`` asked since the task last entered the status that waits on
        it (pending first, else decided — a decision taken while nobody was waiting), or None
        when none was asked yet. A task asking again after a restart gets this row back."""
        since = await self._waiting_since(task_id, _WAITS_IN[kind])
        rows = [
            a
            for a in await self.store.list_approvals(task_id)
            if a.kind == kind
            and _QUESTION in a.payload
            and (since is None or a.created_at >= since)
        ]
        pending = [a for a in rows if a.decision == "pending"]
        candidates = pending or rows
        return candidates[-1] if candidates else None

    async def _waiting_since(self, task_id: str, status: TaskStatus) -> datetime | None:
        for transition in reversed(await self.store.list_transitions(task_id)):
            if transition.to_status is status:
                return transition.at
        return None

    async def _wait(self, approval: Approval) -> Outcome:
        waker = self._wakers.setdefault(approval.id, asyncio.Event())
        try:
            while True:
                current = await self._row(approval)
                if current.decision != "pending":
                    return await self._outcome(current)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval):
                        await waker.wait()
        finally:
            self._wakers.pop(approval.id, None)

    async def _row(self, approval: Approval) -> Approval:
        for row in await self.store.list_approvals(approval.task_id):
            if row.id == approval.id:
                return row
        raise NotFound(f"approval {approval.id} vanished from task {approval.task_id}")

    async def _outcome(self, row: Approval) -> Outcome:
        """The decision with its parameters: from this process's ``decide``, else from the
        ``approval.decided`` event another process publishes right after deciding."""
        deadline = asyncio.get_running_loop().time() + self.details_grace
        while True:
            if row.id in self._outcomes:
                return self._outcomes.pop(row.id)
            for event in reversed(await self.bus.replay(row.task_id)):
                if event.type == "approval.decided" and event.payload.get("approval_id") == row.id:
                    p = event.payload
                    budget = p.get("budget_nano")
                    return Outcome(
                        row.decision,
                        str(p.get("actor") or row.actor),
                        str(p.get("notes") or ""),
                        budget if isinstance(budget, int) else None,
                        tuple(str(m) for m in p.get("modules") or ()),
                    )
            if asyncio.get_running_loop().time() >= deadline:
                # The decider died between its two writes: the decision stands, its parameters
                # fall back to the defaults (proposed budget, all modules).
                log.warning("approval.details_missing", task_id=row.task_id, approval_id=row.id)
                return Outcome(row.decision, row.actor or "unknown", row.notes)
            await asyncio.sleep(self.poll_interval / 4)
