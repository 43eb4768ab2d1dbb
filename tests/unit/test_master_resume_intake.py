"""Resuming a task stopped (its process killed) before its plan was put up for approval: a task
stopped while the model classified it is classified again, and nothing a stopped process paid for
and recorded — a chosen persona, the answers to its questions, a saved plan — is paid for again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentfirm.build_master.attachments import Attachments
from agentfirm.build_master.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.calls import CLARIFY_ID as CLARIFY_MODULE_ID
from agentfirm.domain.calls import CLASSIFY_ID as CLASSIFY_MODULE_ID
from agentfirm.domain.calls import PLAN_ID as PLAN_MODULE_ID
from agentfirm.domain.models import Plan, Task, TaskStatus, Tier, Transition
from agentfirm.domain.tools import ToolConsent
from agentfirm.errors import BadInput
from agentfirm.handoff.repos import LocalGitRepos
from agentfirm.master.agent import MasterAgent
from agentfirm.master.approvals import StoreDecider
from agentfirm.master.decisions import AutoDecider, Decider, PlanDecision, ReviewDecision
from agentfirm.master.estimate import Estimate
from agentfirm.master.task_lock import TaskLocks
from agentfirm.personas.library import PersonaLibrary
from agentfirm.router import build_router
from agentfirm.router.base import ChainEntry
from agentfirm.secrets import Redactor
from agentfirm.settings import load_settings
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.scripted_router import RecordedCall, Reply, ScriptedRouter

S = TaskStatus
REQUEST = "Help us decide what to do next year"  # no persona's keywords: the model classifies
PICKED = "market_research"
PICK = {"persona": PICKED, "confidence": 0.9, "reason": "A market question."}
CLEAR = {"ambiguous": False, "questions": []}
QUESTIONS = ["Which market?", "Which years?"]


class Killed(BaseException):
    """The process dying mid-call: nothing after it runs, nothing catches it."""


def killed(_call: RecordedCall) -> dict[str, Any]:
    raise Killed


class MasterCalls(ScriptedRouter):
    """The Master's own calls, scripted, as if served by a real (non-offline) model."""

    def __init__(self, script: dict[str, Sequence[Reply]]) -> None:
        super().__init__(script)

    def entry_for(self, tier: Tier) -> ChainEntry:
        return ChainEntry("anthropic", "claude-sonnet-4-5")

    def made(self, module_id: str) -> int:
        return sum(1 for call in self.calls if call.module_id == module_id)


def _plan_reply() -> dict[str, Any]:
    return {
        "rationale": "a short study",
        "modules": [
            {
                "id": module_id,
                "title": module_id,
                "brief": f"do {module_id}",
                "tier": "execution",
                "depends_on": deps,
                "output_type": "research_notes",
            }
            # The market_research modules covering its whole checklist: --yes approves it.
            for module_id, deps in (
                ("market_sizing", []),
                ("competitive_comparison", []),
                ("entry_recommendation", ["market_sizing", "competitive_comparison"]),
            )
        ],
        "uncovered": [],
    }


class Approving(StoreDecider):
    """Clarifying questions as approval rows (asked once, across restarts); the plan and the
    draft approved without asking."""

    async def approve_plan(
        self,
        task: Task,
        plan: Plan,
        estimate: Estimate,
        budget_nano: int,
        *,
        tools: Sequence[ToolConsent] = (),
    ) -> PlanDecision:
        return PlanDecision(True, budget_nano, "approved by the test")

    async def review_draft(self, task: Task, draft_markdown: str) -> ReviewDecision:
        return ReviewDecision("approve")


class DiesAtPlanned(SQLiteStore):
    """A store whose process dies once, right after the plan was saved and before the task
    moved to ``planned``."""

    dying = True

    async def transition(
        self, task_id: str, to: TaskStatus, *, actor: str, reason: str = ""
    ) -> Transition:
        if to is S.PLANNED and self.dying:
            self.dying = False
            raise Killed
        return await super().transition(task_id, to, actor=actor, reason=reason)


@dataclass
class Firm:
    store: DiesAtPlanned
    bus: SQLiteLogBus
    root: Path

    def master(self, calls: MasterCalls, decider: Decider) -> MasterAgent:
        """A Master Agent as one process would build it: its modules run offline."""
        settings = load_settings({"AGENTFIRM_HOME": str(self.root), "AGENTFIRM_OFFLINE": "1"})
        offline = build_router(settings, self.store, available={"offline"})
        build = BuildMaster(
            store=self.store,
            bus=self.bus,
            router=offline,
            attachments=Attachments(self.root / "attachments"),
        )
        return MasterAgent(
            store=self.store,
            bus=self.bus,
            build=build,
            personas=PersonaLibrary.load(),
            pricing=offline,
            repos=LocalGitRepos(self.root / "repos"),
            decider=decider,
            locks=TaskLocks(self.root / "locks"),
            router=calls,
            intake_budget_nano=10**9,
            quality_revision=False,
        )


@pytest.fixture
async def firm(tmp_path: Path) -> AsyncIterator[Firm]:
    store, bus = DiesAtPlanned(tmp_path / "s.db"), SQLiteLogBus(tmp_path / "b.db")
    store.dying = False
    await store.open()
    await bus.open()
    yield Firm(store, bus, tmp_path)
    await bus.close()
    await store.close()


async def _killed(master: MasterAgent, work: Any) -> None:
    """Run ``work`` until the process "dies"; the OS then drops its task locks."""
    with pytest.raises(Killed):
        await work
    master.locks.release_all()


async def _only_task(firm: Firm) -> Task:
    (task,) = await firm.store.list_tasks()
    return task


async def _resume(master: MasterAgent, task_id: str) -> str:
    try:
        result = await master.resume(task_id, budget_nano=10**10)
    finally:
        master.locks.release_all()
    return result.status


async def _asked(firm: Firm, task_id: str) -> str:
    """The id of the next approval the task asks."""
    async for event in firm.bus.subscribe(task_id):
        if event.type == "approval.requested":
            return str(event.payload["approval_id"])
    raise AssertionError("the bus closed")


async def _statuses(firm: Firm, task_id: str) -> list[TaskStatus]:
    return [t.to_status for t in await firm.store.list_transitions(task_id)]


async def test_a_task_killed_while_the_model_classified_it_is_classified_again_on_resume(
    firm: Firm, tmp_path: Path
) -> None:
    survey = tmp_path / "survey.md"
    survey.write_text("# Survey\n\nDemand grew 12% in 2025.\n", encoding="utf-8")
    first = firm.master(MasterCalls({CLASSIFY_MODULE_ID: [killed]}), AutoDecider())
    await _killed(first, first.intake(REQUEST, attachments=[survey]))
    stopped = await _only_task(firm)
    assert (stopped.status, stopped.persona) == (S.RECEIVED, None)

    calls = MasterCalls(
        {CLASSIFY_MODULE_ID: [PICK], CLARIFY_MODULE_ID: [CLEAR], PLAN_MODULE_ID: [_plan_reply()]}
    )
    status = await _resume(firm.master(calls, AutoDecider()), stopped.id)

    assert status == "completed"
    task = await firm.store.get_task(stopped.id)
    assert task.persona == PICKED
    assert task.spec is not None
    assert task.spec.persona == PICKED
    assert [m.id for m in task.spec.plan.modules] == [
        "market_sizing",
        "competitive_comparison",
        "entry_recommendation",
    ]
    assert calls.made(CLASSIFY_MODULE_ID) == 1
    transitions = await firm.store.list_transitions(stopped.id)
    (classified,) = [t for t in transitions if t.to_status is S.CLASSIFIED]
    assert classified.reason.startswith("LLM (0.90)")
    # the attachment read before the kill is the task's: its research still reads it
    assert await Attachments(firm.root / "attachments").documents(stopped.id) == ["survey.md"]


async def test_a_task_killed_while_classifying_fails_clearly_when_no_persona_fits(
    firm: Firm,
) -> None:
    first = firm.master(MasterCalls({CLASSIFY_MODULE_ID: [killed]}), AutoDecider())
    await _killed(first, first.intake(REQUEST))
    stopped = await _only_task(firm)
    unsure = {"persona": "none", "confidence": 0.2, "reason": "Too vague."}

    resumed = firm.master(MasterCalls({CLASSIFY_MODULE_ID: [unsure]}), AutoDecider())
    with pytest.raises(BadInput, match="no persona clearly matches") as raised:
        await _resume(resumed, stopped.id)

    assert "unknown persona" not in str(raised.value)
    assert (await firm.store.get_task(stopped.id)).status is S.FAILED


async def test_a_task_killed_before_its_questions_were_asked_keeps_its_persona(
    firm: Firm,
) -> None:
    first = firm.master(
        MasterCalls({CLASSIFY_MODULE_ID: [PICK], CLARIFY_MODULE_ID: [killed]}), AutoDecider()
    )
    task = await first.intake(REQUEST)
    await _killed(first, first.plan(task))
    assert (await firm.store.get_task(task.id)).status is S.CLASSIFIED

    calls = MasterCalls({CLARIFY_MODULE_ID: [CLEAR], PLAN_MODULE_ID: [_plan_reply()]})
    status = await _resume(firm.master(calls, AutoDecider()), task.id)

    assert status == "completed"
    assert calls.made(CLASSIFY_MODULE_ID) == 0
    assert (await firm.store.get_task(task.id)).persona == PICKED


async def test_a_task_killed_after_its_questions_were_answered_is_not_asked_again(
    firm: Firm,
) -> None:
    decider = Approving(firm.store, firm.bus, redact=Redactor().redact, poll_interval=0.05)
    first = firm.master(
        MasterCalls(
            {
                CLASSIFY_MODULE_ID: [PICK],
                CLARIFY_MODULE_ID: [{"ambiguous": True, "questions": QUESTIONS}],
                PLAN_MODULE_ID: [killed],
            }
        ),
        decider,
    )
    task = await first.intake(REQUEST)
    planning = asyncio.ensure_future(first.plan(task))
    asked = await asyncio.wait_for(_asked(firm, task.id), 10)
    await decider.decide(asked, "approved", actor="cli:ann", answers={"q1": "EU"})
    await _killed(first, planning)
    assert (await firm.store.get_task(task.id)).status is S.CLARIFYING

    calls = MasterCalls({PLAN_MODULE_ID: [_plan_reply()]})
    resumed = firm.master(
        calls, Approving(firm.store, firm.bus, redact=Redactor().redact, poll_interval=0.05)
    )
    status = await _resume(resumed, task.id)

    assert status == "completed"
    assert calls.made(CLARIFY_MODULE_ID) == 0
    assert "A: EU" in calls.calls[0].prompt
    spec = (await firm.store.get_task(task.id)).spec
    assert spec is not None
    assert any("the client answered: EU" in line for line in spec.assumptions)
    assert len([a for a in await firm.store.list_approvals(task.id) if a.kind == "clarify"]) == 1


async def test_a_task_killed_after_its_plan_was_saved_is_not_planned_again(firm: Firm) -> None:
    first = firm.master(
        MasterCalls(
            {
                CLASSIFY_MODULE_ID: [PICK],
                CLARIFY_MODULE_ID: [CLEAR],
                PLAN_MODULE_ID: [_plan_reply()],
            }
        ),
        AutoDecider(),
    )
    task = await first.intake(REQUEST)
    firm.store.dying = True
    await _killed(first, first.plan(task))
    stopped = await firm.store.get_task(task.id)
    assert stopped.status is S.CLASSIFIED
    assert stopped.spec is not None

    calls = MasterCalls({})
    status = await _resume(firm.master(calls, AutoDecider()), task.id)

    assert status == "completed"
    assert calls.calls == []
    assert S.PLANNED in await _statuses(firm, task.id)
