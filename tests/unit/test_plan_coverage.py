"""The plan guard (issue 20): a planner that drops the template modules covering a quality
checklist item must say why, and ``--yes`` refuses a plan that leaves items uncovered.

A real small model once kept 1 of the market research template's 6 modules; that plan passed
validation and ``--yes`` approved it. The scripted planner here does the same."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from rich.console import Console

from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.cli.answers import AutoAnswers
from agentfirm.cli.output import print_plan_payload
from agentfirm.domain.calls import PLAN_ID
from agentfirm.domain.models import Plan, Task, TaskSpec, TaskStatus, UncoveredItem
from agentfirm.domain.policy import TaskPolicy
from agentfirm.master.approvals import StoreDecider
from agentfirm.master.decisions import AutoDecider
from agentfirm.master.estimate import Estimate
from agentfirm.master.planning import adapt_plan
from agentfirm.personas.library import Persona, load_persona_file
from agentfirm.secrets import Redactor
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.scripted_router import ScriptedRouter

ROOT = Path(__file__).resolve().parents[2]
MARKET = load_persona_file(ROOT / "personas" / "market_research.yaml")
TASK = "t-cover"


def _kept(*ids: str, uncovered: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A planner reply keeping only the template modules ``ids`` (dependencies on dropped ones
    removed), as the small model did."""
    modules = [
        {
            **m.model_dump(exclude={"covers", "tools", "max_turns"}),
            "depends_on": [d for d in m.depends_on if d in ids],
        }
        for m in MARKET.modules
        if m.id in ids
    ]
    reply: dict[str, Any] = {"rationale": "Kept it short.", "modules": modules}
    if uncovered is not None:
        reply["uncovered"] = uncovered
    return reply


async def _plan(*replies: dict[str, Any]) -> tuple[Any, ScriptedRouter]:
    router = ScriptedRouter({PLAN_ID: list(replies)})
    outcome = await adapt_plan(router, persona=MARKET, request="Size it.", answers=[], task_id=TASK)
    return outcome, router


async def test_a_plan_dropping_five_of_six_modules_without_a_word_is_not_used() -> None:
    dropped = _kept("entry_recommendation")

    outcome, router = await _plan(dropped, dropped)

    # Before the guard this plan was used as it is (source "llm", one module).
    assert outcome.source == "template"
    assert [m.id for m in outcome.plan.modules] == [m.id for m in MARKET.modules]
    assert outcome.plan.uncovered == []
    assert "loses coverage" in outcome.reason
    retry = router.calls[1].messages[-1].content
    assert "checklist item 1 (" in retry
    assert "you dropped industry_landscape, market_sizing (the template module(s)" in retry


async def test_the_prompt_numbers_the_checklist_and_names_the_modules_covering_each_item() -> None:
    _outcome, router = await _plan(_kept(*[m.id for m in MARKET.modules], uncovered=[]))

    prompt = router.calls[0].messages[-1].content
    assert "4. At least five named competitors" in prompt
    assert "(covered by: competitor_scan, competitive_comparison)" in prompt
    assert '"covers"' not in prompt  # the template JSON is the modules' plan fields only


async def test_dropping_a_module_whose_items_another_kept_module_covers_is_fine() -> None:
    # competitor_scan's only item (4) is also covered by competitive_comparison, kept.
    ids = [m.id for m in MARKET.modules if m.id != "competitor_scan"]

    outcome, _router = await _plan(_kept(*ids, uncovered=[]))

    assert (outcome.source, outcome.plan.uncovered) == ("llm", [])


async def test_a_plan_that_says_why_items_lose_coverage_is_used_and_carries_them() -> None:
    ids = [
        m.id for m in MARKET.modules if m.id not in ("competitor_scan", "competitive_comparison")
    ]
    why = "The client has no competitors in this new category."

    outcome, _router = await _plan(_kept(*ids, uncovered=[{"item": 4, "why": why}]))

    assert outcome.source == "llm"
    assert outcome.plan.uncovered == [
        UncoveredItem(item=MARKET.quality_checklist[3], why=why),
    ]
    assert "leaves 1 checklist item(s) uncovered" in outcome.reason


def _task() -> Task:
    return Task(id=TASK, request="Size it.", persona=MARKET.id)


async def test_yes_refuses_a_plan_leaving_items_uncovered_with_one_line() -> None:
    plan = MARKET.to_plan().model_copy(
        update={"uncovered": [UncoveredItem(item="At least five competitors", why="none exist")]}
    )

    decision = await AutoDecider().approve_plan(_task(), plan, Estimate(()), 10**9)

    assert not decision.approved
    assert "\n" not in decision.reason
    assert decision.reason.startswith("--yes refuses a plan that leaves 1 quality checklist")
    assert "'At least five competitors' (none exist)" in decision.reason


async def test_yes_approves_a_plan_that_covers_every_item() -> None:
    decision = await AutoDecider().approve_plan(_task(), MARKET.to_plan(), Estimate(()), 10**9)

    assert decision.approved


def _payload(uncovered: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "question": "Approve the plan?",
        "persona": MARKET.id,
        "modules": [{"id": "m", "tier": "execution", "depends_on": []}],
        "waves": [["m"]],
        "estimate": {},
        "budget_usd": 1.0,
        "uncovered": uncovered,
    }


def test_yes_answering_a_daemon_refuses_a_plan_leaving_items_uncovered() -> None:
    approval = {"kind": "plan", "task_id": TASK, "payload": _payload([{"item": "X", "why": "y"}])}

    decision, extras = AutoAnswers(None).answer(approval) or ("", {})

    assert decision == "rejected"
    assert extras["notes"].startswith("--yes refuses a plan")


def test_the_interactive_approval_shows_the_uncovered_items() -> None:
    out = Console(record=True, width=160, color_system=None)

    print_plan_payload(out, _payload([{"item": "Scope [a-z] is stated", "why": "out of scope"}]))

    text = out.export_text()
    assert "1 quality checklist item(s) left uncovered" in text
    assert "- Scope [a-z] is stated — out of scope" in text


def test_a_persona_covering_an_item_its_checklist_lacks_is_refused() -> None:
    data = json.loads(json.dumps(MARKET.model_dump()))
    data["modules"][0]["covers"] = [8]

    with pytest.raises(ValidationError, match="covers checklist item 8"):
        Persona.model_validate(data)


def test_the_template_plan_leaves_nothing_uncovered_and_drops_covers() -> None:
    plan = MARKET.to_plan()

    assert isinstance(plan, Plan)
    assert plan.uncovered == []
    assert set(MARKET.coverage()) == set(range(1, len(MARKET.quality_checklist) + 1))


async def test_a_yes_task_in_the_daemon_refuses_a_plan_leaving_items_uncovered(
    tmp_path: Path,
) -> None:
    """The daemon answers a --yes task's plan question by its policy (``StoreDecider``)."""
    store, bus = SQLiteStore(tmp_path / "agentfirm.db"), SQLiteLogBus(tmp_path / "bus.db")
    await store.open()
    await bus.open()
    try:
        plan = MARKET.to_plan().model_copy(
            update={"uncovered": [UncoveredItem(item="Five competitors", why="none exist")]}
        )
        spec = TaskSpec(task_id=TASK, request="r", persona=MARKET.id, plan=plan, budget_nano=0)
        task = Task(
            id=TASK, request="r", persona=MARKET.id, spec=spec, policy=TaskPolicy(auto_approve=True)
        )
        await store.create_task(task, actor="test")
        for status in ("classified", "planned", "awaiting_plan_approval"):
            await store.transition(TASK, TaskStatus(status), actor="test")
        decider = StoreDecider(store, bus, redact=Redactor().redact, poll_interval=0.05)

        decision = await asyncio.wait_for(decider.approve_plan(task, plan, Estimate(()), 10**9), 10)
    finally:
        await bus.close()
        await store.close()

    assert not decision.approved
    assert "--yes refuses a plan that leaves 1 quality checklist item(s)" in decision.reason


def test_the_tui_and_slack_plan_approvals_show_the_uncovered_items() -> None:
    from agentfirm.tui.modals.plan import uncovered_text

    from agentfirm.slack.prompts import prompt

    payload = _payload([{"item": "Five competitors are compared", "why": "none exist"}])

    shown = uncovered_text(payload).plain
    message = prompt({"id": "ap_1", "kind": "plan", "payload": payload})

    assert "1 quality checklist item(s) left uncovered" in shown
    assert "- Five competitors are compared — none exist" in shown
    assert "Five competitors are compared — none exist" in json.dumps(
        message.blocks, ensure_ascii=False
    )
    assert uncovered_text(_payload([])).plain == ""
