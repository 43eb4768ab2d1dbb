"""The Build Master against a real SQLite store and bus, with a scripted router."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentfirm.build_master.assembly import SIMULATION_BANNER
from agentfirm.build_master.budget_gate import BuildAborted
from agentfirm.build_master.master import BuildMaster, ModuleFailed
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import (
    Event,
    LedgerEntry,
    ModuleSpec,
    ModuleStatus,
    Plan,
    Task,
    TaskSpec,
    Tier,
)
from agentfirm.errors import AgentfirmError, BudgetExceeded, ProviderError
from agentfirm.ids import new_id
from agentfirm.money import usd_to_nano
from agentfirm.router.base import CallResult, Message, Usage
from agentfirm.router.errors import FatalProviderError
from agentfirm.store.sqlite import SQLiteStore

CALL_COST = usd_to_nano("0.001")
CHECKLIST = ["Cites a source for every figure", "States the market size", "Lists the top risks"]


class FakeRouter:
    """Scripted ``RouterLike``: per-module hooks run before answering, scripted provider failures
    and budget refusals, a concurrency count, and a ledger row per answered call."""

    def __init__(self, store: SQLiteStore, *, simulated: bool = False) -> None:
        self.store = store
        self.simulated = simulated
        self.calls: list[tuple[str, Tier]] = []
        self.prompts: dict[str, list[str]] = defaultdict(list)
        self.schemas: dict[str, dict[str, Any]] = {}
        self.entered: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.before: dict[str, Callable[[], Awaitable[None]]] = {}
        self.fail: dict[str, int] = {}
        self.failure: type[ProviderError] = ProviderError
        self.refuse: dict[str, int] = {}
        self.refusal_barrier: asyncio.Barrier | None = None
        self.responses: dict[str, dict[str, Any]] = {}
        self.cancelled: list[str] = []
        self.in_flight = 0
        self.peak = 0

    def called(self, module_id: str) -> int:
        return sum(1 for called, _tier in self.calls if called == module_id)

    async def call(
        self,
        *,
        tier: Tier,
        messages: Sequence[Message],
        task_id: str,
        module_id: str | None = None,
        output_schema: dict[str, Any] | None = None,
        max_tokens: int = 2048,
    ) -> CallResult:
        assert module_id is not None
        assert output_schema is not None
        self.calls.append((module_id, tier))
        self.prompts[module_id].append("\n".join(m.content for m in messages))
        self.schemas[module_id] = output_schema
        self.entered[module_id].set()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.refuse.get(module_id, 0) > 0:
                self.refuse[module_id] -= 1
                if self.refusal_barrier is not None:
                    await self.refusal_barrier.wait()
                raise BudgetExceeded(
                    task_id=task_id,
                    needed_usd=Decimal("0.5"),
                    spent_usd=Decimal("0.75"),
                    ceiling_usd=Decimal("1"),
                )
            if module_id in self.before:
                await self.before[module_id]()
            if self.fail.get(module_id, 0) > 0:
                self.fail[module_id] -= 1
                raise self.failure(f"scripted failure of {module_id}")
            return await self._answer(task_id, module_id, tier)
        except asyncio.CancelledError:
            self.cancelled.append(module_id)
            raise
        finally:
            self.in_flight -= 1

    async def _answer(self, task_id: str, module_id: str, tier: Tier) -> CallResult:
        call_id = new_id("c")
        assert await self.store.reserve(task_id, call_id, CALL_COST)
        await self.store.settle(
            call_id,
            LedgerEntry(
                call_id=call_id,
                task_id=task_id,
                module_id=module_id,
                tier=tier,
                provider="fake",
                model="scripted-1",
                cost_nano=CALL_COST,
                simulated=self.simulated,
            ),
        )
        data = self.responses.get(module_id) or {
            "summary": f"Findings of {module_id}.",
            "findings": [{"claim": f"{module_id} claim", "evidence": "e", "source": "s"}],
            "open_questions": [],
        }
        return CallResult(
            call_id=call_id,
            tier=tier,
            provider="fake",
            model="scripted-1",
            text="",
            data=data,
            usage=Usage(input_tokens=100, output_tokens=50),
            cost_nano=CALL_COST,
            latency_ms=1,
            simulated=self.simulated,
        )


def mod(module_id: str, *deps: str) -> ModuleSpec:
    return ModuleSpec(id=module_id, title=f"Module {module_id}", depends_on=list(deps))


def make_spec(*modules: ModuleSpec) -> TaskSpec:
    return TaskSpec(
        task_id="t_build",
        request="Size the European heat pump market",
        persona="market_analyst",
        persona_name="Market Analyst",
        plan=Plan(modules=list(modules)),
        quality_checklist=CHECKLIST,
        budget_nano=usd_to_nano(10),
        assumptions=["EU-27 only"],
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "store.db")
    await store.open()
    await store.create_task(Task(id="t_build", request="Size the market"), actor="test")
    await store.set_budget("t_build", usd_to_nano(10))
    yield store
    await store.close()


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SQLiteLogBus]:
    bus = SQLiteLogBus(tmp_path / "bus.db")
    await bus.open()
    yield bus
    await bus.close()


@pytest.fixture
def router(store: SQLiteStore) -> FakeRouter:
    return FakeRouter(store)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def build(
    store: SQLiteStore, bus: SQLiteLogBus, router: FakeRouter, sleeps: list[float]
) -> BuildMaster:
    async def fake_sleep(delay: float) -> None:
        sleeps.append(delay)

    return BuildMaster(store=store, bus=bus, router=router, max_concurrency=4, sleep=fake_sleep)


async def events_of(bus: SQLiteLogBus, type_: str) -> list[Event]:
    return [e for e in await bus.replay("t_build") if e.type == type_]


@contextlib.asynccontextmanager
async def human(bus: SQLiteLogBus, on_budget: str, payload: dict[str, Any]) -> AsyncIterator[None]:
    """Answer every ``budget.exceeded`` event with ``on_budget`` on the control stream."""

    async def respond() -> None:
        async for event in bus.subscribe("t_build"):
            if event.type == "budget.exceeded":
                await bus.publish("t_build", on_budget, payload, stream="control")

    responder = asyncio.create_task(respond())
    try:
        async with asyncio.timeout(10):  # a guard against a hang, not a timing assertion
            yield
    finally:
        responder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await responder


# ---------------------------------------------------------------------------- scheduling


async def test_a_module_starts_as_soon_as_its_own_dependency_finished(
    build: BuildMaster, router: FakeRouter, bus: SQLiteLogBus
) -> None:
    # "slow" (wave 0) answers only once "child" (wave 1, after "fast") has called the router.
    async def wait_for_child() -> None:
        await router.entered["child"].wait()

    router.before["slow"] = wait_for_child
    async with asyncio.timeout(10):
        await build.execute(make_spec(mod("slow"), mod("fast"), mod("child", "fast")))
    events = [(e.type, e.module_id) for e in await bus.replay("t_build")]
    assert events.index(("module.started", "child")) < events.index(("module.completed", "slow"))


async def test_max_concurrency_is_never_exceeded(
    store: SQLiteStore, bus: SQLiteLogBus, router: FakeRouter
) -> None:
    started: list[str] = []
    changed = asyncio.Condition()

    def wait_for_next(module_id: str) -> Callable[[], Awaitable[None]]:
        async def hook() -> None:
            async with changed:
                started.append(module_id)
                position = len(started)
                changed.notify_all()
                if position < 6:
                    await changed.wait_for(lambda: len(started) > position)

        return hook

    modules = [mod(f"m{i}") for i in range(6)]
    for module in modules:
        router.before[module.id] = wait_for_next(module.id)
    build = BuildMaster(store=store, bus=bus, router=router, max_concurrency=2)
    await build.execute(make_spec(*modules))
    assert router.peak == 2


async def test_module_runs_record_waves_status_cost_and_provider(
    build: BuildMaster, store: SQLiteStore
) -> None:
    await build.execute(make_spec(mod("a"), mod("b", "a")))
    runs = {r.module_id: r for r in await store.list_module_runs("t_build")}
    assert [(runs[m].wave, runs[m].status, runs[m].attempts) for m in "ab"] == [
        (0, ModuleStatus.DONE, 1),
        (1, ModuleStatus.DONE, 1),
    ]
    assert (runs["b"].cost_nano, runs["b"].provider, runs["b"].model) == (
        CALL_COST,
        "fake",
        "scripted-1",
    )


async def test_module_events_carry_module_id_and_cost(
    build: BuildMaster, bus: SQLiteLogBus
) -> None:
    await build.execute(make_spec(mod("a")))
    module_events = [e for e in await bus.replay("t_build") if e.type.startswith("module.")]
    assert [(e.type, e.module_id) for e in module_events] == [
        ("module.started", "a"),
        ("module.completed", "a"),
    ]
    (cost,) = await events_of(bus, "cost.updated")
    assert cost.module_id == "a"
    assert cost.payload["cost_usd"] == pytest.approx(0.001)
    assert cost.payload["spent_usd"] == pytest.approx(0.001)


async def test_a_sub_agent_gets_its_upstream_output_and_the_request(
    build: BuildMaster, router: FakeRouter
) -> None:
    await build.execute(make_spec(mod("a"), mod("b", "a")))
    (prompt,) = router.prompts["b"]
    assert "Size the European heat pump market" in prompt
    assert "From module `a`" in prompt
    assert "a claim" in prompt


# ---------------------------------------------------------------------------- resume and rerun


async def test_resume_does_not_call_modules_already_done(
    build: BuildMaster, router: FakeRouter
) -> None:
    spec = make_spec(mod("a"), mod("b", "a"))
    router.fail["b"] = 2
    with pytest.raises(ModuleFailed):
        await build.execute(spec)
    await build.execute(spec)
    assert (router.called("a"), router.called("b")) == (1, 3)


async def test_rerun_calls_the_named_module_again_with_notes_and_a_new_version(
    build: BuildMaster, router: FakeRouter, store: SQLiteStore
) -> None:
    spec = make_spec(mod("a"), mod("b"))
    await build.execute(spec)
    await build.execute(spec, rerun=["a"], notes="Use 2024 figures")
    assert (router.called("a"), router.called("b")) == (2, 1)
    assert "Use 2024 figures" in router.prompts["a"][-1]
    assert (await store.latest_artifacts("t_build"))["a"].version == 2


# ---------------------------------------------------------------------------- failures


async def test_a_failing_module_is_retried_then_reported_failed(
    build: BuildMaster, router: FakeRouter, bus: SQLiteLogBus, sleeps: list[float]
) -> None:
    router.fail["a"] = 5
    with pytest.raises(ModuleFailed, match="module a failed"):
        await build.execute(make_spec(mod("a")))
    types = [e.type for e in await bus.replay("t_build") if e.module_id == "a"]
    assert types == ["module.started", "module.retrying", "module.started", "module.failed"]
    assert router.called("a") == 2
    assert sleeps == [0.5]


async def test_a_failed_module_is_marked_failed_with_its_attempts(
    build: BuildMaster, router: FakeRouter, store: SQLiteStore
) -> None:
    router.fail["a"] = 5
    with pytest.raises(ModuleFailed):
        await build.execute(make_spec(mod("a")))
    (run,) = await store.list_module_runs("t_build")
    assert (run.status, run.attempts) == (ModuleStatus.FAILED, 2)


async def test_a_request_the_provider_refuses_is_not_retried(
    build: BuildMaster, router: FakeRouter
) -> None:
    router.fail["a"] = 5
    router.failure = FatalProviderError
    with pytest.raises(ModuleFailed):
        await build.execute(make_spec(mod("a")))
    assert router.called("a") == 1


async def test_a_module_that_fails_once_completes_on_retry(
    build: BuildMaster, router: FakeRouter, store: SQLiteStore
) -> None:
    router.fail["a"] = 1
    await build.execute(make_spec(mod("a")))
    (run,) = await store.list_module_runs("t_build")
    assert (run.status, run.attempts) == (ModuleStatus.DONE, 2)


# ---------------------------------------------------------------------------- budget and abort


async def test_refused_calls_publish_one_budget_exceeded_and_finish_after_adjustment(
    build: BuildMaster, router: FakeRouter, bus: SQLiteLogBus, store: SQLiteStore
) -> None:
    router.refuse = {"a": 1, "b": 1}
    router.refusal_barrier = asyncio.Barrier(2)  # both refused before either reaches the gate
    async with human(bus, "budget.adjusted", {"ceiling_usd": 2.0}):
        await build.execute(make_spec(mod("a"), mod("b")))
    (exceeded,) = await events_of(bus, "budget.exceeded")
    assert exceeded.payload == {
        "spent_usd": 0.75,
        "ceiling_usd": 1.0,
        "needed_usd": 0.5,
        "by_module": {},
    }
    assert {r.status for r in await store.list_module_runs("t_build")} == {ModuleStatus.DONE}


async def test_budget_exceeded_reports_cost_by_module(
    build: BuildMaster, router: FakeRouter, bus: SQLiteLogBus
) -> None:
    router.refuse = {"b": 1}
    async with human(bus, "budget.adjusted", {"ceiling_usd": 2.0}):
        await build.execute(make_spec(mod("a"), mod("b", "a")))
    (exceeded,) = await events_of(bus, "budget.exceeded")
    assert exceeded.module_id == "b"
    assert exceeded.payload["by_module"] == {"a": pytest.approx(0.001)}


async def test_abort_at_the_budget_gate_raises_build_aborted(
    build: BuildMaster, router: FakeRouter, bus: SQLiteLogBus, store: SQLiteStore
) -> None:
    router.refuse = {"a": 1}
    async with human(bus, "abort", {"reason": "out of money"}):
        with pytest.raises(BuildAborted, match="out of money"):
            await build.execute(make_spec(mod("a")))
    (aborted,) = await events_of(bus, "build.aborted")
    assert aborted.payload == {"reason": "out of money"}
    assert [r.status for r in await store.list_module_runs("t_build")] == [ModuleStatus.PENDING]


async def test_abort_at_any_time_cancels_running_sub_agents(
    build: BuildMaster, router: FakeRouter, bus: SQLiteLogBus
) -> None:
    never = asyncio.Event()

    async def hang() -> None:
        await never.wait()

    router.before["stuck"] = hang

    async def abort_when_stuck() -> None:
        await router.entered["stuck"].wait()
        await bus.publish("t_build", "abort", {"reason": "user cancelled"}, stream="control")

    aborter = asyncio.create_task(abort_when_stuck())
    async with asyncio.timeout(10):
        with pytest.raises(BuildAborted, match="user cancelled"):
            await build.execute(make_spec(mod("stuck")))
    await aborter
    assert router.cancelled == ["stuck"]


async def test_an_abort_standing_from_before_the_build_watched_stops_it_before_any_call(
    build: BuildMaster, bus: SQLiteLogBus, store: SQLiteStore, router: FakeRouter
) -> None:
    """A cancel sent while the build was queued or starting (before it watched its control
    stream) was once ignored, and the build ran every module."""
    await bus.publish("t_build", "abort", {"reason": "cancelled early"}, stream="control")

    with pytest.raises(BuildAborted, match="cancelled early"):
        await build.execute(make_spec(mod("a")))

    assert router.calls == []
    assert [r.status for r in await store.list_module_runs("t_build")] == [ModuleStatus.PENDING]
    assert [e.type for e in await bus.replay("t_build")][-1] == "build.aborted"


async def test_an_abort_a_later_decision_answered_is_history(
    build: BuildMaster, bus: SQLiteLogBus, store: SQLiteStore
) -> None:
    """A build stopped when its budget was declined runs again once budget is added."""
    await bus.publish("t_build", "abort", {"reason": "budget_exhausted"}, stream="control")
    await bus.publish("t_build", "budget.adjusted", {"ceiling_usd": 5.0}, stream="control")
    await build.execute(make_spec(mod("a")))
    assert [r.status for r in await store.list_module_runs("t_build")] == [ModuleStatus.DONE]


# ---------------------------------------------------------------------------- stitch and judge


def deliverable_for(*module_ids: str) -> dict[str, Any]:
    return {
        "title": "European heat pumps",
        "summary": "The market is growing.",
        "sections": [{"heading": f"On {m}", "body": f"What {m} found."} for m in module_ids],
    }


async def test_stitch_output_has_a_section_for_every_module(
    build: BuildMaster, router: FakeRouter, store: SQLiteStore, bus: SQLiteLogBus
) -> None:
    spec = make_spec(mod("a"), mod("b"), mod("c", "a", "b"))
    router.responses["_stitch"] = deliverable_for("a", "b")
    await build.execute(spec)
    artifact, markdown = await build.stitch(spec)
    assert markdown.startswith("# European heat pumps")
    for module_id in "abc":
        assert f"### Module {module_id} (`{module_id}`)" in markdown
        assert f"Findings of {module_id}." in markdown
    assert (artifact.module_id, artifact.version) == ("_deliverable", 1)
    assert ("_stitch", "reasoning") in router.calls
    (ready,) = await events_of(bus, "draft.ready")
    assert ready.payload["modules"] == ["a", "b", "c"]


async def test_stitch_starts_with_the_simulation_banner_when_a_call_was_simulated(
    build: BuildMaster, router: FakeRouter
) -> None:
    spec = make_spec(mod("a"))
    router.simulated = True
    router.responses["_stitch"] = deliverable_for("a")
    await build.execute(spec)
    _artifact, markdown = await build.stitch(spec)
    assert markdown.splitlines()[0] == SIMULATION_BANNER
    assert "SIMULATION" in SIMULATION_BANNER


async def test_stitch_has_no_banner_when_nothing_was_simulated(
    build: BuildMaster, router: FakeRouter
) -> None:
    spec = make_spec(mod("a"))
    router.responses["_stitch"] = deliverable_for("a")
    await build.execute(spec)
    _artifact, markdown = await build.stitch(spec)
    assert SIMULATION_BANNER not in markdown


async def test_judge_returns_one_verdict_per_checklist_item_in_order(
    build: BuildMaster, router: FakeRouter, bus: SQLiteLogBus
) -> None:
    router.responses["_quality"] = {
        "items": [
            {"item": "2. states the market size.", "passed": True, "evidence": "Summary"},
            {
                "item": "Cites a source for every figure",
                "passed": False,
                "evidence": "None",
                "modules": ["a", "unknown"],
            },
            {"item": "Something else", "passed": True, "evidence": "?"},
        ]
    }
    report = await build.judge(make_spec(mod("a")), "# Draft\n")
    assert report["items"] == [
        {"item": CHECKLIST[0], "passed": False, "evidence": "None", "modules": ["a"]},
        {"item": CHECKLIST[1], "passed": True, "evidence": "Summary", "modules": []},
        {"item": CHECKLIST[2], "passed": False, "evidence": "not judged", "modules": []},
    ]
    assert (report["passed"], report["failed"]) == (1, 2)
    assert router.calls == [("_quality", "reasoning")]
    (judged,) = await events_of(bus, "quality.judged")
    assert judged.payload == report


async def test_judge_asks_for_the_checklist_items_verbatim(
    build: BuildMaster, router: FakeRouter
) -> None:
    router.responses["_quality"] = {"items": []}
    await build.judge(make_spec(mod("a")), "# Draft\n")
    entries = router.schemas["_quality"]["properties"]["items"]
    assert entries["items"]["properties"]["item"]["enum"] == CHECKLIST
    assert entries["minItems"] == len(CHECKLIST)


async def test_stitch_refuses_while_a_module_has_no_output(build: BuildMaster) -> None:
    with pytest.raises(AgentfirmError, match="no output yet from a"):
        await build.stitch(make_spec(mod("a")))
