"""A 2000-module offline task, driven by the Master Agent from its plan to ``completed``: the
Build Master runs every module, stitches them hierarchically under the bound production takes
from the reasoning model's metadata (no override), and the quality judge gets a request its model
can take. One ledger row per request the provider received, and the committed deliverable holds
every module's section."""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentfirm.build_master.master import BuildMaster
from agentfirm.build_master.stitching import DEFAULT_CONTEXT_TOKENS, stitch_bound
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.calls import QUALITY_ID, STITCH_ID
from agentfirm.domain.models import ModuleSpec, Plan, Task, TaskSpec, TaskStatus
from agentfirm.handoff.repos import LocalGitRepos
from agentfirm.master.agent import MasterAgent
from agentfirm.master.decisions import AutoDecider
from agentfirm.master.task_lock import TaskLocks
from agentfirm.personas.library import PersonaLibrary
from agentfirm.router.base import ProviderRequest, ProviderResponse
from agentfirm.router.chains import resolve_chains
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers.offline import OfflineProvider
from agentfirm.router.router import Router
from agentfirm.router.tokens import estimate_messages
from agentfirm.settings import Settings, load_settings
from agentfirm.store.sqlite import SQLiteStore
from tests.unit.test_stitching import enum_values

MODULES = 2000
TASK = "t_stitch2000"
PERSONA = "market_research"
S = TaskStatus


@dataclass(frozen=True)
class Sent:
    request: ProviderRequest
    input_tokens: int


class Recording:
    """The offline provider, remembering every request it receives (its input estimated as the
    router estimates it)."""

    name = "offline"
    simulated = True

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._offline = OfflineProvider()

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        self.sent.append(Sent(request, estimate_messages(request.messages)))
        return await self._offline.complete(request)


def plan_of(size: int, rng: random.Random) -> list[ModuleSpec]:
    """``bench/scale.py``'s random plan: each module depends on up to three of the ten before."""
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


@dataclass
class Parts:
    settings: Settings
    store: SQLiteStore
    bus: SQLiteLogBus
    root: Path


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    settings = load_settings({"AGENTFIRM_HOME": str(tmp_path), "AGENTFIRM_OFFLINE": "1"})
    store, bus = SQLiteStore(tmp_path / "store.db"), SQLiteLogBus(tmp_path / "bus.db")
    await store.open()
    await bus.open()
    yield Parts(settings, store, bus, tmp_path)
    await bus.close()
    await store.close()


def _router(parts: Parts, provider: Recording) -> Router:
    """``build_router``'s offline router, its provider recorded."""
    return Router(
        chains=resolve_chains(parts.settings, {"offline"}),
        providers={"offline": provider},
        pricer=Pricer(parts.settings.prices),
        store=parts.store,
    )


async def _awaiting_approval(parts: Parts, spec: TaskSpec) -> None:
    """The task as planning leaves it (a 2000-module plan is not one a model would write here)."""
    task = Task(id=TASK, request=spec.request, persona=PERSONA, spec=spec)
    await parts.store.create_task(task, actor="test")
    for status in (S.CLASSIFIED, S.PLANNED, S.AWAITING_PLAN_APPROVAL):
        await parts.store.transition(TASK, status, actor="test")


async def test_a_2000_module_task_completes_with_every_stitch_call_under_the_bound(
    parts: Parts,
) -> None:
    personas = PersonaLibrary.load()
    spec = TaskSpec(
        task_id=TASK,
        request="Size the market for electric cargo bikes in Europe",
        persona=PERSONA,
        plan=Plan(modules=plan_of(MODULES, random.Random(7))),
        quality_checklist=list(personas.get(PERSONA).quality_checklist),
        budget_nano=0,
    )
    await _awaiting_approval(parts, spec)
    provider = Recording()
    router = _router(parts, provider)
    build = BuildMaster.from_settings(
        parts.settings, store=parts.store, bus=parts.bus, router=router
    )
    master = MasterAgent(
        store=parts.store,
        bus=parts.bus,
        build=build,
        personas=personas,
        pricing=router,
        repos=LocalGitRepos(parts.root / "repos"),
        decider=AutoDecider(),
        locks=TaskLocks(parts.root / "locks"),
        router=router,
    )
    bound = stitch_bound(router.context_window("reasoning"))
    pricer = Pricer(parts.settings.prices)
    windows = {
        entry.model: pricer.context_window(entry) or DEFAULT_CONTEXT_TOKENS
        for chain in resolve_chains(parts.settings, {"offline"}).values()
        for entry in chain
    }

    try:
        result = await master.drive(TASK)
    finally:
        master.locks.release_all()
        await router.aclose()

    assert result.status == "completed", result.error
    task = await parts.store.get_task(TASK)
    assert task.status is S.COMPLETED
    assert build.stitch_tokens == bound  # production's bound, no override
    # One ledger row per request the provider received, and nothing else.
    ledger = await parts.store.list_ledger(TASK)
    assert sorted(e.call_id for e in ledger) == sorted(s.request.call_id for s in provider.sent)
    assert len({e.call_id for e in ledger}) == len(ledger)
    called = {e.call_id: e.module_id for e in ledger}
    stitches = [s for s in provider.sent if called[s.request.call_id] == STITCH_ID]
    judged = [s for s in provider.sent if called[s.request.call_id] == QUALITY_ID]
    modules = Counter(called[s.request.call_id] for s in provider.sent)
    del modules[STITCH_ID], modules[QUALITY_ID]
    assert modules == Counter({m.id: 1 for m in spec.plan.modules})
    # Hierarchical: several calls stitched parts that one call could not have held.
    sizes = [s.input_tokens for s in stitches]
    assert max(sizes) <= bound
    assert len(stitches) > 2
    assert sum(sizes) > bound
    # The judgement sees the deliverable within the same bound (cut: its appendix is too long).
    assert len(judged) == 1
    assert judged[0].input_tokens <= bound
    assert "Cut for length" in judged[0].request.messages[-1].content
    assert enum_values(judged[0].request.output_schema) <= 1000  # what OpenAI's strict mode takes
    # No request past its model's window.
    for sent in provider.sent:
        assert sent.input_tokens <= windows[sent.request.model]
    assert task.deliverable_path is not None
    markdown = await asyncio.to_thread(Path(task.deliverable_path).read_text, encoding="utf-8")
    headings = re.findall(r"^### (.+) \(`(m\d+)`\)$", markdown, flags=re.MULTILINE)
    assert headings == [(m.title, m.id) for m in spec.plan.modules]  # each once, in plan order
