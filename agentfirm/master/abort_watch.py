"""An ``aborting`` task ends, whoever left it so: its driver stops waiting for the build.

A cancel whose build does not answer in time leaves the task ``aborting`` (the daemon's cancel,
or ``tasks cancel --no-daemon`` from another shell, even for a task the daemon or a ``run
--no-daemon`` drives). The build ends it ``aborted`` once it hears; one that never answers (a
worker gone, a kernel stuck) used to keep its driver waiting for ever, the task ``aborting`` and
the ``run`` that follows it hanging. The driver itself now gives up on it once nothing the build
had in flight can still be unbooked — the provider timeout plus the reservation grace
(``stale_reservation_age``) — and ends the task ``aborted``, booking what the build still holds
at its reservations (``≤``). A driver that dies instead leaves the task to whoever drives it
next (``resume``, or a second ``tasks cancel``), which ends it at once.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from agentfirm.build_master.budget_gate import BuildAborted
from agentfirm.domain.calls import stale_reservation_age
from agentfirm.domain.models import TaskSpec
from agentfirm.domain.status import TaskStatus
from agentfirm.runs.base import Runner
from agentfirm.runs.firmly import cancel_until_done
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)

POLL_S = 1.0
"""How often a driver looks whether its task was moved to ``aborting`` (one indexed read)."""


def abort_wait_s(provider_timeout_s: float) -> float:
    """How long an ``aborting`` task's build is waited for: past the provider timeout and the
    reservation grace, nothing it had in flight can still be booked as answered."""
    return stale_reservation_age(provider_timeout_s).total_seconds()


class AbortWatch:
    """A ``Runner`` whose ``execute`` gives up on its build ``within_s`` after the task turns
    ``aborting``, raising ``BuildAborted`` (its driver then ends the task ``aborted``)."""

    def __init__(self, runner: Runner, store: Store, *, within_s: float) -> None:
        self.runner = runner
        self.name = runner.name
        self.store = store
        self.within_s = within_s

    async def execute(self, spec: TaskSpec, *, notes: str = "") -> str:
        building = asyncio.ensure_future(self.runner.execute(spec, notes=notes))
        watching = asyncio.ensure_future(self._given_up(spec.task_id))
        try:
            await asyncio.wait({building, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.cancel()
            # Given up on, or our own caller was cancelled: stopped for sure, as a build may
            # swallow one cancellation (``runs.firmly``).
            await cancel_until_done(building)
            await asyncio.gather(building, watching, return_exceptions=True)
        if not building.cancelled() or not watching.done() or watching.cancelled():
            return building.result()  # its outcome, or its error
        raise BuildAborted(watching.result())

    async def _given_up(self, task_id: str) -> str:
        """Returns once the task has been ``aborting`` for ``within_s`` (why, for its log)."""
        # Polled, not awaited as an event: whoever moves the task may be another process.
        while not await self._aborting(task_id):  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)
        since = time.monotonic()
        log.warning("task.aborting_watched", task_id=task_id, within_s=self.within_s)
        await asyncio.sleep(self.within_s)
        waited = time.monotonic() - since
        log.warning("task.abort_never_answered", task_id=task_id, waited_s=round(waited, 1))
        return f"its {self.name} build did not answer the abort within {self.within_s:g}s"

    async def _aborting(self, task_id: str) -> bool:
        try:
            return (await self.store.get_task(task_id)).status is TaskStatus.ABORTING
        except Exception as err:  # a store that did not answer this time: the build goes on
            log.warning("task.abort_watch_unread", task_id=task_id, error=str(err))
            return False
