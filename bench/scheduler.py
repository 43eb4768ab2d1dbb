"""Scheduler benchmark (issue 6, acceptance 5): makespan ÷ critical path on random module DAGs.

For each random DAG (50–500 modules, each depending on up to three recent ones) every module is
one offline-provider call whose simulated latency is drawn from a lognormal distribution (scaled
down: a median of ``--median-ms`` stands for a real call of seconds). The same DAG and latencies
run three ways, one after the other, in this process:

- agentfirm: ``build.scheduler.run_dag`` (a module starts when its own dependencies are done),
  unlimited concurrency;
- wave barrier: each dependency level starts when the whole previous level is done;
- LangGraph: the DAG as a ``StateGraph`` (one node per module, a join edge from its
  dependencies), run with ``ainvoke``.

Each prints makespan ÷ critical path (1.00 is the best any schedule can do). Heterogeneous
latencies (sigma 1.0) are the realistic case; homogeneous ones (sigma 0) show where barriers cost
nothing. Needs the ``bench`` extra (``pip install -e '.[bench]'``; ``make bench`` does it).

    .venv/bin/python bench/scheduler.py [--sizes 50,100,200,500] [--median-ms 15] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import operator
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentfirm.build_master.scheduler import run_dag, waves
from agentfirm.domain.models import ModuleSpec
from agentfirm.router.base import Message, ProviderRequest
from agentfirm.router.providers.offline import OfflineProvider

Call = Callable[[str], Awaitable[None]]
MAX_DEPS = 3
LATENCY_CAP = 12.0
"""Draws are capped at this many medians, so one extreme draw cannot dominate a whole run."""


@dataclass(frozen=True)
class Dag:
    modules: list[ModuleSpec]
    latency_ms: dict[str, int]

    @property
    def critical_path_ms(self) -> int:
        finish: dict[str, int] = {}
        for module in self.modules:  # plan order is a topological order here
            start = max((finish[d] for d in module.depends_on), default=0)
            finish[module.id] = start + self.latency_ms[module.id]
        return max(finish.values())


def random_dag(n: int, rng: random.Random, median_ms: float, sigma: float) -> Dag:
    """``n`` modules; module i depends on up to ``MAX_DEPS`` of the ``window`` modules before it,
    so the graph is wide and deep at once (depth grows with ``n``)."""
    window = max(4, int(math.sqrt(n) * 1.5))
    modules: list[ModuleSpec] = []
    latency: dict[str, int] = {}
    for i in range(n):
        earlier = [m.id for m in modules[max(0, i - window) : i]]
        k = min(len(earlier), rng.choice((0, 1, 1, 2, 2, 3)) if i else 0)
        module_id = f"m{i:03d}"
        modules.append(ModuleSpec(id=module_id, depends_on=rng.sample(earlier, k)))
        draw = rng.lognormvariate(math.log(median_ms), sigma)
        latency[module_id] = max(1, round(min(draw, median_ms * LATENCY_CAP)))
    return Dag(modules, latency)


def offline_calls(dag: Dag) -> Call:
    """One offline-provider call per module, with that module's latency."""
    providers = {m: OfflineProvider((ms, ms)) for m, ms in dag.latency_ms.items()}

    async def call(module_id: str) -> None:
        request = ProviderRequest(
            model="claude-haiku-4-5",
            messages=(Message("user", f"Module {module_id}: do the work."),),
            max_tokens=64,
            tier="execution",
        )
        await providers[module_id].complete(request)

    return call


async def agentfirm(dag: Dag, call: Call) -> None:
    async def run_one(module: ModuleSpec) -> None:
        await call(module.id)

    await run_dag(dag.modules, run_one, max_concurrency=len(dag.modules))


async def wave_barrier(dag: Dag, call: Call) -> None:
    for level in waves(dag.modules):
        await asyncio.gather(*(call(module_id) for module_id in level))


class _State(TypedDict):
    done: Annotated[list[str], operator.add]


def langgraph_runner(dag: Dag) -> Callable[[Call], Awaitable[None]]:
    """The DAG as a compiled StateGraph; returns a function running it with ``call``."""
    from langgraph.graph import END, START, StateGraph

    holder: dict[str, Call] = {}

    def node(module_id: str) -> Callable[[_State], Awaitable[dict[str, Any]]]:
        async def run(_state: _State) -> dict[str, Any]:
            await holder["call"](module_id)
            return {"done": [module_id]}

        return run

    builder = StateGraph(_State)
    needed = {d for m in dag.modules for d in m.depends_on}
    for module in dag.modules:
        builder.add_node(module.id, node(module.id))
        if not module.depends_on:
            builder.add_edge(START, module.id)
        elif len(module.depends_on) == 1:
            builder.add_edge(module.depends_on[0], module.id)
        else:
            builder.add_edge(list(module.depends_on), module.id)  # waits for all of them
        if module.id not in needed:
            builder.add_edge(module.id, END)
    graph = builder.compile()

    async def run(call: Call) -> None:
        holder["call"] = call
        out = await graph.ainvoke({"done": []}, config={"recursion_limit": 100_000})
        assert len(out["done"]) == len(dag.modules), "LangGraph did not run every module"

    return run


async def makespan_ms(run: Callable[[Call], Awaitable[None]], dag: Dag) -> float:
    call = offline_calls(dag)
    started = time.perf_counter()
    await run(call)
    return (time.perf_counter() - started) * 1000


async def bench_one(dag: Dag) -> dict[str, float]:
    graph = langgraph_runner(dag)  # compiled outside the timed run
    critical = dag.critical_path_ms
    return {
        "agentfirm": await makespan_ms(lambda c: agentfirm(dag, c), dag) / critical,
        "wave barrier": await makespan_ms(lambda c: wave_barrier(dag, c), dag) / critical,
        "LangGraph": await makespan_ms(graph, dag) / critical,
    }


def _quiet() -> None:
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,100,200,500")
    parser.add_argument("--median-ms", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    try:
        import langgraph  # noqa: F401
    except ImportError:
        print("bench/scheduler.py needs LangGraph: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    _quiet()
    rng = random.Random(args.seed)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"makespan ÷ critical path (1.00 = ideal), offline provider, lognormal latencies "
        f"(median {args.median_ms:g} ms), unlimited concurrency"
    )
    header = f"{'latencies':<14}{'modules':>8}{'waves':>7}{'critical ms':>13}"
    header += "".join(f"{name:>14}" for name in ("agentfirm", "wave barrier", "LangGraph"))
    print(header)
    worst_agentfirm, losses = 0.0, 0
    for sigma, label in ((1.0, "heterogeneous"), (0.0, "homogeneous")):
        for n in sizes if sigma else sizes[-1:]:
            dag = random_dag(n, rng, args.median_ms, sigma)
            ratios = await bench_one(dag)
            line = f"{label:<14}{n:>8}{len(waves(dag.modules)):>7}{dag.critical_path_ms:>13}"
            line += "".join(f"{ratio:>13.3f}x" for ratio in ratios.values())
            print(line)
            if sigma:
                worst_agentfirm = max(worst_agentfirm, ratios["agentfirm"])
                others = min(ratios["wave barrier"], ratios["LangGraph"])
                losses += ratios["agentfirm"] >= others
    verdict = "met" if worst_agentfirm <= 1.05 and losses == 0 else "NOT met"
    print(
        f"target (agentfirm <= 1.05x and fastest on heterogeneous latencies): {verdict}; "
        f"worst agentfirm {worst_agentfirm:.3f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
