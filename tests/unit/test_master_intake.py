"""The Master Agent's own calls: clarification answers flow into the plan; --yes records
assumptions; a real model's plan is used when valid; the offline provider never plans."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agentfirm.build_master.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import Task, TaskStatus, Tier
from agentfirm.handoff.repos import LocalGitRepos
from agentfirm.master.agent import MasterAgent
from agentfirm.master.decisions import AutoDecider
from agentfirm.master.task_lock import TaskLocks
from agentfirm.personas.library import PersonaLibrary
from agentfirm.router.base import ChainEntry
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.scripted_router import Reply, ScriptedRouter, every_item_explained

REQUEST = "Prior art search for a patent on a self-healing solder alloy"
QUESTIONS = ["Which jurisdictions matter?", "Is there a priority date to respect?"]


class RealModelRouter(ScriptedRouter):
    """Scripted replies, served as if by a real (non-offline) model."""

    def __init__(self, script: dict[str, Sequence[Reply]], provider: str = "anthropic") -> None:
        super().__init__(script)
        self.provider = provider

    def entry_for(self, tier: Tier) -> ChainEntry:
        return ChainEntry(self.provider, "claude-sonnet-4-5")


class Answering(AutoDecider):
    async def clarify(self, task: Task, questions: Sequence[str]) -> list[tuple[str, str]]:
        return [(q, f"answer to {q}") for q in questions]


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, SQLiteLogBus, Path]]:
    store, bus = SQLiteStore(tmp_path / "s.db"), SQLiteLogBus(tmp_path / "b.db")
    await store.open()
    await bus.open()
    yield store, bus, tmp_path
    await bus.close()
    await store.close()


def _master(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path], router: RealModelRouter, decider: Any
) -> MasterAgent:
    store, bus, root = parts
    return MasterAgent(
        store=store,
        bus=bus,
        build=BuildMaster(store=store, bus=bus, router=router),
        personas=PersonaLibrary.load(),
        pricing=_FlatPricing(),
        repos=LocalGitRepos(root / "repos"),
        decider=decider,
        locks=TaskLocks(root / "locks"),
        router=router,
        intake_budget_nano=10**9,
    )


class _FlatPricing:
    def estimate_nano(self, tier: Tier, input_tokens: int, output_tokens: int) -> int:
        return input_tokens + output_tokens


def _plan_reply(ids: list[str]) -> dict[str, Any]:
    return {
        "rationale": "focused search",
        "modules": [
            {
                "id": module_id,
                "title": module_id,
                "brief": f"do {module_id}",
                "tier": "execution",
                "depends_on": ids[:n],
                "output_type": "research_notes",
            }
            for n, module_id in enumerate(ids)
        ],
        "uncovered": every_item_explained("a focused search is all this request needs"),
    }


async def test_answers_to_clarifying_questions_reach_the_planner_and_the_spec(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    router = RealModelRouter(
        {
            "_clarify": [{"ambiguous": True, "questions": QUESTIONS}],
            "_plan": [_plan_reply(["search", "report"])],
        }
    )
    master = _master(parts, router, Answering())

    task = await master.intake(REQUEST, persona="patent_research")
    spec, _estimate = await master.plan(task)

    assert [m.id for m in spec.plan.modules] == ["search", "report"]
    planner_prompt = " ".join(m.content for m in router.calls[-1].messages)
    assert "answer to Which jurisdictions matter?" in planner_prompt
    assert any("answer to Is there a priority date" in a for a in spec.assumptions)
    statuses = [t.to_status for t in await parts[0].list_transitions(task.id)]
    assert TaskStatus.CLARIFYING in statuses
    assert statuses[-1] is TaskStatus.AWAITING_PLAN_APPROVAL


async def test_yes_records_an_assumption_for_each_question_instead_of_asking(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    router = RealModelRouter(
        {
            "_clarify": [{"ambiguous": True, "questions": QUESTIONS}],
            "_plan": [_plan_reply(["search"])],
        }
    )
    master = _master(parts, router, AutoDecider())

    task = await master.intake(REQUEST, persona="patent_research")
    spec, _estimate = await master.plan(task)

    for question in QUESTIONS:
        assert any(question in a and "not asked" in a for a in spec.assumptions)


async def test_the_offline_provider_does_not_reshape_the_template(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    router = RealModelRouter({"_clarify": [{"ambiguous": False, "questions": []}]}, "offline")
    master = _master(parts, router, AutoDecider())
    template = [m.id for m in PersonaLibrary.load().get("patent_research").modules]

    task = await master.intake(REQUEST, persona="patent_research")
    spec, _estimate = await master.plan(task)

    assert [m.id for m in spec.plan.modules] == template
    assert not any(call.module_id == "_plan" for call in router.calls)
