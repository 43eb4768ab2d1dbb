"""Abort latency (issue 6, acceptance 3): from an ``abort`` on the task's control stream to the
Build Master having stopped every running sub-agent, with a whole wave mid-call.

Each round runs a one-wave plan (``--modules`` independent modules, all at once) against the
offline provider with 30 s of simulated latency per call, on a real SQLite store and bus, waits
until every sub-agent is mid-call, then publishes ``abort`` and times until ``execute`` raised
``BuildAborted`` — by then every call was cancelled and its reservation released (checked). The
abort is published twice per round: through the Build Master's own bus connection, and through a
second connection to the same file, as a front end in another process would.

    .venv/bin/python bench/abort.py [--rounds 5] [--modules 8]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentfirm.build_master.budget_gate import BuildAborted
from agentfirm.build_master.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import ModuleSpec, Plan, Task, TaskSpec
from agentfirm.ids import new_id
from agentfirm.money import usd_to_nano
from agentfirm.router.chains import resolve_chains
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers.offline import OfflineProvider
from agentfirm.router.router import Router
from agentfirm.settings import load_settings
from agentfirm.store.sqlite import SQLiteStore

LATENCY_MS = 30_000
BOUND_S = 1.0


class MidCall:
    """The offline provider's sleep: counts the calls in flight and those cancelled."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.cancelled = 0
        self.changed = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.in_flight += 1
        self.changed.set()
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1

    async def wait_for(self, count: int) -> None:
        while self.in_flight < count:
            self.changed.clear()
            await self.changed.wait()


async def one_round(root: Path, modules: int, *, other_connection: bool) -> float:
    store, bus = SQLiteStore(root / "store.db"), SQLiteLogBus(root / "bus.db")
    publisher = SQLiteLogBus(root / "bus.db") if other_connection else bus
    await store.open()
    await bus.open()
    if other_connection:
        await publisher.open()
    try:
        settings = load_settings({"AGENTFIRM_HOME": str(root), "AGENTFIRM_OFFLINE": "1"})
        mid_call = MidCall()
        router = Router(
            chains=resolve_chains(settings, {"offline"}),
            providers={"offline": OfflineProvider((LATENCY_MS, LATENCY_MS), sleep=mid_call)},
            pricer=Pricer(settings.prices),
            store=store,
            timeout_s=LATENCY_MS / 1000 * 2,
        )
        task_id = new_id("t")
        await store.create_task(Task(id=task_id, request="bench"), actor="bench")
        await store.set_budget(task_id, usd_to_nano(100))
        spec = TaskSpec(
            task_id=task_id,
            request="Benchmark the abort path",
            persona="bench",
            plan=Plan(modules=[ModuleSpec(id=f"m{i}") for i in range(modules)]),
            budget_nano=usd_to_nano(100),
        )
        build = BuildMaster(store=store, bus=bus, router=router, max_concurrency=modules)
        running = asyncio.create_task(build.execute(spec))
        await mid_call.wait_for(modules)
        started = time.perf_counter()
        await publisher.publish(task_id, "abort", {"reason": "bench"}, stream="control")
        try:
            await running
        except BuildAborted:
            pass
        else:
            raise AssertionError("the build finished instead of aborting")
        elapsed = time.perf_counter() - started
        budget = await store.get_budget(task_id)
        assert mid_call.cancelled == modules, "a sub-agent was not cancelled"
        assert budget.reserved_nano == 0, "a reservation was left open"
        return elapsed
    finally:
        if other_connection:
            await publisher.close()
        await bus.close()
        await store.close()


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--modules", type=int, default=8)
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    print(
        f"abort → every sub-agent stopped, {args.modules} modules mid-call "
        f"({LATENCY_MS // 1000} s simulated calls), {args.rounds} rounds"
    )
    for other, label in (
        (False, "same bus connection"),
        (True, "second connection (another process)"),
    ):
        times = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                times.append(await one_round(Path(tmp), args.modules, other_connection=other))
        median, worst = statistics.median(times), max(times)
        print(
            f"{label:<38} median {median * 1000:7.1f} ms, max {worst * 1000:7.1f} ms "
            f"({worst / BOUND_S:.1%} of the {BOUND_S:g} s bound)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
