"""Control signals during a wave: abort cancels every running sub-agent mid-call and closes the
task; a budget raise resumes the calls paused on ``budget.exceeded``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentfirm.build.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain import ModuleStatus, Task, TaskStatus
from agentfirm.handoff.repos import LocalGitRepos
from agentfirm.master.agent import MasterAgent
from agentfirm.master.decisions import AutoDecider, BudgetDecision
from agentfirm.master.task_lock import TaskLocks
from agentfirm.money import usd_to_nano
from agentfirm.personas import PersonaLibrary
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
GUARD_S = 60  # against a hang only: an abort that works ends the test long before


class SlowCalls:
    """The offline provider's simulated latency: records who is mid-call and who was
    cancelled there."""

    def __init__(self, expected: int) -> None:
        self.sleeping = 0
        self.cancelled = 0
        self.finished = 0
        self.all_in = asyncio.Event()
        self.expected = expected

    async def __call__(self, seconds: float) -> None:
        self.sleeping += 1
        if self.sleeping == self.expected:
            self.all_in.set()
        try:
            await asyncio.sleep(seconds)
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


async def test_abort_during_a_wave_cancels_every_running_sub_agent_mid_call(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    store, bus, root = parts
    settings = load_settings({"AGENTFIRM_HOME": str(root), "AGENTFIRM_OFFLINE": "1"})
    slow = SlowCalls(expected=len(FIRST_WAVE))
    router = Router(
        chains=resolve_chains(settings, {"offline"}),
        providers={"offline": OfflineProvider((LATENCY_MS, LATENCY_MS), sleep=slow)},
        pricer=Pricer(settings.prices),
        store=store,
        timeout_s=LATENCY_MS / 1000 * 4,
    )
    master = _master(parts, router, AutoDecider())
    task = await master.intake(REQUEST, persona="patent_research")
    await master.plan(task)

    async with asyncio.timeout(GUARD_S):
        running = asyncio.create_task(master.approve_and_execute(task.id, usd_to_nano(5)))
        await slow.all_in.wait()  # the whole first wave is mid-call
        budget = await store.get_budget(task.id)
        assert budget.reserved_nano > 0
        await bus.publish(task.id, "abort", {"reason": "stop now"}, stream="control")
        result = await running

    assert (result.status, result.error) == ("aborted", "build aborted: stop now")
    assert (slow.cancelled, slow.finished) == (len(FIRST_WAVE), 0)
    assert (await store.get_task(task.id)).status is TaskStatus.ABORTED
    budget = await store.get_budget(task.id)
    assert budget.reserved_nano == 0
    assert budget.spent_nano == 0
    rows = [r for r in await store.list_ledger(task.id) if r.module_id in FIRST_WAVE]
    assert sorted(r.module_id or "" for r in rows) == sorted(FIRST_WAVE)
    assert {(r.outcome, r.cost_nano) for r in rows} == {("error", 0)}
    assert all("Cancelled" in (r.error or "") for r in rows)
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
