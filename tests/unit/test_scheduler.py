"""The DAG scheduler: dependency levels for display, dependency-driven execution for real."""

from __future__ import annotations

import asyncio

import pytest

from agentfirm.build_master.scheduler import run_dag
from agentfirm.domain.graph import waves
from agentfirm.domain.models import ModuleSpec
from agentfirm.errors import BadInput


def mod(module_id: str, *deps: str) -> ModuleSpec:
    return ModuleSpec(id=module_id, depends_on=list(deps))


DIAMOND = [mod("a"), mod("b", "a"), mod("c", "a"), mod("d", "b", "c"), mod("e")]


def test_waves_are_dependency_levels_in_plan_order() -> None:
    assert waves(DIAMOND) == [["a", "e"], ["b", "c"], ["d"]]


def test_waves_put_a_module_below_its_deepest_dependency() -> None:
    plan = [mod("a"), mod("b", "a"), mod("c", "a", "b")]
    assert waves(plan) == [["a"], ["b"], ["c"]]


def test_a_cycle_is_bad_input() -> None:
    with pytest.raises(BadInput, match="cycle"):
        waves([mod("a", "b"), mod("b", "a")])


def test_an_unknown_dependency_is_bad_input() -> None:
    with pytest.raises(BadInput, match="unknown module"):
        waves([mod("a", "ghost")])


def test_duplicate_module_ids_are_bad_input() -> None:
    with pytest.raises(BadInput, match="duplicate"):
        waves([mod("a"), mod("a")])


async def test_every_module_runs_once_after_its_dependencies() -> None:
    finished: list[str] = []

    async def run_one(module: ModuleSpec) -> None:
        assert set(module.depends_on) <= set(finished)
        await asyncio.sleep(0)
        finished.append(module.id)

    await run_dag(DIAMOND, run_one, max_concurrency=4)
    assert sorted(finished) == ["a", "b", "c", "d", "e"]


async def test_done_modules_are_skipped_and_their_dependents_run() -> None:
    ran: list[str] = []

    async def run_one(module: ModuleSpec) -> None:
        ran.append(module.id)

    await run_dag(DIAMOND, run_one, max_concurrency=2, done={"a", "b"})
    assert sorted(ran) == ["c", "d", "e"]


async def test_a_module_starts_when_its_own_dependency_is_done_not_its_wave() -> None:
    # "slow" (wave 0) only finishes once "child" (wave 1, depending on "fast") has started:
    # with a wave barrier this would never finish.
    child_started = asyncio.Event()
    order: list[str] = []

    async def run_one(module: ModuleSpec) -> None:
        order.append(f"start {module.id}")
        if module.id == "slow":
            await child_started.wait()
        if module.id == "child":
            child_started.set()
        order.append(f"end {module.id}")

    plan = [mod("slow"), mod("fast"), mod("child", "fast")]
    async with asyncio.timeout(5):
        await run_dag(plan, run_one, max_concurrency=3)
    assert order.index("start child") < order.index("end slow")


async def test_no_more_than_max_concurrency_modules_run_at_once() -> None:
    # Each module waits for the next one to start, so the limit is reached but can be exceeded
    # only by a scheduler that ignores it.
    plan = [mod(f"m{i}") for i in range(6)]
    started: list[str] = []
    running = 0
    peak = 0
    changed = asyncio.Condition()

    async def run_one(module: ModuleSpec) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        async with changed:
            started.append(module.id)
            position = len(started)
            changed.notify_all()
            if position < len(plan):
                await changed.wait_for(lambda: len(started) > position)
        running -= 1

    await run_dag(plan, run_one, max_concurrency=2)
    assert peak == 2


async def test_a_failure_is_raised_alone_cancels_siblings_and_stops_descendants() -> None:
    sibling_cancelled = asyncio.Event()
    sibling_started = asyncio.Event()
    ran: list[str] = []

    async def run_one(module: ModuleSpec) -> None:
        ran.append(module.id)
        if module.id == "sibling":
            sibling_started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                sibling_cancelled.set()
                raise
        if module.id == "broken":
            await sibling_started.wait()
            raise RuntimeError("boom")

    plan = [mod("sibling"), mod("broken"), mod("after", "broken")]
    with pytest.raises(RuntimeError, match="boom"):
        await run_dag(plan, run_one, max_concurrency=2)
    assert sibling_cancelled.is_set()
    assert "after" not in ran


async def test_max_concurrency_below_one_is_refused() -> None:
    async def run_one(module: ModuleSpec) -> None:
        return None

    with pytest.raises(ValueError, match="at least 1"):
        await run_dag(DIAMOND, run_one, max_concurrency=0)


class ModuleBroke(Exception):
    pass


async def test_a_contained_failure_stops_only_its_descendants_and_is_raised_at_the_end() -> None:
    ran: list[str] = []
    broke_first = asyncio.Event()

    async def run_one(module: ModuleSpec) -> None:
        ran.append(module.id)
        if module.id == "b":
            broke_first.set()
            raise ModuleBroke("b broke")
        if module.id == "c":
            await broke_first.wait()  # still running when its sibling fails

    # a → b → d (b fails: d never starts); a → c → e and the independent f still run.
    plan = [mod("a"), mod("b", "a"), mod("c", "a"), mod("d", "b", "c"), mod("e", "c"), mod("f")]
    with pytest.raises(ModuleBroke, match="b broke"):
        await run_dag(plan, run_one, max_concurrency=3, contained=(ModuleBroke,))
    assert sorted(ran) == ["a", "b", "c", "e", "f"]


async def test_the_first_of_several_contained_failures_is_raised() -> None:
    ran: list[str] = []

    async def run_one(module: ModuleSpec) -> None:
        ran.append(module.id)
        if module.id in ("x", "y"):
            raise ModuleBroke(module.id)

    plan = [mod("x"), mod("y"), mod("z", "y")]
    with pytest.raises(ModuleBroke, match="x"):
        await run_dag(plan, run_one, max_concurrency=1, contained=(ModuleBroke,))
    assert ran == ["x", "y"]
