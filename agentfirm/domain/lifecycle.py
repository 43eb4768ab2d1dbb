"""The task lifecycle as data: which status may follow which (ARCHITECTURE.md §3)."""

from __future__ import annotations

from agentfirm.domain.status import FINAL_STATUSES, TaskStatus
from agentfirm.errors import InvalidTransition

S = TaskStatus

_FORWARD: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.RECEIVED: frozenset({S.CLASSIFIED}),
    S.CLASSIFIED: frozenset({S.CLARIFYING, S.PLANNED}),
    S.CLARIFYING: frozenset({S.CLARIFYING, S.PLANNED}),
    S.PLANNED: frozenset({S.AWAITING_PLAN_APPROVAL}),
    S.AWAITING_PLAN_APPROVAL: frozenset({S.APPROVED, S.PLANNED}),
    S.APPROVED: frozenset({S.HANDED_OFF}),
    S.HANDED_OFF: frozenset({S.EXECUTING, S.ABORTING}),
    S.EXECUTING: frozenset({S.AWAITING_BUDGET, S.AWAITING_REVIEW, S.ASSEMBLING, S.ABORTING}),
    S.AWAITING_BUDGET: frozenset({S.EXECUTING, S.ASSEMBLING, S.AWAITING_REVIEW}),
    S.AWAITING_REVIEW: frozenset({S.REVISING, S.ASSEMBLING, S.AWAITING_BUDGET}),
    S.REVISING: frozenset({S.EXECUTING, S.ABORTING}),
    S.ASSEMBLING: frozenset({S.COMPLETED, S.AWAITING_BUDGET, S.ABORTING}),
}

_ANY_TO = frozenset({S.FAILED, S.ABORTED, S.REJECTED})

ALLOWED: dict[TaskStatus, frozenset[TaskStatus]] = {
    status: (
        _FORWARD.get(status, frozenset()) | (frozenset() if status in FINAL_STATUSES else _ANY_TO)
    )
    for status in TaskStatus
}


def check_transition(task_id: str, from_status: TaskStatus | None, to: TaskStatus) -> None:
    """Raise ``InvalidTransition`` unless ``from_status → to`` is allowed (``None`` = creation)."""
    if from_status is None:
        if to is not S.RECEIVED:
            raise InvalidTransition(f"task {task_id} must be created as received, not {to}")
        return
    if to not in ALLOWED[from_status]:
        raise InvalidTransition(f"task {task_id}: {from_status} → {to} is not allowed")
