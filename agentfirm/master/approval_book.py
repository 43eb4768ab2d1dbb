"""The approval book: asking a question as an approval row and waiting for its decision, and
deciding it from any front end, in any process. ``approvals.StoreDecider`` asks its questions
through it; the rules of what may be decided how are in ``approval_rules``.

``decide`` records the decision with ``store.decide_approval``, publishes ``approval.decided``
with its parameters (a budget, modules to revise, answers: the approval row has no column for
them) and wakes the waiter at once; a waiter in another process sees the row change within
``poll_interval``. After a restart the task asks again and gets the row it asked before back
(see ``current``), pending or already decided, so a decision is never asked twice nor lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog

from agentfirm.bus.base import Bus
from agentfirm.domain.decision import Decision
from agentfirm.domain.models import Approval, ApprovalKind, TaskStatus
from agentfirm.domain.tools import tool_allowed
from agentfirm.errors import BadInput, NotFound
from agentfirm.ids import new_id
from agentfirm.master.approval_rules import (
    DECISION_OF,
    DECISIONS,
    QUESTION,
    WAITS_IN,
    Outcome,
    check_decision,
)
from agentfirm.master.decisions import AUTO_ACTOR, AUTO_DECISIONS, AUTO_NOTE, uncovered_refusal
from agentfirm.money import nano_to_float, parse_budget_nano
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)
Match = Callable[[Approval], bool]


class ApprovalBook:
    """Approval rows of every task, asked and decided. ``actor`` names who asks (the host, in
    the transition log); ``poll_interval`` is how soon a decision taken in another process is
    seen; ``details_grace`` how long to wait for the parameters of such a decision. ``redact``
    (the App's redactor) scrubs what a human typed into a decision before anything keeps it."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        *,
        redact: Callable[[str], str],
        actor: str = "daemon",
        poll_interval: float = 1.0,
        details_grace: float = 5.0,
    ) -> None:
        self.store = store
        self.bus = bus
        self.redact = redact
        self.actor = actor
        self.poll_interval = poll_interval
        self.details_grace = details_grace
        self._wakers: dict[str, asyncio.Event] = {}
        self._outcomes: dict[str, Outcome] = {}
        self._task_of: dict[str, str] = {}

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
        decision: str | Decision,
        *,
        actor: str,
        notes: str = "",
        budget_usd: Decimal | float | str | None = None,
        modules: Collection[str] = (),
        answers: Mapping[str, str] | None = None,
    ) -> Approval:
        """Record a human's decision and wake the task waiting on it; returns the decided row.
        ``decision``: a ``Decision`` (the answer every front end gives), or its word with the
        same fields as keywords.

        The word: ``approved``, ``rejected`` or ``aborted`` for every kind, ``revise`` for a
        review, ``retry`` or ``skip`` for a failure (``approved`` retries it, ``rejected`` aborts).
        ``budget_usd``: the ceiling for an approved plan (default: the one proposed) or the new
        ceiling for an approved budget question (above the current one; default: the suggested
        one). ``modules``: the modules a revision re-runs (default: all). ``answers``: question
        id → answer for an approved ``clarify`` (unanswered questions are assumed). Raises
        ``BadInput`` (``NotFound`` for an unknown id) for a decision that cannot be taken, before
        anything is written."""
        if isinstance(decision, Decision):
            answer = decision
        else:
            answer = Decision(decision, notes, budget_usd, tuple(modules), answers)
        # Every front end's answer enters here: a key typed into notes or answers goes no further.
        answer = answer.redacted(self.redact)
        decision, notes, budget_usd = answer.decision, answer.notes, answer.budget_usd
        modules, answers = answer.modules, answer.answers
        if decision not in DECISIONS:
            raise BadInput(
                f"decision {decision!r} is not one of {', '.join(DECISIONS)}",
                hint="approve with 'approved', or 'rejected' / 'revise'",
            )
        budget_nano = parse_budget_nano(budget_usd)
        approval = await self.find(approval_id)
        names = tuple(dict.fromkeys(m.strip() for m in modules if m.strip()))
        replies = {str(k): str(v) for k, v in (answers or {}).items()}
        check_decision(approval, decision, budget_nano, names, replies)
        task = await self.store.get_task(approval.task_id)
        if task.status.is_final:
            raise BadInput(f"task {task.id} is already {task.status}: nothing to decide")
        decided = await self.store.decide_approval(
            approval_id, DECISION_OF[decision], actor=actor, notes=notes
        )
        outcome = Outcome(decided.decision, actor, notes, budget_nano, names, replies)
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
                "answers": replies,
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

    # ------------------------------------------------------------------ asking and waiting
    async def ask(
        self,
        task_id: str,
        kind: ApprovalKind,
        payload: dict[str, Any],
        *,
        same: Match | None = None,
    ) -> tuple[Approval, Outcome]:
        """Ask ``payload`` (which carries a ``question``) as an approval of ``kind`` and wait for
        its decision; returns the row asked (a row asked before, see ``current``) and the
        outcome. ``same``: which earlier rows count as this question (default: any of ``kind``
        asked since the task entered the status that waits on it)."""
        approval = await self.current(task_id, kind, same=same)
        if approval is None:
            approval = Approval(id=new_id("ap"), task_id=task_id, kind=kind, payload=payload)
            await self.store.create_approval(approval)
            await self._publish_requested(approval)
        elif approval.decision == "pending":
            await self.announce(approval)
        self._task_of[approval.id] = task_id
        if approval.decision == "pending":
            await self._decide_by_policy(approval)
        return approval, await self._wait(approval)

    async def _decide_by_policy(self, approval: Approval) -> None:
        """A task created with ``--yes`` answers its own questions at once, as ``AutoDecider``
        does in-process: the policy is part of the task, so any host driving it (a daemon
        restarted after its client exited included) answers the same."""
        task = await self.store.get_task(approval.task_id)
        policy = task.policy
        decision = AUTO_DECISIONS.get(approval.kind)
        if approval.kind == "tool":  # denied unless --allow-tool names it
            named = tool_allowed(
                policy.allowed_tools, approval.payload.get("tool"), approval.payload.get("origin")
            )
            decision = "approved" if named else "rejected"
        notes = AUTO_NOTE
        if approval.kind == "plan":
            refusal = uncovered_refusal(approval.payload.get("uncovered") or [])
            if refusal is not None:
                decision, notes = "rejected", refusal
        if not policy.auto_approve or decision is None:
            return
        with contextlib.suppress(BadInput):  # a front end decided it meanwhile
            await self.decide(approval.id, decision, actor=AUTO_ACTOR, notes=notes)

    async def announce(self, approval: Approval) -> None:
        """Publish ``approval.requested`` for a question asked before a stop, unless it was: a
        process stopped between writing the row and announcing it leaves a question front ends
        never hear of (they learn of questions only from that event)."""
        for event in await self.bus.replay(approval.task_id):
            if (
                event.type == "approval.requested"
                and event.payload.get("approval_id") == approval.id
            ):
                return
        await self._publish_requested(approval)

    async def _publish_requested(self, approval: Approval) -> None:
        await self.bus.publish(
            approval.task_id,
            "approval.requested",
            {
                "approval_id": approval.id,
                "kind": approval.kind,
                QUESTION: approval.payload[QUESTION],
            },
        )
        log.info(
            "approval.requested",
            task_id=approval.task_id,
            approval_id=approval.id,
            kind=approval.kind,
        )

    async def current(
        self, task_id: str, kind: ApprovalKind, *, same: Match | None = None
    ) -> Approval | None:
        """The question of ``kind`` asked since the task last entered the status that waits on
        it (pending first, else decided — a decision taken while nobody was waiting), or None
        when none was asked yet. A task asking again after a restart gets this row back.
        ``same`` narrows the rows that count (a failure question is per module and attempt)."""
        since = await self._waiting_since(task_id, WAITS_IN[kind])
        rows = [
            a
            for a in await self.store.list_approvals(task_id)
            if a.kind == kind
            and QUESTION in a.payload
            and (since is None or a.created_at >= since)
            and (same is None or same(a))
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
                    answers = p.get("answers")
                    return Outcome(
                        row.decision,
                        str(p.get("actor") or row.actor),
                        str(p.get("notes") or ""),
                        budget if isinstance(budget, int) else None,
                        tuple(str(m) for m in p.get("modules") or ()),
                        (
                            {str(k): str(v) for k, v in answers.items()}
                            if isinstance(answers, dict)
                            else {}
                        ),
                    )
            if asyncio.get_running_loop().time() >= deadline:
                # The decider died between its two writes: the decision stands, its parameters
                # fall back to the defaults (proposed budget, all modules, no answers).
                log.warning("approval.details_missing", task_id=row.task_id, approval_id=row.id)
                return Outcome(row.decision, row.actor or "unknown", row.notes)
            await asyncio.sleep(self.poll_interval / 4)
