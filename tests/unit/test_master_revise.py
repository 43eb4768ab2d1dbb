"""A revision that names one mid-graph module re-runs exactly it and its descendants."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from agentfirm.build.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain import Task
from agentfirm.handoff.repos import LocalGitRepos
from agentfirm.master.agent import MasterAgent
from agentfirm.master.decisions import AutoDecider, ReviewDecision
from agentfirm.master.task_lock import TaskLocks
from agentfirm.personas import PersonaLibrary
from agentfirm.router import build_router
from agentfirm.router.base import CallResult, Message
from agentfirm.settings import load_settings
from agentfirm.store.sqlite import SQLiteStore

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"


class ReviseOnce(AutoDecider):
    def __init__(self, modules: tuple[str, ...]) -> None:
        self.modules = modules
        self.reviews = 0

    async def review_draft(self, task: Task, draft_markdown: str) -> ReviewDecision:
        self.reviews += 1
        if self.reviews == 1:
            return ReviewDecision("revise", "tighten the claims", self.modules)
        return ReviewDecision("approve")


class Counting:
    """The real offline router, counting calls per module."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    async def call(self, *, messages: Sequence[Message], **kwargs: object) -> CallResult:
        self.calls[str(kwargs.get("module_id"))] += 1
        return await self.inner.call(messages=messages, **kwargs)  # type: ignore[attr-defined]

    def entry_for(self, tier: object) -> object:
        return self.inner.entry_for(tier)  # type: ignore[attr-defined]

    def estimate_nano(self, tier: object, input_tokens: int, output_tokens: int) -> int:
        return self.inner.estimate_nano(tier, input_tokens, output_tokens)  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, SQLiteLogBus, Path]]:
    store, bus = SQLiteStore(tmp_path / "s.db"), SQLiteLogBus(tmp_path / "b.db")
    await store.open()
    await bus.open()
    yield store, bus, tmp_path
    await bus.close()
    await store.close()


async def test_revising_a_mid_graph_module_reruns_it_and_its_descendants_only(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    store, bus, root = parts
    settings = load_settings({"AGENTFIRM_HOME": str(root), "AGENTFIRM_OFFLINE": "1"})
    router = Counting(build_router(settings, store, available={"offline"}))
    persona = PersonaLibrary.load().get("patent_research")
    decider = ReviseOnce(("novelty_analysis",))
    locks = TaskLocks(root / "locks")
    master = MasterAgent(
        store=store,
        bus=bus,
        build=BuildMaster(store=store, bus=bus, router=router),  # type: ignore[arg-type]
        personas=PersonaLibrary.load(),
        pricing=router,  # type: ignore[arg-type]
        repos=LocalGitRepos(root / "repos"),
        decider=decider,
        locks=locks,
        quality_revision=False,  # only the review's revision re-runs modules here
    )

    result = await master.run(REQUEST, persona="patent_research", budget_usd="5")
    locks.release_all()

    assert result.status == "completed"
    downstream = {"novelty_analysis", "claims_drafting", "filing_recommendation"}
    for module in persona.modules:
        expected = 2 if module.id in downstream else 1
        assert router.calls[module.id] == expected, module.id
    assert router.calls["_stitch"] == 2  # one draft per review round
