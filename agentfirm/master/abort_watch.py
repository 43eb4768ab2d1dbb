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

This watch is the one owner of that rule, in every process that drives a task (the daemon, a
``run --no-daemon``): the daemon's cancel only waits for its driver to end the task, and steps
in only when the driver cannot (``daemon/cancelling.py``) — it used to keep the same deadline
too, and the two raced to end the task.

It hears the task turn ``aborting`` from the task's ``task.transition`` event, which the
driver's event pump reads anyway while the build runs (``AbortingHeard``), whichever process
moved it; and reads the store every ``POLL_S`` as a fallback, for an event that comes late or
never (see ``POLL_S``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import structlog

from agentfirm.build_master.budget_gate import BuildAborted
from agentfirm.domain.calls import stale_reservation_age
from agentfirm.domain.models import Event, TaskSpec
from agentfirm.domain.status import TaskStatus
from agentfirm.runs.base import Runner
from agentfirm.runs.firmly import cancel_until_done
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)

POLL_S = 10.0
"""How often a driver reads whether its task was moved to ``aborting`` when it has not heard so
(one indexed read). A fallback, not the way it hears: the row is the truth and the event only
its news, and the news can come late or never — ``move`` writes the row before it publishes, so
a process that dies in between leaves a row without an event; a Redis bus that is away keeps
the event in the publisher's outbox until Redis is back, and a ``tasks cancel --no-daemon`` that
exits meanwhile delivers it only when it next runs; a watch with no event pump around it (a
runner used on its own) hears nothing at all. Slow, because it only bounds how late the task
ends then (``given_up_by_s``)."""


def abort_wait_s(provider_timeout_s: float) -> float:
    """How long an ``aborting`` task's build is waited for: past the provider timeout and the
    reservation grace, nothing it had in flight can still be booked as answered."""
    return stale_reservation_age(provider_timeout_s).total_seconds()


def given_up_by_s(within_s: float) -> float:
    """By when, at the latest, after its task turned ``aborting``, a watch waiting ``within_s``
    has given up on a build that does not answer: it may hear only at its next read."""
    return within_s + POLL_S


def _turned_aborting(event: Event) -> bool:
    return event.type == "task.transition" and event.payload.get("to") == TaskStatus.ABORTING


class AbortingHeard:
    """Tells this process's watches that their task turned ``aborting``, as its event pump
    reads the transition (``heard``): at once, instead of at the watch's next read."""

    def __init__(self) -> None:
        self._watching: dict[str, set[asyncio.Event]] = {}

    def heard(self, event: Event) -> None:
        """Read by the event pump: wakes the watches of the event's task if it says so."""
        if _turned_aborting(event):
            for turned in self._watching.get(event.task_id, ()):
                turned.set()

    @contextlib.contextmanager
    def listening(self, task_id: str) -> Iterator[asyncio.Event]:
        """An event set once ``task_id`` is heard to turn ``aborting``, while in the block."""
        turned = asyncio.Event()
        self._watching.setdefault(task_id, set()).add(turned)
        try:
            yield turned
        finally:
            listeners = self._watching[task_id]
            listeners.discard(turned)
            if not listeners:
                del self._watching[task_id]


class AbortWatch:
    """A ``Runner`` whose ``execute`` gives up on its build ``within_s`` after the task turns
    ``aborting``, raising ``BuildAborted`` (its driver then ends the task ``aborted``).
    ``heard``: where its event pump says the task turned (None: it reads the store only)."""

    def __init__(
        self,
        runner: Runner,
        store: Store,
        *,
        within_s: float,
        heard: AbortingHeard | None = None,
    ) -> None:
        self.runner = runner
        self.name = runner.name
        self.store = store
        self.within_s = within_s
        self.heard = heard if heard is not None else AbortingHeard()

    async def execute(self, spec: TaskSpec, *, notes: str = "") -> str:
        # Listening before the build starts: no transition read meanwhile goes unheard.
        with self.heard.listening(spec.task_id) as turned:
            building = asyncio.ensure_future(self.runner.execute(spec, notes=notes))
            watching = asyncio.ensure_future(self._given_up(spec.task_id, turned))
            try:
                await asyncio.wait({building, watching}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                watching.cancel()
                # Given up on, or our own caller was cancelled: stopped for sure, as a build
                # may swallow one cancellation (``runs.firmly``).
                await cancel_until_done(building)
                await asyncio.gather(building, watching, return_exceptions=True)
        if not building.cancelled() or not watching.done() or watching.cancelled():
            return building.result()  # its outcome, or its error
        raise BuildAborted(watching.result())

    async def _given_up(self, task_id: str, turned: asyncio.Event) -> str:
        """Returns once the task has been ``aborting`` for ``within_s`` (why, for its log)."""
        # Heard (the event follows the row: no second read), else read now and at each POLL_S.
        while not turned.is_set() and not await self._aborting(task_id):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await turned.wait()
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
