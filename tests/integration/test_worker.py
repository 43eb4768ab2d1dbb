"""``agentfirm.runs.worker`` in one process on a real Redis + Postgres: a worker whose claim another
worker took over stops its build and leaves the task to the new holder, which finishes it; work
that a Redis restarting empty lost is queued again by the waiting Master Agent; a second wait on a
task whose run is still queued joins that run instead of queueing another."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import pytest
import redis.asyncio
import structlog.testing

from agentfirm.app import App
from agentfirm.bus.redis_work import WORK_STREAM, RedisWorkQueue
from agentfirm.domain.models import ModuleStatus
from agentfirm.handoff.task_repo import RunRequest
from agentfirm.master.decisions import AutoDecider
from agentfirm.runs.remote import run_for_worker
from agentfirm.runs.worker import Worker, WorkerOptions, WorkerReport
from agentfirm.runs.worker_queue import WorkerRunner

if TYPE_CHECKING:
    from tests.integration.redis_server import RedisServer

pytestmark = pytest.mark.integration

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
# A guard against hanging forever when a behaviour is broken, not a timing assertion.
GUARD_S = 60


async def a_module_running(app: App) -> str:
    """The task with a module running, once there is one."""
    while True:
        for task in await app.store.list_tasks():
            runs = await app.store.list_module_runs(task.id)
            if any(r.status is ModuleStatus.RUNNING for r in runs):
                return task.id
        await asyncio.sleep(0.02)


@pytest.fixture
def offline_latency_ms() -> str:
    # LLM calls slow enough that a build can be caught mid-way: a module running, a worker
    # stopped before it finished.
    return "100-200"


async def test_a_worker_whose_claim_was_taken_over_stops_and_the_new_holder_finishes(
    app: App, queue: RedisWorkQueue
) -> None:
    running = asyncio.create_task(app.master(AutoDecider()).run(REQUEST))
    slow: list[WorkerReport] = []
    first = Worker(
        app, queue, WorkerOptions(name="slow", reclaim_after_s=0.6, max_tasks=1), report=slow.append
    )
    async with asyncio.timeout(GUARD_S):
        stopped = asyncio.create_task(first.run())

        task_id = await a_module_running(app)
        # Another worker takes the claim over, as XAUTOCLAIM does once a claim looks dead.
        taken = await queue.claim("fast", block_ms=None, min_idle_ms=0)
        assert taken is not None
        assert taken.reclaimed

        assert await stopped == 1
        unfinished = [e for e in await app.bus.replay(task_id) if e.type == "runner.finished"]
        fast: list[WorkerReport] = []
        await Worker(app, queue, WorkerOptions(name="fast"), report=fast.append).process(taken)
        result = await running

    assert [r.kind for r in slow] == ["claimed", "taken_over"]
    assert unfinished == []  # the slow worker announced nothing: the run was not over
    assert [(r.kind, r.detail) for r in fast] == [("claimed", "reclaimed"), ("finished", "ok")]
    assert result.status == "completed", result.error
    assert await queue.touch("fast", taken.entry_id) == "gone"  # acked by its holder
    runs = await app.store.list_module_runs(task_id)
    assert all(r.status is ModuleStatus.DONE for r in runs)
    budget = await app.store.get_budget(task_id)
    assert budget.reserved_nano == 0
    assert budget.spent_nano <= budget.ceiling_nano


async def test_a_worker_stopped_mid_build_hands_its_task_back_at_once(
    app: App, queue: RedisWorkQueue
) -> None:
    running = asyncio.create_task(app.master(AutoDecider()).run(REQUEST))
    leaving: list[WorkerReport] = []
    first = Worker(app, queue, WorkerOptions(name="leaving"), report=leaving.append)
    async with asyncio.timeout(GUARD_S):
        stopping = asyncio.create_task(first.run())
        while not any(r.kind == "claimed" for r in leaving):  # noqa: ASYNC110 - its reports
            await asyncio.sleep(0.02)
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping

        # with the default reclaim time (a minute), only a handed-back claim is taken now
        taken = await queue.claim("staying", block_ms=None)
        assert taken is not None
        await Worker(app, queue, WorkerOptions(name="staying")).process(taken)
        result = await running

    assert [r.kind for r in leaving] == ["claimed", "released"]
    assert taken.reclaimed
    assert result.status == "completed", result.error


def worker_runner(app: App) -> WorkerRunner:
    # A short check interval keeps the test quick; it changes no behaviour.
    return WorkerRunner(
        store=app.store, bus=app.bus, repos=app.repos, settings=app.settings, check_every_s=0.2
    )


async def queued_entries(url: str) -> int:
    raw = redis.asyncio.Redis.from_url(url, decode_responses=True)
    try:
        return int(await raw.xlen(WORK_STREAM))
    finally:
        await raw.aclose()


async def test_work_lost_by_redis_restarting_empty_is_queued_again_and_finished(
    app: App,
    queue: RedisWorkQueue,
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    master = app.master(AutoDecider())
    master.runner = worker_runner(app)
    async with asyncio.timeout(GUARD_S):
        running = asyncio.create_task(master.run(REQUEST))
        while await queued_entries(redis_url) == 0:  # noqa: ASYNC110 - Redis state
            await asyncio.sleep(0.02)
        # No worker has claimed the run yet; a Redis without persistence comes back empty.
        await asyncio.to_thread(redis_server.restart)

        reports: list[WorkerReport] = []
        worker = Worker(app, queue, WorkerOptions(name="late", max_tasks=1), report=reports.append)
        assert await worker.run() == 1
        result = await running

    assert result.status == "completed", result.error
    assert [r.kind for r in reports] == ["claimed", "finished"]
    finished = [e for e in await app.bus.replay(result.task_id) if e.type == "runner.finished"]
    assert [e.payload["outcome"] for e in finished] == ["ok"]

    # The same run handed to a worker once more (queued again after its acked entry was lost,
    # its finish missed): reported as it ended, not run again.
    task = await app.store.get_task(result.task_id)
    assert task.spec is not None
    run_id = str(finished[0].payload["run_id"])
    again = await run_for_worker(app, task.spec, RunRequest(run_id=run_id, runner="worker"))
    after = [e for e in await app.bus.replay(result.task_id) if e.type == "runner.finished"]
    assert (again.run_id, again.outcome) == (run_id, "ok")
    assert after == finished


async def test_a_second_wait_on_a_task_joins_its_queued_run_instead_of_queueing_another(
    app: App,
    queue: RedisWorkQueue,
    redis_url: str,
) -> None:
    async with asyncio.timeout(GUARD_S):
        running = asyncio.create_task(app.master(AutoDecider()).run(REQUEST))
        while await queued_entries(redis_url) == 0:  # noqa: ASYNC110 - Redis state
            await asyncio.sleep(0.02)
        (task,) = await app.store.list_tasks()
        assert task.spec is not None
        # The Master Agent resumed after dying mid-wait runs the build again, as this does.
        with structlog.testing.capture_logs() as logs:
            again = asyncio.create_task(worker_runner(app).execute(task.spec))
            while await queued_entries(redis_url) == 1 and not again.done():
                if any(line["event"] == "runner.rejoined" for line in logs):
                    break
                await asyncio.sleep(0.02)
        reports: list[WorkerReport] = []
        worker = Worker(app, queue, WorkerOptions(name="only", max_tasks=1), report=reports.append)
        assert await worker.run() == 1
        result = await running
        draft = await again

    assert result.status == "completed", result.error
    assert await queued_entries(redis_url) == 1
    assert [r.kind for r in reports] == ["claimed", "finished"]
    assert draft.strip()
