"""The rules of approvals: what each kind may be decided as, with which parameters, and the
decided outcome a waiting task reads back. Pure: ``approvals.StoreDecider`` does the I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, get_args

from agentfirm.domain.models import Approval, ApprovalDecision, TaskStatus
from agentfirm.errors import BadInput
from agentfirm.money import nano_to_float, usd_to_nano

DECISION_OF: dict[str, ApprovalDecision] = {
    d: d for d in get_args(ApprovalDecision) if d != "pending"
}
DECISIONS: tuple[str, ...] = tuple(DECISION_OF)
"""What ``decide`` accepts: ``approved``, ``revise``, ``rejected``, ``aborted``, ``retry``,
``skip``."""
QUESTION = "question"
"""Every payload a ``StoreDecider`` writes carries a question; rows without one (the Master
Agent's own record of a decision) are never reused as a pending question."""
WAITS_IN: dict[str, TaskStatus] = {
    "plan": TaskStatus.AWAITING_PLAN_APPROVAL,
    "budget": TaskStatus.AWAITING_BUDGET,
    "review": TaskStatus.AWAITING_REVIEW,
    "clarify": TaskStatus.CLARIFYING,
    "failure": TaskStatus.EXECUTING,
    "tool": TaskStatus.EXECUTING,
}
"""The status a task is in while it waits on each kind."""
ALLOWED: dict[str, frozenset[str]] = {
    "plan": frozenset({"approved", "rejected", "aborted"}),
    "budget": frozenset({"approved", "rejected", "aborted"}),
    "review": frozenset({"approved", "revise", "rejected", "aborted"}),
    "clarify": frozenset({"approved", "rejected", "aborted"}),
    "failure": frozenset({"retry", "skip", "approved", "rejected", "aborted"}),
    "tool": frozenset({"approved", "rejected", "aborted"}),
}


@dataclass(frozen=True)
class Outcome:
    """A decided approval with its parameters."""

    decision: ApprovalDecision
    actor: str
    notes: str = ""
    budget_nano: int | None = None
    modules: tuple[str, ...] = ()
    answers: Mapping[str, str] = field(default_factory=dict)

    def because(self) -> str:
        return f"{self.decision} by {self.actor}" + (f": {self.notes}" if self.notes else "")


def _round_up_to_cent(nano: int) -> int:
    return -(-nano // 10_000_000) * 10_000_000


def suggested_ceiling(info: dict[str, Any]) -> int:
    """Half as much again, or at least room for the call that did not fit."""
    ceiling = usd_to_nano(Decimal(str(info.get("ceiling_usd", 0))))
    needed = usd_to_nano(Decimal(str(info.get("needed_usd", 0))))
    return _round_up_to_cent(ceiling + max(needed, ceiling // 2, 10_000_000))


def question_ids(approval: Approval) -> list[str]:
    """The ids of a clarify approval's questions."""
    items = approval.payload.get("questions") or []
    return [str(q.get("id")) for q in items if isinstance(q, Mapping)]


def check_decision(
    approval: Approval,
    decision: str,
    budget_nano: int | None,
    modules: tuple[str, ...],
    answers: Mapping[str, str] | None,
) -> None:
    """Raise ``BadInput`` unless ``approval`` may be decided so, with these parameters."""
    where = f"approval {approval.id} ({approval.kind})"
    if approval.decision != "pending":
        raise BadInput(
            f"{where} was already decided: {approval.decision} by {approval.actor}",
            hint="a new question needs a new approval",
        )
    allowed = ALLOWED.get(approval.kind)
    if allowed is not None and decision not in allowed:
        raise BadInput(f"{where} cannot be {decision}", hint="use " + ", ".join(sorted(allowed)))
    if budget_nano is not None:
        if approval.kind not in ("plan", "budget") or decision != "approved":
            raise BadInput(f"{where}: a budget goes only with approving a plan or a budget")
        ceiling = usd_to_nano(Decimal(str(approval.payload.get("ceiling_usd", 0))))
        if approval.kind == "budget" and budget_nano <= ceiling:
            raise BadInput(
                f"{where}: the new ceiling must be above the current ${nano_to_float(ceiling):.4f}",
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
    if answers:
        if approval.kind != "clarify" or decision != "approved":
            raise BadInput(f"{where}: answers go only with approving a clarify question")
        ids = question_ids(approval)
        unknown = sorted(set(answers) - set(ids))
        if unknown:
            raise BadInput(
                f"{where}: unknown question id(s): {', '.join(unknown)}",
                hint="answer with ids among: " + ", ".join(ids),
            )
