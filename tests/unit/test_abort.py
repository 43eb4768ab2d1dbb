"""Control signals during a wave: abort stops every running sub-agent — the calls it has in
flight answer within the grace and are booked as answered, or are cut off past it and booked at
their reservations — and closes the task; a budget raise resumes the calls paused on
``budget.exceeded``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentfirm.build_master.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import ModuleStatus, Task, TaskStatus
from agentfirm.handoff.repos import LocalGitRepos
from agentfirm.master.agent import MasterAgent
from agentfirm.master.decisions import AutoDecider, BudgetDecision
from agentfirm.master.task_lock import TaskLocks
from agentfirm.money import usd_to_nano
from agentfirm.personas.library import PersonaLibrary
from agentfirm.router import build_router
from agentfirm.router.chains import resolve_chains
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers.offline import OfflineProvider
from agentfirm.router.router import Router
from agentfirm.settings import load_settings
from agentfirm.store.sqlite import SQLiteStore

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
FIRST_WAVE = {"feature_breakdown", "prior_art_search", "non_patent_literature_search"}
LATENCY_MS = 30_000
S = TaskStatus
GUARD_S = 60  # against a hang only: an abort that works ends the test long before


class SlowCalls:
    """The offline provider's simulated latency: records who is mid-call and who was
    cancelled there."""

    def __init__(self, expected: int) -> None:
        self.sleeping = 0
        self.cancelled = 0
        self.finished = 0
        self.all_in = asyncio.Event()
        self.answer = asyncio.Event()
        """Set: every call answers at once."""
        self.expected = expected

    async def __call__(self, seconds: float) -> None:
        self.sleeping += 1
        if self.sleeping == self.expected:
            self.all_in.set()
        try:
            async with asyncio.timeout(seconds):
                await self.answer.wait()
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, SQLiteLogBus, Path]]:
    store, bus = SQLiteStore(tmp_path / "s.db"), SQLiteLogBus(tmp_path / "b.db")
    await store.open()
    await bus.open()
    yield store, bus, tmp_path
    await bus.close()
    await store.close()


def _master(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path], router: Any, decider: AutoDecider
) -> MasterAgent:
    store, bus, root = parts
    return MasterAgent(
        store=store,
        bus=bus,
        build=BuildMaster(store=store, bus=bus, router=router, max_concurrency=8),
        personas=PersonaLibrary.load(),
        pricing=router,
        repos=LocalGitRepos(root / "repos"),
        decider=decider,
        locks=TaskLocks(root / "locks"),
        quality_revision=False,
    )


def _slow_router(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path], slow: SlowCalls, *, cancel_grace_s: float
) -> Router:
    store, _, root = parts
    settings = load_settings({"AGENTFIRM_HOME": str(root), "AGENTFIRM_OFFLINE": "1"})
    return Router(
        chains=resolve_chains(settings, {"offline"}),
        providers={"offline": OfflineProvider((LATENCY_MS, LATENCY_MS), sleep=slow)},
        pricer=Pricer(settings.prices),
        store=store,
        timeout_s=LATENCY_MS / 1000 * 4,
        cancel_grace_s=cancel_grace_s,
    )


async def test_abort_during_a_wave_lets_the_calls_in_flight_answer_and_books_what_they_cost(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    store, bus, _ = parts
    slow = SlowCalls(expected=len(FIRST_WAVE))
    master = _master(parts, _slow_router(parts, slow, cancel_grace_s=GUARD_S), AutoDecider())
    task = await master.intake(REQUEST, persona="patent_research")
    await master.plan(task)

    async with asyncio.timeout(GUARD_S):
        running = asyncio.create_task(master.approve_and_execute(task.id, usd_to_nano(5)))
        await slow.all_in.wait()  # the whole first wave is mid-call
        await bus.publish(task.id, "abort", {"reason": "stop now"}, stream="control")
        await asyncio.sleep(0.05)
        assert not running.done()  # waiting for the answers: the provider bills them anyway
        slow.answer.set()
        result = await running

    assert (result.status, result.error) == ("aborted", "build aborted: stop now")
    assert (slow.cancelled, slow.finished) == (0, len(FIRST_WAVE))
    budget = await store.get_budget(task.id)
    assert budget.reserved_nano == 0
    rows = [r for r in await store.list_ledger(task.id) if r.module_id in FIRST_WAVE]
    assert sorted(r.module_id or "" for r in rows) == sorted(FIRST_WAVE)
    assert {(r.outcome, r.upper_bound) for r in rows} == {("ok", False)}  # as answered
    assert sum(r.cost_nano for r in await store.list_ledger(task.id)) == budget.spent_nano
    runs = {r.module_id: r.status for r in await store.list_module_runs(task.id)}
    assert {runs[m] for m in FIRST_WAVE} == {ModuleStatus.PENDING}  # resumable, not failed


async def test_abort_during_a_wave_cuts_off_calls_that_do_not_answer_within_the_grace(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    store, bus, _ = parts
    slow = SlowCalls(expected=len(FIRST_WAVE))
    router = _slow_router(parts, slow, cancel_grace_s=0.05)
    master = _master(parts, router, AutoDecider())
    task = await master.intake(REQUEST, persona="patent_research")
    await master.plan(task)

    async with asyncio.timeout(GUARD_S):
        running = asyncio.create_task(master.approve_and_execute(task.id, usd_to_nano(5)))
        await slow.all_in.wait()  # the whole first wave is mid-call
        held = await store.get_budget(task.id)
        assert held.reserved_nano > 0
        await bus.publish(task.id, "abort", {"reason": "stop now"}, stream="control")
        result = await running

    assert (result.status, result.error) == ("aborted", "build aborted: stop now")
    assert (slow.cancelled, slow.finished) == (len(FIRST_WAVE), 0)
    assert (await store.get_task(task.id)).status is TaskStatus.ABORTED
    budget = await store.get_budget(task.id)
    assert budget.reserved_nano == 0
    rows = [r for r in await store.list_ledger(task.id) if r.module_id in FIRST_WAVE]
    assert sorted(r.module_id or "" for r in rows) == sorted(FIRST_WAVE)
    # Sent, then cut off: the provider bills them; booked at their reservations, the most
    # they can cost (issue 17), which is what was held when the abort came.
    assert {(r.outcome, r.upper_bound) for r in rows} == {("cancelled", True)}
    assert all("Cancelled" in (r.error or "") for r in rows)
    assert sum(r.cost_nano for r in rows) == held.reserved_nano
    assert budget.spent_nano == held.spent_nano + held.reserved_nano
    runs = {r.module_id: r.status for r in await store.list_module_runs(task.id)}
    assert {runs[m] for m in FIRST_WAVE} == {ModuleStatus.PENDING}  # resumable, not failed


class RaisesOnce(AutoDecider):
    """Adds budget the first time it is asked, as a human at the prompt would."""

    def __init__(self, ceiling_nano: int) -> None:
        self.ceiling_nano = ceiling_nano
        self.asked: list[dict[str, Any]] = []

    async def budget_exceeded(self, task: Task, info: dict[str, Any]) -> BudgetDecision:
        self.asked.append(info)
        if len(self.asked) > 1:
            return BudgetDecision(None, "once is enough")
        return BudgetDecision(self.ceiling_nano, "raised at the prompt")


async def test_a_budget_pause_resumes_after_a_raise_and_completes_under_the_new_ceiling(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    store, bus, root = parts
    settings = load_settings({"AGENTFIRM_HOME": str(root), "AGENTFIRM_OFFLINE": "1"})
    router = build_router(settings, store, available={"offline"})
    new_ceiling = usd_to_nano(5)
    decider = RaisesOnce(new_ceiling)
    master = _master(parts, router, decider)

    async with asyncio.timeout(GUARD_S):
        # Room for a few modules, not the plan: the build pauses on budget.exceeded mid-run.
        result = await master.run(REQUEST, persona="patent_research", budget_usd="0.05")

    assert result.status == "completed"
    assert len(decider.asked) == 1
    events = [e.type for e in await bus.replay(result.task_id)]
    assert events.count("budget.exceeded") == 1
    paused_at = events.index("budget.exceeded")
    assert "cost.updated" in events[:paused_at]  # paused mid-run, not before it
    assert "build.completed" in events[paused_at:]  # and carried on after the raise
    transitions = [
        (t.from_status, t.to_status) for t in await store.list_transitions(result.task_id)
    ]
    assert (TaskStatus.EXECUTING, TaskStatus.AWAITING_BUDGET) in transitions
    assert (TaskStatus.AWAITING_BUDGET, TaskStatus.EXECUTING) in transitions
    ledger = await store.list_ledger(result.task_id)
    assert any(r.outcome == "budget_refused" for r in ledger)
    budget = await store.get_budget(result.task_id)
    assert budget.ceiling_nano == new_ceiling
    assert sum(r.cost_nano for r in ledger) == budget.spent_nano <= new_ceiling
    assert budget.reserved_nano == 0


async def test_a_task_left_aborting_ends_aborted_when_driven_again(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    """A daemon that stopped while a build elsewhere had not answered its cancel leaves the task
    ``aborting``: whoever drives it next ends it ``aborted``, running nothing."""
    store, _, root = parts
    settings = load_settings({"AGENTFIRM_HOME": str(root), "AGENTFIRM_OFFLINE": "1"})
    master = _master(parts, build_router(settings, store, available={"offline"}), AutoDecider())
    task = await master.intake(REQUEST, persona="patent_research")
    await master.plan(task)
    await store.set_budget(task.id, usd_to_nano(5))
    for status in (S.APPROVED, S.HANDED_OFF, S.EXECUTING, S.ABORTING):
        await store.transition(task.id, status, actor="test")
    calls = len(await store.list_ledger(task.id))

    result = await master.drive(task.id)

    assert result.status == "aborted"
    assert (await store.get_task(task.id)).status is S.ABORTED
    assert len(await store.list_ledger(task.id)) == calls


async def test_a_cancel_from_another_process_leaves_a_build_that_does_not_answer_aborting(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    """``tasks cancel --no-daemon`` on a task another process builds: the abort goes out, and
    a build that has not ended the task within the answer time leaves it ``aborting`` (the
    daemon's words), not ``aborted`` with its calls in flight booked as estimates."""
    from agentfirm.master.transitions import cancel_from_here

    store, bus, root = parts
    await store.create_task(Task(id="t_1", request="x"), actor="test")
    for status in (S.CLASSIFIED, S.PLANNED, S.AWAITING_PLAN_APPROVAL, S.APPROVED, S.HANDED_OFF):
        await store.transition("t_1", status, actor="test")
    await store.transition("t_1", S.EXECUTING, actor="test")
    TaskLocks(root / "locks").acquire("t_1")  # the process that builds it

    status = await cancel_from_here(
        store,
        bus,
        TaskLocks(root / "locks"),
        "t_1",
        actor="me",
        reason="enough",
        answer_s=0.05,
        runner="inproc",
    )

    assert status is S.ABORTING
    assert (await store.get_task("t_1")).status is S.ABORTING
    [abort] = await bus.replay("t_1", stream="control")
    assert (abort.type, abort.payload["reason"]) == ("abort", "enough")
    [*_, moved] = await bus.replay("t_1")
    assert moved.payload["reason"] == "enough; its inproc build has not answered the abort in 0.05s"
    again = await cancel_from_here(
        store,
        bus,
        TaskLocks(root / "locks"),
        "t_1",
        actor="me",
        reason="still",
        answer_s=0.05,
        runner="inproc",
    )
    assert again is S.ABORTING  # asked already, as the daemon says it (not "being driven")


async def test_a_cancel_lets_a_build_elsewhere_that_nothing_drives_book_its_calls_first(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    """``tasks cancel --no-daemon`` on a task nothing drives whose build runs on a worker, mid-
    call: the task ended at once, booking the call at its reservation ("≤") and refusing the
    worker's real settle. The cancel now waits for the worker's call to be booked first."""
    from agentfirm.domain.models import LedgerEntry
    from agentfirm.master.transitions import cancel_from_here

    store, bus, root = parts
    await store.create_task(Task(id="t_1", request="x"), actor="test")
    for status in (S.CLASSIFIED, S.PLANNED, S.AWAITING_PLAN_APPROVAL, S.APPROVED, S.HANDED_OFF):
        await store.transition("t_1", status, actor="test")
    await store.transition("t_1", S.EXECUTING, actor="test")
    await store.set_budget("t_1", 10_000_000)
    row = LedgerEntry(call_id="c_1", task_id="t_1", tier="execution", provider="p", model="m")
    assert await store.reserve(
        "t_1", "c_1", 5_000_000, for_call=row.model_copy(update={"outcome": "cancelled"})
    )

    async def worker() -> None:  # obeys the abort once its call in flight has answered
        while True:
            if await bus.replay("t_1", stream="control"):
                break
            await asyncio.sleep(0.01)
        await store.settle("c_1", row.model_copy(update={"cost_nano": 1_234_000}))

    answering = asyncio.create_task(worker())
    status = await cancel_from_here(
        store,
        bus,
        TaskLocks(root / "locks"),
        "t_1",
        actor="me",
        reason="enough",
        answer_s=GUARD_S,
        runner="worker",
    )
    await answering

    assert status is S.ABORTED
    [booked] = await store.list_ledger("t_1")
    assert (booked.outcome, booked.cost_nano) == ("ok", 1_234_000)
    budget = await store.get_budget("t_1")
    assert (budget.spent_nano, budget.reserved_nano) == (1_234_000, 0)
