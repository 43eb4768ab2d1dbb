"""The ``worker`` runner: a task's build queued on the Redis work queue for ``agentfirm worker``
processes on any machine sharing the Postgres store and the Redis bus; the Master Agent waits on
the bus for the run's finish (see ``runs.base`` for the others)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from agentfirm.bus.base import Bus
from agentfirm.domain.models import TaskSpec
from agentfirm.errors import BadInput
from agentfirm.handoff.repos import RepoBackend
from agentfirm.handoff.task_repo import RUN_FINISHED, RUN_LAUNCHED, RunFinished, RunRequest
from agentfirm.ids import new_id
from agentfirm.runs.base import Redact, same
from agentfirm.runs.launched import LaunchedRunner
from agentfirm.settings import Settings
from agentfirm.store.base import Store

if TYPE_CHECKING:
    from agentfirm.bus.redis_work import QueuedRun, RedisWorkQueue

log = structlog.get_logger(__name__)


class WorkerRunner(LaunchedRunner):
    """Queues the run on the Redis work queue, where any ``agentfirm worker`` (on any machine
    sharing the Postgres store and the Redis bus) claims it, and waits on the bus for its
    ``runner.finished``. A worker that dies mid-run is replaced by another, which resumes the
    build (done modules are kept); the wait goes on meanwhile. A task has one run at a time: a
    Master Agent resumed while its earlier run is still queued or held waits for that run. Every
    ``check_every_s`` the wait looks for its entry; one that Redis lost (restarted empty) is
    queued again under the same run id, unless the run already finished. A worker may still be
    running it: the worker handed the new entry waits for the run's lease in the store (see
    ``agentfirm.runs.worker``), so the run's modules never run twice at once."""

    name = "worker"

    def __init__(
        self,
        *,
        store: Store,
        bus: Bus,
        repos: RepoBackend,
        settings: Settings,
        redact: Redact = same,
        check_every_s: float = 5.0,
    ) -> None:
        super().__init__(store=store, bus=bus, repos=repos, redact=redact)
        self.settings = settings
        self.check_every_s = check_every_s

    async def execute(self, spec: TaskSpec, *, notes: str = "") -> str:
        """See ``Runner.execute``; waits as long as the workers take (cancel to stop)."""
        from agentfirm.bus.redis_work import RedisWorkQueue

        if not self.settings.redis_url:
            raise BadInput(
                "the worker runner needs the Redis work queue",
                hint="set AGENTFIRM_REDIS_URL=redis://…, or use the inproc runner",
            )
        queue = RedisWorkQueue(self.settings.redis_url)
        await queue.open()
        try:
            finished = await self._run(queue, spec, notes)
        finally:
            await queue.close()
        return await self._result(spec, finished)

    async def _run(self, queue: RedisWorkQueue, spec: TaskSpec, notes: str) -> RunFinished:
        run = RunRequest(run_id=new_id("run"), runner=self.name, notes=notes)
        events = await self.bus.replay(spec.task_id)
        after = events[-1].seq if events else 0
        launched = {e.payload.get("run_id"): e.seq for e in events if e.type == RUN_LAUNCHED}
        queued = await queue.enqueue_run(spec.task_id, run_id=run.run_id, notes=notes)
        if queued.run_id == run.run_id:
            await self._launched(spec, run, None)
            log.info("runner.queued", task_id=spec.task_id, run_id=run.run_id)
        else:
            # Its finish may be on the bus already (published just before the ack): look from
            # where that run was launched.
            after = launched.get(queued.run_id, 0)
            log.info("runner.rejoined", task_id=spec.task_id, run_id=queued.run_id)
        runs = {queued.run_id}
        waiting = asyncio.ensure_future(self._wait(spec.task_id, runs, after))
        watching = asyncio.ensure_future(self._watch(queue, spec.task_id, queued, runs, notes))
        try:
            done, _ = await asyncio.wait({waiting, watching}, return_when=asyncio.FIRST_COMPLETED)
            return await next(iter(done))
        finally:
            for task in (waiting, watching):
                task.cancel()
            await asyncio.gather(waiting, watching, return_exceptions=True)

    async def _watch(
        self, queue: RedisWorkQueue, task_id: str, queued: QueuedRun, runs: set[str], notes: str
    ) -> RunFinished:
        """Check the run's entry every ``check_every_s``; queue the run again when Redis lost
        it. Returns only a finish found on the bus meanwhile (the wait may have missed it)."""
        from agentfirm.bus.redis_conn import BusUnavailable

        while True:
            await asyncio.sleep(self.check_every_s)
            try:
                if await queue.locate(queued.entry_id) != "lost":
                    continue
                finished = await self._finished_any(task_id, runs)
                if finished is not None:
                    return finished
                queued = await queue.enqueue_run(task_id, run_id=queued.run_id, notes=notes)
            except BusUnavailable as err:  # the next check tries again
                log.warning("runner.queue_unreachable", task_id=task_id, error=str(err))
                continue
            runs.add(queued.run_id)
            log.warning(
                "runner.requeued", task_id=task_id, run_id=queued.run_id, reused=queued.reused
            )

    async def _finished_any(self, task_id: str, runs: set[str]) -> RunFinished | None:
        for event in await self.bus.replay(task_id):
            if event.type == RUN_FINISHED and event.payload.get("run_id") in runs:
                return RunFinished.model_validate(event.payload)
        return None
