"""Build Master workers: run the builds of approved tasks claimed from the Redis work queue
(ARCHITECTURE.md §1 scale-out; the ``worker`` runner queues them).

A worker claims an entry, runs the task's Build Master (every module not yet done, then the
stitched draft, publishing as it goes and ending with ``runner.finished``), touches its claim while
it runs and acks it at the end. Work held by a worker that died is reclaimed by another (XAUTOCLAIM
once the claim has been idle for ``reclaim_after_s``), which releases the budget reservations the
dead worker's calls left and resumes the build: done modules are reused, the rest run. Only
reservations older than a call can live (``stale_reservation_age``) are released, at takeover and
while the build runs: a holder presumed dead may only be slow, and its calls in flight keep their
holds until they settle. The budget
lives in the shared Postgres store, so however many workers run a task, spend cannot pass its
ceiling. A worker that finds its claim taken over (it was presumed dead) stops that build.

The queue hands a task out at least once, and a Redis that restarted empty gets the waiting side
to queue a run again while a worker may still be running it; so before running anything a worker
takes the task's run lease in the store (``Store.acquire_lease``: the system of record, which a
Redis losing its data cannot forget), renews it while it runs, and releases it at the end. A
worker handed a task whose lease another holder keeps alive waits, its claim touched, until the
lease is released or expires: then it runs what is left, or finds the run finished and reports it
as it ended. Waiting, not acking, because the holder may still die: its claim may be gone with
Redis, and the waiting claim is what gets the run finished then. A holder that cannot renew its
lease in time stops its build before the lease can expire, so two workers never run one task's
build at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, TypeVar

import structlog

from agentfirm.app import App
from agentfirm.build_master.scheduler import leaf_errors
from agentfirm.bus.redis_conn import Backoff, BusUnavailable
from agentfirm.bus.redis_work import RedisWorkQueue, WorkClaim
from agentfirm.domain.calls import stale_reservation_age
from agentfirm.errors import NotFound
from agentfirm.handoff.task_repo import RunRequest
from agentfirm.ids import new_id
from agentfirm.log import bind_ids
from agentfirm.runs.firmly import firmly
from agentfirm.runs.heap import settle_heap
from agentfirm.runs.remote import RemoteResult, run_for_worker
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")

# How long a clean stop may spend handing its claims back before it gives up on Redis.
_RELEASE_TIMEOUT_S = 2.0
# How long a finished run waits for its events still in the bus's outbox before releasing its
# lease: the next holder looks for the run's finish on the bus.
_DRAIN_TIMEOUT_S = 5.0
LEASE_FENCE = 5 / 6
"""A lease not renewed for this share of its ttl stops the build: counted from when the last
renewal that succeeded was sent (no later than the store stamped it), so the build stops before
the store lets another worker take the lease over."""

ReportKind = Literal[
    "claimed", "waiting", "finished", "skipped", "taken_over", "released", "crashed"
]


@dataclass(frozen=True)
class WorkerReport:
    """Something a worker did, for its front end (``agentfirm worker`` prints one line each)."""

    kind: ReportKind
    task_id: str
    run_id: str = ""
    detail: str = ""


Report = Callable[[WorkerReport], None]


def default_name() -> str:
    """A consumer name unique to this process: ``host-pid``."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class WorkerOptions:
    name: str = field(default_factory=default_name)
    concurrency: int = 1
    """Tasks run at once (each runs ``max_concurrency`` sub-agents at once)."""
    reclaim_after_s: float = 60.0
    """A claim idle this long belongs to a dead worker; claims are touched three times as often.
    Also the ttl of the run lease, renewed as often."""
    max_tasks: int | None = None
    """Stop after claiming this many tasks (and finishing them); None: run until cancelled."""
    block_ms: int = 1000

    def __post_init__(self) -> None:
        few_tasks = self.max_tasks is not None and self.max_tasks < 1
        if self.concurrency < 1 or self.reclaim_after_s <= 0 or few_tasks:
            raise ValueError("concurrency, reclaim_after_s and max_tasks must be positive")


class _ClaimTaken(Exception):
    """Another worker reclaimed this worker's claim: it finishes the task, this one stops."""


class _LeaseLost(Exception):
    """This worker's run lease is not sure any more: another worker may run the task now."""


@dataclass
class _Lease:
    """A task's run lease as one ``process`` holds it. ``fence_at``: the loop time by which it
    must have been renewed, or the build stops (see ``LEASE_FENCE``)."""

    task_id: str
    holder: str
    ttl: timedelta
    fence_at: float = 0.0

    def confirmed(self, sent_at: float) -> None:
        self.fence_at = sent_at + self.ttl.total_seconds() * LEASE_FENCE


class Worker:
    """Claims work from ``queue`` and runs it on ``app`` (its store must be the shared Postgres,
    its bus the shared Redis). ``report`` hears what happens, task by task."""

    def __init__(
        self,
        app: App,
        queue: RedisWorkQueue,
        options: WorkerOptions | None = None,
        *,
        report: Report | None = None,
    ) -> None:
        self.app = app
        self.queue = queue
        self.options = options or WorkerOptions()
        self._report = report

    @property
    def name(self) -> str:
        return self.options.name

    async def run(self) -> int:
        """Claim and run tasks, ``concurrency`` at a time, until cancelled (a clean stop hands
        unfinished claims back for other workers to take at once) or until ``max_tasks`` have
        been claimed and run. Returns how many tasks were claimed. Rides out a Redis outage."""
        options = self.options
        slots = asyncio.Semaphore(options.concurrency)
        claimed = 0
        backoff = Backoff(cap=5.0)
        log.info("worker.started", worker=self.name, concurrency=options.concurrency)
        async with asyncio.TaskGroup() as group:
            while options.max_tasks is None or claimed < options.max_tasks:
                await slots.acquire()
                try:
                    claim = await self.queue.claim(
                        self.name,
                        block_ms=options.block_ms,
                        min_idle_ms=round(options.reclaim_after_s * 1000),
                    )
                except BusUnavailable as err:
                    slots.release()
                    log.warning("worker.queue_unreachable", worker=self.name, error=str(err))
                    await asyncio.sleep(backoff.next_delay())
                    continue
                except BaseException:
                    slots.release()
                    raise
                backoff.reset()
                if claim is None:
                    slots.release()
                    continue
                claimed += 1
                group.create_task(self._serve(claim, slots), name=f"work:{claim.task_id}")
        log.info("worker.stopped", worker=self.name, claimed=claimed)
        return claimed

    async def _serve(self, claim: WorkClaim, slots: asyncio.Semaphore) -> None:
        try:
            with bind_ids(task_id=claim.task_id):
                await self.process(claim)
        except Exception as err:  # one task's trouble must not stop the worker
            log.exception("worker.task_crashed", task_id=claim.task_id, error=str(err))
            self._tell("crashed", claim, detail=f"{type(err).__name__}: {err}")
        finally:
            slots.release()

    async def process(self, claim: WorkClaim) -> None:
        """Run one claimed task's build to its end and ack the claim. Not acked when another
        worker took the claim over, or when cancelled (the claim is handed back first)."""
        store = self.app.store
        try:
            task = await store.get_task(claim.task_id)
        except NotFound:
            task = None
        if task is None or task.spec is None or task.status.is_final:
            why = "no such task" if task is None else f"task is {task.status}"
            log.warning("worker.skipped", task_id=claim.task_id, reason=why)
            self._tell("skipped", claim, detail=why)
            await self.queue.ack(claim.entry_id)
            return
        run = RunRequest(run_id=claim.run_id or new_id("run"), runner="worker", notes=claim.notes)
        self._tell(
            "claimed", claim, run_id=run.run_id, detail="reclaimed" if claim.reclaimed else ""
        )
        if claim.reclaimed:
            # The previous holder died mid-call (its reservations would hold budget forever) —
            # or is only slow, and its calls in flight still hold what they will settle.
            released = await self._release_stale(claim)
            log.warning("worker.reclaimed", task_id=claim.task_id, reservations=released)
        spec = task.spec
        lease = _Lease(
            task_id=claim.task_id,
            holder=f"{self.name}/{new_id('hold')}",  # one per claim: a worker may hold two
            ttl=timedelta(seconds=self.options.reclaim_after_s),
        )
        try:
            result = await self._holding(
                claim,
                self._leased(lease, claim, run, lambda: run_for_worker(self.app, spec, run)),
            )
        except _ClaimTaken:
            log.warning("worker.claim_taken_over", task_id=claim.task_id, run_id=run.run_id)
            self._tell("taken_over", claim, run_id=run.run_id)
            return
        except _LeaseLost as lost:
            log.warning(
                "worker.lease_lost", task_id=claim.task_id, run_id=run.run_id, reason=str(lost)
            )
            self._tell("taken_over", claim, run_id=run.run_id, detail=f"lease lost: {lost}")
            # Handed back, not acked: the run is not over, and its other holder may yet die.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_RELEASE_TIMEOUT_S):
                    await self.queue.release(self.name, claim.entry_id)
            return
        await self.queue.ack(claim.entry_id)
        self._tell("finished", claim, run_id=run.run_id, detail=result.outcome)

    async def _holding(self, claim: WorkClaim, work: Awaitable[T]) -> T:
        """``work``, with the claim touched meanwhile. Raises ``_ClaimTaken`` when another
        worker took the claim over (``work`` is cancelled), and ``work``'s own error unwrapped;
        hands the claim back when cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                keeper = group.create_task(self._keep(claim), name=f"touch:{claim.task_id}")
                try:
                    return await firmly(asyncio.ensure_future(work))
                finally:
                    keeper.cancel()
        except BaseExceptionGroup as errors:
            raise leaf_errors(errors)[0] from None
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_RELEASE_TIMEOUT_S):
                    await self.queue.release(self.name, claim.entry_id)
                self._tell("released", claim)
            raise

    async def _leased(
        self,
        lease: _Lease,
        claim: WorkClaim,
        run: RunRequest,
        work: Callable[[], Awaitable[RemoteResult]],
    ) -> RemoteResult:
        """``work`` under the task's run lease: taken first (waiting while another holder keeps
        it), renewed meanwhile, released at the end however it ends. Raises ``_LeaseLost`` when
        the lease is not sure any more (``work`` is cancelled)."""
        try:
            # Inside: a stop that lands while the store takes the lease (its row written, the
            # answer not yet back) must release it too, or it holds the task for a whole ttl.
            await self._take(lease, claim, run)
            async with asyncio.TaskGroup() as group:
                keeper = group.create_task(self._keep_lease(lease), name=f"lease:{lease.task_id}")
                try:
                    result = await firmly(asyncio.ensure_future(work()))
                    await self._bus_drained()
                    return result
                finally:
                    keeper.cancel()
        except BaseExceptionGroup as errors:
            raise leaf_errors(errors)[0] from None
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_RELEASE_TIMEOUT_S):
                    await self.app.store.release_lease(lease.task_id, lease.holder)

    async def _take(self, lease: _Lease, claim: WorkClaim, run: RunRequest) -> None:
        """Take the run lease, waiting while another holder keeps it alive (checked every third
        of the ttl; its holder may finish, release it, or die and let it expire)."""
        loop = asyncio.get_running_loop()
        waiting = False
        while True:
            sent = loop.time()
            if await self.app.store.acquire_lease(lease.task_id, lease.holder, ttl=lease.ttl):
                lease.confirmed(sent)
                if waiting:
                    log.info("worker.lease_taken", task_id=lease.task_id, run_id=run.run_id)
                return
            if not waiting:
                waiting = True
                held = await self.app.store.get_lease(lease.task_id)
                holder = held.holder if held is not None else "another worker"
                log.info(
                    "worker.lease_busy", task_id=lease.task_id, run_id=run.run_id, holder=holder
                )
                self._tell("waiting", claim, run_id=run.run_id, detail=f"run held by {holder}")
            await asyncio.sleep(lease.ttl.total_seconds() / 3)

    async def _keep_lease(self, lease: _Lease) -> None:
        """Renew the lease every third of its ttl, until cancelled. Raises ``_LeaseLost`` when
        another holder took it over, or when no renewal succeeded in time (the store
        unreachable, or this process paused): past ``fence_at`` it may expire any moment."""
        loop = asyncio.get_running_loop()
        every = lease.ttl.total_seconds() / 3
        while True:
            await asyncio.sleep(max(0.0, min(every, lease.fence_at - loop.time())))
            sent = loop.time()
            try:
                async with asyncio.timeout_at(lease.fence_at):
                    held = await self.app.store.renew_lease(
                        lease.task_id, lease.holder, ttl=lease.ttl
                    )
            except Exception as err:  # the store's trouble, or the fence reached
                if loop.time() >= lease.fence_at:
                    raise _LeaseLost("it could not be renewed in time") from err
                log.warning("worker.lease_renew_failed", task_id=lease.task_id, error=str(err))
                continue
            if not held:
                raise _LeaseLost("another worker took it over")
            lease.confirmed(sent)

    async def _bus_drained(self) -> None:
        """Wait (a while) for events the bus still buffers, the run's finish among them."""
        drained = getattr(self.app.bus, "wait_drained", None)
        if drained is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_DRAIN_TIMEOUT_S):
                await drained()

    async def _release_stale(self, claim: WorkClaim) -> int:
        """Release the task's reservations no live call can still settle; how many."""
        age = stale_reservation_age(self.app.settings.provider_timeout_s)
        return await self.app.store.release_reservations(claim.task_id, older_than=age)

    async def _keep(self, claim: WorkClaim) -> None:
        """Touch the claim every third of the reclaim time, until cancelled. A Redis outage is
        ridden out (the claim may be reclaimed meanwhile: the next touch says so); a claim gone
        altogether (a Redis that restarted empty) is still this worker's to finish. On a
        reclaimed claim, the reservations a dead holder made too recently to be released at
        takeover are released as they grow stale."""
        every = self.options.reclaim_after_s / 3
        while True:
            await asyncio.sleep(every)
            try:
                hold = await self.queue.touch(self.name, claim.entry_id)
            except BusUnavailable as err:
                log.warning("worker.touch_failed", task_id=claim.task_id, error=str(err))
                continue
            if hold == "taken":
                raise _ClaimTaken(claim.task_id)
            if claim.reclaimed:
                released = await self._release_stale(claim)
                if released:
                    log.warning(
                        "worker.stale_reservations_released",
                        task_id=claim.task_id,
                        reservations=released,
                    )

    def _tell(
        self, kind: ReportKind, claim: WorkClaim, *, run_id: str = "", detail: str = ""
    ) -> None:
        if self._report is not None:
            self._report(WorkerReport(kind, claim.task_id, run_id or claim.run_id, detail))


def worker_problems(settings: Settings) -> list[str]:
    """What stops a worker from running with ``settings``: it takes tasks from the Redis work
    queue and shares tasks and budgets through Postgres."""
    problems = []
    database = settings.database_url or ""
    if not database.startswith(("postgresql://", "postgres://")):
        problems.append(
            "AGENTFIRM_DATABASE_URL is not a postgresql:// URL — workers share tasks and budgets"
            " through Postgres (set it to postgresql://USER:PASSWORD@HOST/DB)"
        )
    if not settings.redis_url:
        problems.append(
            "AGENTFIRM_REDIS_URL is not set — workers take tasks from the Redis work queue"
            " (set it to redis://HOST:6379/0)"
        )
    return problems


async def serve(
    settings: Settings,
    *,
    redactor: Redactor,
    secrets: SecretStore,
    env: Mapping[str, str],
    options: WorkerOptions,
    report: Report | None = None,
    started: Callable[[], None] | None = None,
) -> int:
    """Open what ``settings`` name (the shared store and bus, the work queue) and run a
    ``Worker`` until cancelled or done (``options.max_tasks``); how many tasks it claimed.
    ``started`` is told once the queue is open. Raises ``ConfigError`` before taking any work
    when no provider can serve a task (see ``worker_problems`` for what to check first)."""
    from agentfirm.bus.redis_work import RedisWorkQueue

    assert settings.redis_url is not None  # see worker_problems
    app = await App.open(settings, redactor=redactor, secrets=secrets, env=env)
    queue = RedisWorkQueue(settings.redis_url)
    async with app:
        app.router  # noqa: B018 - fail now, not at the first task, when no provider can serve
        await queue.open()
        try:
            settle_heap()
            if started is not None:
                started()
            return await Worker(app, queue, options, report=report).run()
        finally:
            await queue.close()
