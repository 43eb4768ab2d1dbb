"""The states of a task and of a module. Plain enums, no pydantic: front ends import this before
their first frame, and every final-status check reads ``FINAL_STATUSES`` from here."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    RECEIVED = "received"
    CLASSIFIED = "classified"
    CLARIFYING = "clarifying"
    PLANNED = "planned"
    AWAITING_PLAN_APPROVAL = "awaiting_plan_approval"
    APPROVED = "approved"
    HANDED_OFF = "handed_off"
    EXECUTING = "executing"
    AWAITING_BUDGET = "awaiting_budget"
    AWAITING_REVIEW = "awaiting_review"
    REVISING = "revising"
    ASSEMBLING = "assembling"
    ABORTING = "aborting"
    """Cancelled while its build runs elsewhere (a worker, a kernel, Colab) that has not yet
    answered the abort: it ends ``aborted`` once it does, or once nothing it had in flight can
    still be unbooked."""
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.ABORTED, TaskStatus.REJECTED}
)


class ModuleStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
