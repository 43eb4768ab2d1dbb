"""Moving a task: the transition row and its ``task.transition`` event, always together."""

from __future__ import annotations

import structlog

from agentfirm.bus.base import Bus
from agentfirm.domain import TaskStatus, Transition
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)


async def move(
    store: Store, bus: Bus, task_id: str, to: TaskStatus, *, actor: str, reason: str = ""
) -> Transition:
    """Persist the transition (validated by the store against the lifecycle), then announce it.
    A task that ends releases the budget reservations still held for it: it makes no more
    calls, and what is left was made by a process that died mid-call — or by a holder presumed
    dead but only slow, whose late settle books its actual cost all the same."""
    transition = await store.transition(task_id, to, actor=actor, reason=reason)
    if to.is_final:
        released = await store.release_reservations(task_id)
        if released:
            log.warning("task.reservations_released", task_id=task_id, count=released)
    await bus.publish(
        task_id,
        "task.transition",
        {
            "from": transition.from_status,
            "to": transition.to_status,
            "actor": transition.actor,
            "reason": reason,
        },
    )
    return transition


async def reject(store: Store, bus: Bus, task_id: str, *, actor: str, reason: str) -> TaskStatus:
    """Reject a task awaiting plan approval, or abort one stopped for budget. Tasks in any other
    state are refused: a running one is stopped where it runs."""
    from agentfirm.errors import BadInput

    task = await store.get_task(task_id)
    if task.status not in (TaskStatus.AWAITING_PLAN_APPROVAL, TaskStatus.AWAITING_BUDGET):
        raise BadInput(
            f"task {task_id} is {task.status}: only a task awaiting plan approval or budget "
            "can be rejected from here",
            hint="a running task is stopped from the terminal that runs it (Ctrl-C)",
        )
    target = (
        TaskStatus.REJECTED
        if task.status is TaskStatus.AWAITING_PLAN_APPROVAL
        else TaskStatus.ABORTED
    )
    await move(store, bus, task_id, target, actor=actor, reason=reason)
    return target


async def cancel(store: Store, bus: Bus, task_id: str, *, actor: str, reason: str) -> TaskStatus:
    """Stop a task for good that no process is driving (the caller holds its lock): its open
    questions are marked aborted, and it moves to ``aborted`` (which releases the reservations a
    dead process left, see ``move``)."""
    from agentfirm.errors import BadInput

    task = await store.get_task(task_id)
    if task.status.is_final:
        raise BadInput(f"task {task_id} is already {task.status}: nothing to cancel")
    for approval in await store.list_approvals(task_id):
        if approval.decision == "pending":
            await store.decide_approval(approval.id, "aborted", actor=actor, notes=reason)
    await move(store, bus, task_id, TaskStatus.ABORTED, actor=actor, reason=reason)
    return TaskStatus.ABORTED
