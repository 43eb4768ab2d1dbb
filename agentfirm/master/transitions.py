"""Moving a task: the transition row and its ``task.transition`` event, always together."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import structlog

from agentfirm.bus.base import Bus
from agentfirm.domain.models import Task, TaskStatus, Transition
from agentfirm.store.base import Store

if TYPE_CHECKING:
    from agentfirm.master.task_lock import TaskLocks

log = structlog.get_logger(__name__)

S = TaskStatus
BUILDING = frozenset({S.HANDED_OFF, S.EXECUTING, S.REVISING, S.ASSEMBLING})
"""Statuses in which a build runs and watches its control stream (elsewhere the driver waits
for a human or plans, and hears no abort)."""
POLL_S = 0.1
"""How often a cancel from another process looks whether the task's driver has ended it."""


async def move(
    store: Store, bus: Bus, task_id: str, to: TaskStatus, *, actor: str, reason: str = ""
) -> Transition:
    """Persist the transition (validated by the store against the lifecycle), then announce it.
    A task that ends releases the budget reservations still held for it: it makes no more
    calls, and what is left was made by a process that died mid-call: each call is booked at its
    reservation, an upper bound (``Store.release_reservations``). A holder presumed dead but only
    slow that settles later is not booked a second time."""
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


def check_not_ended(task: Task, action: str) -> None:
    """Refuse to ``action`` (cancel, resume) a task that has ended: the same words in-process
    and from the daemon."""
    refuse_ended(task.id, task.status, action)


def refuse_ended(task_id: str, status: TaskStatus, action: str) -> None:
    """``check_not_ended`` for a task known by its id and status (as the daemon shows it)."""
    from agentfirm.errors import BadInput

    if status.is_final:
        raise BadInput(
            f"task {task_id} is already {status}: nothing to {action}",
            hint="name a task that has not ended: see agentfirm tasks list",
        )


async def cancel(store: Store, bus: Bus, task_id: str, *, actor: str, reason: str) -> TaskStatus:
    """Stop a task for good that no process here is driving (the caller holds its lock): an
    ``abort`` goes out on its control stream first — a build running elsewhere (a worker, a
    notebook's kernel) watches it, starts no new call and cancels those in flight — then its
    open questions are marked aborted, and it moves to ``aborted`` (which releases the
    reservations a dead process left, see ``move``)."""
    task = await store.get_task(task_id)
    check_not_ended(task, "cancel")
    await publish_abort(bus, task_id, actor=actor, reason=reason)
    for approval in await store.list_approvals(task_id):
        if approval.decision == "pending":
            await store.decide_approval(approval.id, "aborted", actor=actor, notes=reason)
    await move(store, bus, task_id, TaskStatus.ABORTED, actor=actor, reason=reason)
    return TaskStatus.ABORTED


async def cancel_from_here(
    store: Store,
    bus: Bus,
    locks: TaskLocks,
    task_id: str,
    *,
    actor: str,
    reason: str,
    answer_s: float,
    runner: str,
) -> TaskStatus:
    """``tasks cancel --no-daemon``: stop a task for good, as the daemon's cancel does. A task
    another process drives through its build (a ``run --no-daemon``, the daemon) is sent
    ``abort`` and given ``answer_s`` (its calls in flight answer within their grace and are
    booked as answered) to end it ``aborted`` itself; one that has not by then (or when the
    wait is stopped: Ctrl-C) is left ``aborting``, ended when it answers, or by its driver once
    the build cannot be spending any more (``AbortWatch``), or by whoever drives it next. A
    task nothing drives is cancelled here (``cancel``), once a build of it elsewhere
    (``runner``: a worker) has had ``answer_s`` to book the calls it holds; one another process
    drives while it waits for a person is refused, as before."""
    task = await store.get_task(task_id)
    check_not_ended(task, "cancel")
    if task.status is TaskStatus.ABORTING and locks.held(task_id):
        return TaskStatus.ABORTING  # asked already: its build has not answered yet
    if task.status in BUILDING and locks.held(task_id):
        await publish_abort(bus, task_id, actor=actor, reason=reason)
        deadline = time.monotonic() + answer_s
        unanswered = f"{reason}; its {runner} build has not answered the abort in {answer_s:g}s"
        try:
            while locks.held(task_id):
                status = (await store.get_task(task_id)).status
                if status.is_final:
                    return status  # its driver heard the abort and ended the task
                if time.monotonic() >= deadline:
                    log.warning("task.abort_unanswered", task_id=task_id, waited_s=answer_s)
                    await move(
                        store, bus, task_id, TaskStatus.ABORTING, actor=actor, reason=unanswered
                    )
                    return TaskStatus.ABORTING
                await asyncio.sleep(POLL_S)
        except asyncio.CancelledError:
            # Ctrl-C stops the waiting, not the cancel: the task is left ``aborting``, which
            # its driver ends (``AbortWatch``), as when the wait runs out.
            if (await store.get_task(task_id)).status in BUILDING:
                stopped = f"{reason}; stopped waiting for its {runner} build to answer"
                await move(store, bus, task_id, TaskStatus.ABORTING, actor=actor, reason=stopped)
            raise
        # Its driver let go (it ended the task, or stopped without ending it): nothing drives
        # it any more.
    locks.acquire(task_id)  # refuses a task another process is driving
    status = (await store.get_task(task_id)).status
    if status.is_final:
        return status
    if status in BUILDING and runner != "inproc" and await _reserved(store, task_id):
        # Nothing drives it, but its build elsewhere (a worker) may be mid-call: ending the
        # task now would book those calls at their reservations and refuse their real cost.
        await publish_abort(bus, task_id, actor=actor, reason=reason)
        deadline = time.monotonic() + answer_s
        while time.monotonic() < deadline:
            if not await _reserved(store, task_id):
                break  # all booked at what they cost
            try:
                await asyncio.sleep(POLL_S)
            except asyncio.CancelledError:
                # Ctrl-C stops the waiting, not the cancel: ended now, the calls still out
                # booked at their reservations.
                await cancel(store, bus, task_id, actor=actor, reason=reason)
                raise
    return await cancel(store, bus, task_id, actor=actor, reason=reason)


async def _reserved(store: Store, task_id: str) -> int:
    """What the task's calls in flight hold (0 for a task without a budget yet)."""
    from agentfirm.errors import NotFound

    try:
        return (await store.get_budget(task_id)).reserved_nano
    except NotFound:
        return 0


async def publish_abort(bus: Bus, task_id: str, *, actor: str, reason: str) -> None:
    """Ask the task's build, wherever it runs, to stop: it starts no new call, cancels those in
    flight (booked at their reservations) and reports ``runner.finished`` ``aborted``."""
    await bus.publish(
        task_id, "abort", {"reason": reason or "cancelled", "actor": actor}, stream="control"
    )
