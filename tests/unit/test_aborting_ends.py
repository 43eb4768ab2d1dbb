"""An ``aborting`` task ends ``aborted`` whoever left it so (issue 17): a cancel whose build did
not answer in time — from the daemon or from another shell with ``tasks cancel --no-daemon`` —
used to leave the task's driver waiting for ever on a build that never answers (a worker gone),
the task ``aborting`` and the ``run`` following it hanging. A cancel whose wait is stopped
(Ctrl-C) leaves the task ``aborting`` too, not building on unwatched."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentfirm.build_master.budget_gate import BuildAborted
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import LedgerEntry, ModuleSpec, Plan, Task, TaskSpec, TaskStatus
from agentfirm.master import abort_watch
from agentfirm.master.decisions import AutoDecider
from agentfirm.master.task_lock import TaskLocks
from agentfirm.master.transitions import cancel_from_here, move
from agentfirm.money import usd_to_nano
from agentfirm.router import build_router
from agentfirm.settings import load_settings
from agentfirm.store.sqlite import SQLiteStore
from tests.unit.test_abort import REQUEST, _master

S = TaskStatus
GUARD_S = 30
"""Not a timing assertion: a bound so that a hang fails the test instead of the suite."""


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, SQLiteLogBus, Path]]:
    store, bus = SQLiteStore(tmp_path / "s.db"), SQLiteLogBus(tmp_path / "b.db")
    await store.open()
    await bus.open()
    yield store, bus, tmp_path
    await bus.close()
    await store.close()


class Unanswering:
    """A runner whose build never answers (a worker that died with the run claimed)."""

    name = "worker"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = False

    async def execute(self, spec: TaskSpec, *, notes: str = "") -> str:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        raise AssertionError("never answers")


async def test_the_driver_ends_a_task_left_aborting_once_its_build_cannot_be_spending(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, bus, root = parts
    monkeypatch.setattr(abort_watch, "POLL_S", 0.01)
    settings = load_settings({"AGENTFIRM_HOME": str(root), "AGENTFIRM_OFFLINE": "1"})
    master = _master(parts, build_router(settings, store, available={"offline"}), AutoDecider())
    runner = Unanswering()
    master.runner = runner
    master.abort_wait_s = 0.05
    task = await master.intake(REQUEST, persona="patent_research")
    await master.plan(task)
    # A call of the build in flight, as the worker left it: booked at its reservation.
    held = LedgerEntry(call_id="c_1", task_id=task.id, tier="execution", provider="p", model="m")

    async with asyncio.timeout(GUARD_S):
        driving = asyncio.create_task(master.approve_and_execute(task.id, usd_to_nano(5)))
        await runner.started.wait()
        assert await store.reserve(task.id, "c_1", 1_000, for_call=held)
        await move(store, bus, task.id, S.ABORTING, actor="cli:ann", reason="stop")
        result = await driving

    assert result.status == "aborted"
    assert runner.cancelled
    last = (await store.list_transitions(task.id))[-1]
    assert last.to_status is S.ABORTED
    assert "worker build did not answer the abort within 0.05s" in last.reason
    [row] = [r for r in await store.list_ledger(task.id) if r.call_id == "c_1"]
    assert (row.outcome, row.upper_bound, row.cost_nano) == ("cancelled", True, 1_000)


async def test_the_driver_hears_its_task_turn_aborting_without_reading_for_it(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever moves the task (another process through the bus, here this one) publishes the
    transition, which the driver's event pump reads anyway: its watch hears it there, and
    reads the store only as a fallback (here: not before the guard runs out)."""
    store, bus, root = parts
    monkeypatch.setattr(abort_watch, "POLL_S", GUARD_S)
    settings = load_settings({"AGENTFIRM_HOME": str(root), "AGENTFIRM_OFFLINE": "1"})
    master = _master(parts, build_router(settings, store, available={"offline"}), AutoDecider())
    runner = Unanswering()
    master.runner = runner
    master.abort_wait_s = 0.0
    task = await master.intake(REQUEST, persona="patent_research")
    await master.plan(task)

    async with asyncio.timeout(GUARD_S):
        driving = asyncio.create_task(master.approve_and_execute(task.id, usd_to_nano(5)))
        await runner.started.wait()
        await move(store, bus, task.id, S.ABORTING, actor="cli:ann", reason="stop")
        result = await driving

    assert result.status == "aborted"
    assert runner.cancelled


class Swallowing(Unanswering):
    """A build that swallows the first cancellation and goes on (Python 3.11's ``wait_for``
    does so when what it waited for ends in that instant: psycopg_pool's wait for a
    connection), then never answers."""

    async def execute(self, spec: TaskSpec, *, notes: str = "") -> str:
        self.started.set()
        with contextlib.suppress(asyncio.CancelledError):  # swallowed
            await asyncio.Event().wait()
        return await super().execute(spec, notes=notes)


async def test_a_build_that_swallows_the_first_cancel_is_given_up_on_all_the_same(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, bus, _ = parts
    monkeypatch.setattr(abort_watch, "POLL_S", 0.01)
    await store.create_task(Task(id="t_1", request="x"), actor="test")
    for step in (S.CLASSIFIED, S.PLANNED, S.AWAITING_PLAN_APPROVAL, S.APPROVED, S.HANDED_OFF):
        await move(store, bus, "t_1", step, actor="test", reason="")
    runner = Swallowing()
    watched = abort_watch.AbortWatch(runner, store, within_s=0.0)
    module = ModuleSpec(id="m", title="M", brief="b", output_type="research_notes")
    spec = TaskSpec(
        task_id="t_1", request="x", persona="p", plan=Plan(modules=[module]), budget_nano=1
    )
    async with asyncio.timeout(GUARD_S):
        executing = asyncio.create_task(watched.execute(spec))
        await runner.started.wait()
        await move(store, bus, "t_1", S.ABORTING, actor="cli:ann", reason="stop")
        with pytest.raises(BuildAborted):
            await executing
    assert runner.cancelled


async def test_a_build_that_answers_is_not_watched_away(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watch gives up only on an ``aborting`` task: a build that ends returns as before."""
    store, _, _ = parts
    monkeypatch.setattr(abort_watch, "POLL_S", 0.01)
    await store.create_task(Task(id="t_1", request="x"), actor="test")

    class Quick:
        name = "inproc"

        async def execute(self, spec: TaskSpec, *, notes: str = "") -> str:
            await asyncio.sleep(0.05)
            return "# draft"

    watched = abort_watch.AbortWatch(Quick(), store, within_s=0.0)
    module = ModuleSpec(id="m", title="M", brief="b", output_type="research_notes")
    spec = TaskSpec(
        task_id="t_1", request="x", persona="p", plan=Plan(modules=[module]), budget_nano=1
    )
    assert await watched.execute(spec) == "# draft"


async def test_stopping_a_cancels_wait_leaves_the_task_aborting_for_its_driver(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    """Ctrl-C on ``tasks cancel --no-daemon`` while it waits for another process's build: the
    abort was sent, but the task stayed ``executing`` — nothing would end it should the build
    never answer. It is left ``aborting``, which its driver ends."""
    store, bus, root = parts
    await store.create_task(Task(id="t_1", request="x"), actor="test")
    for status in (S.CLASSIFIED, S.PLANNED, S.AWAITING_PLAN_APPROVAL, S.APPROVED, S.HANDED_OFF):
        await store.transition("t_1", status, actor="test")
    await store.transition("t_1", S.EXECUTING, actor="test")
    TaskLocks(root / "locks").acquire("t_1")  # the process that builds it

    waiting = asyncio.create_task(
        cancel_from_here(
            store,
            bus,
            TaskLocks(root / "locks"),
            "t_1",
            actor="me",
            reason="enough",
            answer_s=GUARD_S,
            runner="worker",
        )
    )
    async with asyncio.timeout(GUARD_S):
        while not await bus.replay("t_1", stream="control"):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    assert (await store.get_task("t_1")).status is S.ABORTING
    last = (await store.list_transitions("t_1"))[-1]
    assert last.reason == "enough; stopped waiting for its worker build to answer"
