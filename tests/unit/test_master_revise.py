"""A revision that names one mid-graph module re-runs exactly it and its descendants."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from agentfirm.build_master.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import Task
from agentfirm.handoff.repos import LocalGitRepos
from agentfirm.master.agent import MasterAgent
from agentfirm.master.decisions import AutoDecider, ReviewDecision
from agentfirm.master.task_lock import TaskLocks
from agentfirm.personas.library import PersonaLibrary
from agentfirm.router import build_router
from agentfirm.router.base import CallResult, Message
from agentfirm.settings import load_settings
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.flaky_router import starts_a_run

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
    """The real offline router, counting runs per module."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    async def call(self, *, messages: Sequence[Message], **kwargs: object) -> CallResult:
        if starts_a_run(messages):  # an agent loop's later turns are the same run
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


CANARY = "sk-proj-CANARY" + "7" * 32


class TypesAKey(ReviseOnce):
    """A human at the terminal prompt (the in-process decider: no approval rows of its own)
    pasting a key into the clarify answers and the revise notes."""

    records_approvals = False

    def __init__(self) -> None:
        super().__init__(("novelty_analysis",))
        self.asked = 0

    async def clarify(self, task: Task, questions: Sequence[str]) -> list[tuple[str, str]]:
        self.asked += len(questions)
        return [(q, f"use {CANARY}") for q in questions]

    async def review_draft(self, task: Task, draft_markdown: str) -> ReviewDecision:
        decision = await super().review_draft(task, draft_markdown)
        return ReviewDecision(decision.kind, f"{decision.notes} with {CANARY}", decision.modules)


async def test_a_key_typed_at_the_terminal_prompts_is_kept_nowhere(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    import subprocess

    from agentfirm.secrets import Redactor

    store, bus, root = parts
    settings = load_settings({"AGENTFIRM_HOME": str(root), "AGENTFIRM_OFFLINE": "1"})
    router = build_router(settings, store, available={"offline"})
    decider = TypesAKey()
    locks = TaskLocks(root / "locks")
    master = MasterAgent(
        store=store,
        bus=bus,
        build=BuildMaster(store=store, bus=bus, router=router),
        personas=PersonaLibrary.load(),
        pricing=router,
        repos=LocalGitRepos(root / "repos"),
        decider=decider,
        locks=locks,
        router=router,  # the offline model finds REQUEST ambiguous: it asks
        quality_revision=False,
        redact=Redactor().redact,
    )

    result = await master.run(REQUEST, persona="patent_research", budget_usd="5")
    locks.release_all()

    assert result.status == "completed"
    assert decider.asked > 0
    assert decider.reviews == 2
    for path in root.rglob("*"):
        if path.is_file():
            assert b"CANARY" not in path.read_bytes(), path
    git = ["git", "-C", str(root / "repos" / result.task_id), "log", "--all", "-p"]
    history = (await asyncio.to_thread(subprocess.run, git, capture_output=True, check=True)).stdout
    assert b"CANARY" not in history
