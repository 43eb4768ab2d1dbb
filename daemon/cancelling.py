"""How the daemon stops a task for good (``TaskHost.cancel``).

A build the daemon drives in its own process is asked to abort on the task's control stream and
given the time its calls in flight may take to answer; a build elsewhere (a worker, a kernel,
Colab) that has not answered by then leaves the task ``aborting``, and its driver ends it: once
the build answers, or once the build can no longer be spending — the driver's abort watch
(``master.abort_watch``) owns that rule in every process that drives a task, so it is not kept
here a second time (two timers with one deadline raced to end the task). The daemon only waits
for its driver, and ends the task itself only when the driver cannot: a driver that stopped
without ending it (it failed), or one still running well past when its watch gave up on the
build (stuck: a bug, logged as such) — so whoever follows the task is never left waiting. A
task another process drives (a ``run --no-daemon``) is cancelled as ``tasks cancel
--no-daemon`` does it. And a budget question answered ``aborted`` ends its task
(``abort_if_asked``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from agentfirm.app import App
from agentfirm.domain.models import Task, TaskStatus
from agentfirm.domain.policy import RunnerName
from agentfirm.master.result import result_of
from agentfirm.master.transitions import cancel as cancel_task
from agentfirm.master.transitions import cancel_from_here, check_not_ended, move

from .driver_stop import BUILDING, answer_time, ask_to_stop, cut_short, wait_for_abort

log = structlog.get_logger(__name__)

Announce = Callable[[str, dict[str, Any]], Awaitable[None]]


class Cancelling:
    """The host's cancels, and the tasks it left ``aborting`` (``aborting``: what ends each).
    ``drivers``: the host's drivers, read as they are now; ``announce``: tells whoever follows
    a task how its driver ended; ``runner_of``: where a task's build runs."""

    def __init__(
        self,
        app: App,
        drivers: Mapping[str, asyncio.Task[None]],
        *,
        announce: Announce,
        runner_of: Callable[[Task], RunnerName],
    ) -> None:
        self.app = app
        self._drivers = drivers
        self._announce = announce
        self._runner_of = runner_of
        self.aborting: dict[str, asyncio.Task[None]] = {}

    async def cancel(self, task_id: str, *, actor: str, reason: str) -> dict[str, Any]:
        """See ``TaskHost.cancel``; ``reason`` redacted already."""
        task = await self.app.store.get_task(task_id)
        check_not_ended(task, "cancel")
        driver = self._drivers.get(task_id)
        if task.status is TaskStatus.ABORTING and task_id in self.aborting:
            return {"task_id": task_id, "status": str(task.status)}  # asked already
        if driver is not None:
            answer_s = answer_time(self.app.settings.cancel_grace_s)
            bus = self.app.bus
            if await ask_to_stop(
                bus, task_id, task.status, driver, actor=actor, reason=reason, answer_s=answer_s
            ):
                task = await self.app.store.get_task(task_id)
                if task.status.is_final:  # the build obeyed the abort; its driver ended the task
                    return {"task_id": task_id, "status": str(task.status)}
            elif task.status in BUILDING and self._runs_elsewhere(task):
                await move(
                    self.app.store,
                    bus,
                    task_id,
                    TaskStatus.ABORTING,
                    actor=actor,
                    reason=f"{reason}; its {self._runner_of(task)} build has not answered the "
                    f"abort in {answer_s:g}s",
                )
                self.aborting[task_id] = asyncio.create_task(
                    self._end_abort(task_id, driver, actor=actor, reason=reason)
                )
                return {"task_id": task_id, "status": str(TaskStatus.ABORTING)}
            await cut_short(task_id, driver)
            return await self._cancelled(task_id, driver, actor=actor, reason=reason)
        # Not driven here: by nothing, or by another process (a `run --no-daemon`), whose build
        # is asked and waited for as `tasks cancel --no-daemon` does.
        status = await cancel_from_here(
            self.app.store,
            self.app.bus,
            self.app.locks,
            task_id,
            actor=actor,
            reason=reason,
            answer_s=answer_time(self.app.settings.cancel_grace_s),
            runner=self._runner_of(task),
        )
        return {"task_id": task_id, "status": str(status)}

    async def abort_if_asked(self, task_id: str, *, actor: str) -> bool:
        """A budget question answered ``aborted`` ends the task (True); ``rejected`` leaves it
        waiting for budget (resumable with a new ceiling). ``actor``: who aborted, when the
        answer does not say."""
        budgets = [a for a in await self.app.store.list_approvals(task_id) if a.kind == "budget"]
        if not budgets or budgets[-1].decision != "aborted":
            return False
        await move(
            self.app.store,
            self.app.bus,
            task_id,
            TaskStatus.ABORTED,
            actor=budgets[-1].actor or actor,
            reason=budgets[-1].notes or "aborted at the budget question",
        )
        return True

    def stop(self) -> None:
        """At shutdown: an ``aborting`` task stays so, and the next start ends it (its driver
        finds it aborting)."""
        for ending in list(self.aborting.values()):
            ending.cancel()

    def _runs_elsewhere(self, task: Task) -> bool:
        """Whether the task's build runs outside this process: cancelling its driver here
        would not stop it."""
        return self._runner_of(task) != "inproc"

    async def _end_abort(
        self, task_id: str, driver: asyncio.Task[None], *, actor: str, reason: str
    ) -> None:
        """Wait for the driver of an ``aborting`` task to end it: it does once the build
        answers, or once its watch gives up on a build that does not (``AbortWatch``). Ended
        here only when the driver did not: it stopped without ending the task, or runs on past
        the watch's latest give-up and the time to end the task (stuck: it is cut short)."""
        from agentfirm.master.abort_watch import abort_wait_s, given_up_by_s

        store = self.app.store
        try:
            # The watch's latest give-up, then the time a build given up on takes to stop (its
            # calls in flight their grace) and the driver to end the task.
            settings = self.app.settings
            by_s = given_up_by_s(abort_wait_s(settings.provider_timeout_s))
            by_s += answer_time(settings.cancel_grace_s)
            ended = await wait_for_abort(driver, within_s=by_s)
            if (await store.get_task(task_id)).status.is_final:
                return  # its driver ended it: one still running books what it can, then says so
            if not ended:
                log.error("daemon.driver_outlived_abort_watch", task_id=task_id, waited_s=by_s)
                await cut_short(task_id, driver)
            # A driver that ended by itself announced how; one cut short did not.
            await self._cancelled(task_id, None if ended else driver, actor=actor, reason=reason)
        except Exception:
            log.exception("daemon.abort_not_ended", task_id=task_id)
        finally:
            self.aborting.pop(task_id, None)

    async def _cancelled(
        self, task_id: str, driver: asyncio.Task[None] | None, *, actor: str, reason: str
    ) -> dict[str, Any]:
        """Move the task, which nothing drives any more, to ``aborted``."""
        self.app.locks.acquire(task_id)  # refuses a task another process is driving
        status = (await self.app.store.get_task(task_id)).status
        if not status.is_final:  # else the driver ended it as it was cut short
            status = await cancel_task(
                self.app.store, self.app.bus, task_id, actor=actor, reason=reason
            )
        if driver is not None:
            # Its driver, cancelled, announced nothing: whoever follows the task (the `run`
            # that submitted it) hears how it ended, as from any driver that stops.
            result = await result_of(self.app.store, task_id, "aborted", error=reason)
            await self._announce(task_id, {"result": result.to_json()})
        return {"task_id": task_id, "status": str(status)}
