"""Stopping a task's driver for a cancel: its build is asked first, and cut short only when it
does not answer.

Cancelling a driver whose build runs in a notebook's kernel shuts the kernel down: a busy kernel
runs on for seconds before it is killed, and its run never says it was aborted. The build obeys
an ``abort`` on the task's control stream wherever it runs (in this process, on a worker, in a
kernel, on Colab): it starts no new call, lets those in flight answer (the router's
``cancel_grace_s``) and books them as answered, reports ``aborted``, and its driver ends the task
``aborted`` itself. A build elsewhere that does not answer in time leaves the task ``aborting``
instead of pretending it stopped, and its driver ends it (``wait_for_abort``).
"""

from __future__ import annotations

import asyncio

import structlog

from agentfirm.bus.base import Bus
from agentfirm.domain.status import TaskStatus
from agentfirm.master.transitions import BUILDING, publish_abort

log = structlog.get_logger(__name__)

__all__ = ["BUILDING", "answer_time", "ask_to_stop", "cut_short", "stop_driver", "wait_for_abort"]
ANSWER_S = 5.0
"""How long a build has to answer an abort once its calls in flight have had their grace."""


def answer_time(cancel_grace_s: float) -> float:
    """How long a cancel waits for the build to answer: its calls in flight may take the whole
    grace to answer (booked as answered), then it stops and says so."""
    return cancel_grace_s + ANSWER_S


async def ask_to_stop(
    bus: Bus,
    task_id: str,
    status: TaskStatus,
    driver: asyncio.Task[None],
    *,
    actor: str,
    reason: str,
    answer_s: float = ANSWER_S,
) -> bool:
    """Send a running build ``abort`` and give it ``answer_s`` to end its driver; True when it
    did. False at once when no build runs (the driver waits for a human or plans)."""
    if status not in BUILDING:
        return False
    await publish_abort(bus, task_id, actor=actor, reason=reason)
    done, _ = await asyncio.wait([driver], timeout=answer_s)
    if done:
        return True
    log.warning("daemon.abort_unanswered", task_id=task_id, waited_s=answer_s)
    return False


async def cut_short(
    task_id: str, driver: asyncio.Task[None], *, answer_s: float = ANSWER_S
) -> None:
    """Cancel ``driver`` and give it ``answer_s`` to end."""
    driver.cancel()
    done, _ = await asyncio.wait([driver], timeout=answer_s)
    if not done:
        # A guard, not a path we expect: the event pump that once kept a cancelled Colab
        # driver alive lets a driver's own cancellation through since 83b91a0. Should a
        # driver still ignore it, the task is ended all the same and the driver is left.
        log.error("daemon.driver_stuck", task_id=task_id, waited_s=answer_s)


async def stop_driver(
    bus: Bus,
    task_id: str,
    status: TaskStatus,
    driver: asyncio.Task[None],
    *,
    actor: str,
    reason: str,
    answer_s: float = ANSWER_S,
) -> None:
    """Stop ``driver``, the daemon's driver of ``task_id`` (in ``status``): a running build is
    sent ``abort`` and given ``answer_s`` to end; otherwise, or then, the driver is cancelled."""
    if not await ask_to_stop(
        bus, task_id, status, driver, actor=actor, reason=reason, answer_s=answer_s
    ):
        await cut_short(task_id, driver, answer_s=answer_s)


async def wait_for_abort(driver: asyncio.Task[None], *, within_s: float) -> bool:
    """Wait for the driver of an ``aborting`` task (its build elsewhere has not answered the
    abort yet) to end, at most ``within_s``: by then its abort watch has given up on the build
    (``master.abort_watch``) and ended the task. True when it ended."""
    done, _ = await asyncio.wait([driver], timeout=within_s)
    return bool(done)
