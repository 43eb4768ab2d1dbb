"""Build Master at scale: the orchestrator's CPU per module, and makespan against an ideal schedule.

A random plan of N modules (each depending on up to three of the ten before it) runs through the
production path — ``BuildMaster.execute`` on a SQLite store and the embedded bus, every module one
structured call through the Router to the offline provider — in this process.

CPU: with the provider answering at once, the process's CPU time over the run (every thread),
less the provider's own (it stands for the remote model), per module. Target: <= 2 ms.

Makespan: each module's call takes a drawn duration (lognormal, ``--median-ms``) at 64 modules at
a time; the run's wall time is set against the ideal 64-slot schedule of the same durations (a
module starts the moment its dependencies are done and a slot is free, in plan order, with no
cost for orchestration). Target: <= 1.05x at 500 modules.

    .venv/bin/python bench/scale.py [--sizes 500,2000] [--makespan-size 500] [--median-ms 400]
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import logging
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentfirm.build_master.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import ModuleSpec, Plan, Task, TaskSpec
from agentfirm.router.base import ChainEntry, ProviderRequest, ProviderResponse
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers.offline import OfflineProvider
from agentfirm.router.router import Router
from agentfirm.runs.heap import settle_heap
from agentfirm.store.sqlite import SQLiteStore

SLOTS = 64
MODEL = "claude-sonnet-4-6"
_MODULE = re.compile(r"\bmodule (m\d+)\b")


def plan_of(size: int, rng: random.Random) -> list[ModuleSpec]:
    modules: list[ModuleSpec] = []
    for n in range(size):
        recent = [m.id for m in modules[-10:]]
        deps = rng.sample(recent, k=min(len(recent), rng.randint(0, 3)))
        modules.append(
            ModuleSpec(
                id=f"m{n}",
                title=f"Part {n}",
                brief=f"Write module m{n} of the market study.",
                depends_on=sorted(deps),
            )
        )
    return modules


async def _no_wait(seconds: float) -> None:
    """A zero latency that does not yield to the event loop (``asyncio.sleep(0)`` does)."""


class TimedOffline:
    """The offline provider, each module's call taking its drawn duration; counts the CPU the
    provider itself spends (the remote model's share, not the orchestrator's)."""

    name = "offline"
    simulated = True

    def __init__(self, durations_s: Mapping[str, float]) -> None:
        # Its own latency never yields to the event loop: the CPU timed around it is its own,
        # not that of whatever else ran meanwhile.
        self._offline = OfflineProvider(sleep=_no_wait)
        self._durations_s = durations_s
        self.cpu_s = 0.0

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        found = _MODULE.search(request.messages[-1].content)
        wait = self._durations_s.get(found.group(1), 0.0) if found else 0.0
        if wait:
            await asyncio.sleep(wait)
        started = time.thread_time()
        try:
            return await self._offline.complete(request)
        finally:
            self.cpu_s += time.thread_time() - started


@dataclass(frozen=True)
class Result:
    wall_s: float
    cpu_s: float
    provider_cpu_s: float


async def run(modules: list[ModuleSpec], durations_s: Mapping[str, float]) -> Result:
    with tempfile.TemporaryDirectory(prefix="agentfirm-scale-") as tmp:
        store = SQLiteStore(Path(tmp) / "store.sqlite3")
        bus = SQLiteLogBus(Path(tmp) / "bus.sqlite3")
        await store.open()
        await bus.open()
        provider = TimedOffline(durations_s)
        entry = ChainEntry("offline", MODEL, price_as="anthropic")
        router = Router(
            chains={t: [entry] for t in ("reasoning", "execution", "utility")},
            providers={"offline": provider},
            pricer=Pricer(),
            store=store,
        )
        task_id = "t_scale"
        budget = 10**15
        await store.create_task(Task(id=task_id, request="A market study"), actor="bench")
        await store.set_budget(task_id, budget)
        spec = TaskSpec(
            task_id=task_id,
            request="A market study",
            persona="market_analyst",
            plan=Plan(modules=modules),
            budget_nano=budget,
        )
        build = BuildMaster(
            store=store, bus=bus, router=router, max_concurrency=SLOTS, max_escalations=0
        )
        settle_heap()  # as a driving process does once it is up (once: later runs keep it)
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            await build.execute(spec)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            await router.aclose()
            await bus.close()
            await store.close()
    return Result(wall, cpu, provider.cpu_s)


def ideal_makespan(modules: list[ModuleSpec], durations_s: Mapping[str, float]) -> float:
    """The makespan of ``SLOTS`` slots with no orchestration cost: in plan order, each module
    starts when its dependencies are done and a slot is free."""
    finish: dict[str, float] = {}
    slots = [0.0] * SLOTS  # when each slot is next free
    heapq.heapify(slots)
    for module in modules:  # plan order is topological here
        ready = max((finish[d] for d in module.depends_on), default=0.0)
        start = max(ready, heapq.heappop(slots))
        finish[module.id] = start + durations_s[module.id]
        heapq.heappush(slots, finish[module.id])
    return max(finish.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,2000", help="plan sizes for the CPU figure")
    parser.add_argument("--makespan-size", type=int, default=500)
    parser.add_argument("--median-ms", type=float, default=400.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    rng = random.Random(args.seed)

    print(f"Build Master at scale: offline provider, SQLite store, embedded bus, {SLOTS} slots")
    for size in (int(s) for s in args.sizes.split(",")):
        modules = plan_of(size, rng)
        result = asyncio.run(run(modules, {}))
        per_module_ms = (result.cpu_s - result.provider_cpu_s) / size * 1000
        print(
            f"  {size:5d} modules, zero latency: {result.wall_s:6.2f} s wall, CPU "
            f"{result.cpu_s:6.2f} s of which provider {result.provider_cpu_s:5.2f} s -> "
            f"orchestrator {per_module_ms:5.2f} ms per module (target <= 2 ms)"
        )

    modules = plan_of(args.makespan_size, rng)
    median_s = args.median_ms / 1000
    durations = {m.id: median_s * rng.lognormvariate(0.0, 0.5) for m in modules}
    result = asyncio.run(run(modules, durations))
    ideal = ideal_makespan(modules, durations)
    print(
        f"  {args.makespan_size:5d} modules, durations lognormal (median {args.median_ms:.0f} ms, "
        f"mean {statistics.mean(durations.values()) * 1000:.0f} ms): makespan "
        f"{result.wall_s:6.2f} s, ideal {SLOTS}-slot schedule {ideal:6.2f} s -> "
        f"{result.wall_s / ideal:.3f}x (target <= 1.05x)"
    )


if __name__ == "__main__":
    main()
