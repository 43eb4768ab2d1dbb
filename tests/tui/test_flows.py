"""Pilot-driven flows against a real daemon (in-process, offline provider): a task created in the
TUI and taken to completion through its prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pytest
from agentfirm.tui.app import AgentfirmApp
from agentfirm.tui.modals import BudgetModal, ClarifyModal, PlanModal, ReviewModal
from agentfirm.tui.modals.base import ApprovalModal
from agentfirm.tui.screens.new_task import NewTaskScreen
from agentfirm.tui.screens.task_view import TaskScreen
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, SelectionList, TextArea

from agentfirm.build_master.master import ATTACHMENTS_DIR
from tests.tui.conftest import Daemon
from tests.tui.helpers import task_screen, until

pytestmark = pytest.mark.heavy

M = TypeVar("M", bound=ApprovalModal)
REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"


async def create_task(
    pilot: Pilot[Any], *, budget: str = "", attach: Path | None = None
) -> TaskScreen:
    """Through the new-task screen: request, budget, attachment, offline provider, ctrl+s."""
    app = pilot.app
    await pilot.press("n")
    await until(pilot, lambda: isinstance(app.screen, NewTaskScreen), what="the new-task screen")
    app.screen.query_one("#request", TextArea).insert(REQUEST)
    if budget:
        app.screen.query_one("#budget", Input).value = budget
    if attach:
        app.screen.query_one("#attach", Input).value = str(attach)
        app.screen.query_one("#attach", Input).focus()
        await pilot.press("enter")
    await pilot.pause()  # the form reflows around the request
    await pilot.click("#offline")
    assert app.screen.query_one("#offline", Checkbox).value
    await pilot.press("ctrl+s")
    await until(
        pilot, lambda: isinstance(app.screen, TaskScreen | ApprovalModal), what="the task view"
    )
    return task_screen(pilot)


GUARD_S = 120
"""How long a step of a task (intake, planning, a build) may take before the test calls it
stuck: a guard, not a bound; 30 s timed out in full runs on a machine shared with others."""


async def prompt(pilot: Pilot[Any], kind: type[M], *, after: str = "") -> M:
    """The next prompt the task view opens, which must be a ``kind`` (and a different approval
    than ``after``)."""

    def asked() -> bool:
        screen = pilot.app.screen
        return isinstance(screen, ApprovalModal) and screen.approval_id != after and screen.ready

    await until(pilot, asked, within=GUARD_S, what=f"a {kind.__name__}")
    screen = pilot.app.screen
    assert isinstance(screen, kind), f"{kind.__name__} expected, {screen} opened"
    return screen


async def until_final(pilot: Pilot[Any], screen: TaskScreen) -> None:
    await until(
        pilot,
        lambda: screen.model.final and screen.link == "ended" and screen.settled,
        within=GUARD_S,
        what="the task to finish",
    )


async def test_create_clarify_approve_review_revise_approve_completes(
    daemon: Daemon, tmp_path: Path
) -> None:
    notes = tmp_path / "inventor-notes.md"
    notes.write_text("The alloy heals cracks at 80 °C through encapsulated gallium.\n")
    app: AgentfirmApp = daemon.app()
    async with app.run_test(size=(120, 40)) as pilot:
        view = await create_task(pilot, attach=notes)
        clarify = await prompt(pilot, ClarifyModal)
        clarify.query_one("#answer-1", Input).value = "patent attorneys"
        await pilot.press("ctrl+s")

        plan = await prompt(pilot, PlanModal)
        plan.query_one("#budget", Input).value = "4"
        await pilot.press("ctrl+s")

        review = await prompt(pilot, ReviewModal)
        review.query_one("#notes", TextArea).insert("Add the 2019 conference papers.")
        review.query_one("#modules", SelectionList).select("claim_chart")
        await pilot.press("ctrl+r")
        second = await prompt(pilot, ReviewModal, after=review.approval_id)
        await pilot.press("ctrl+s")
        await until_final(pilot, view)

        task_id = view.task_id
        decided = [e["payload"] for e in view.model.events if e["type"] == "approval.decided"]
        assert view.model.status == "completed"
        assert view.model.budget_usd == 4.0
        assert [m.status for m in view.model.modules.values()] == ["done"] * 7

    approvals = await daemon.host.app.store.list_approvals(task_id)
    asked = [(a.kind, a.decision, a.actor) for a in approvals if "question" in a.payload]
    assert asked == [
        ("clarify", "approved", "tui:tester"),
        ("plan", "approved", "tui:tester"),
        ("review", "revise", "tui:tester"),
        ("review", "approved", "tui:tester"),
    ]
    assert second.approval_id == approvals[-1].id
    revision = next(a for a in approvals if a.decision == "revise")
    assert revision.notes == "Add the 2019 conference papers."
    questions = [q["id"] for q in clarify.payload["questions"]]
    answers = next(p["answers"] for p in decided if p["kind"] == "clarify")
    assert answers[questions[0]] == "patent attorneys"
    assert set(answers) == set(questions)  # the rest: their defaults
    revised = next(p for p in decided if p["decision"] == "revise")
    assert revised["modules"] == ["claim_chart"]
    kept = daemon.host.settings.paths.data_dir / ATTACHMENTS_DIR / task_id / "files"
    assert [p.name for p in kept.iterdir()] == [notes.name]
    runs = {r.module_id: r for r in await daemon.host.app.store.list_module_runs(task_id)}
    assert runs["claim_chart"].attempts > runs["feature_breakdown"].attempts  # re-run, upstream not


async def test_budget_exceeded_add_budget_completes(daemon: Daemon) -> None:
    app: AgentfirmApp = daemon.app()
    async with app.run_test(size=(80, 24)) as pilot:
        view = await create_task(pilot, budget="0.05")
        await prompt(pilot, ClarifyModal)
        await pilot.press("ctrl+s")  # the defaults
        plan = await prompt(pilot, PlanModal)
        assert plan.query_one("#budget", Input).value == "0.05"
        await pilot.press("ctrl+s")

        asked = await prompt(pilot, BudgetModal)
        assert asked.payload["ceiling_usd"] == 0.05
        asked.query_one("#ceiling", Input).value = "2.5"
        await pilot.press("ctrl+s")
        await prompt(pilot, ReviewModal)
        await pilot.press("ctrl+s")
        await until_final(pilot, view)

        assert view.model.status == "completed"
        assert view.model.budget_usd == 2.5
        assert 0.05 < view.model.spent_usd <= 2.5
        kinds = [e["type"] for e in view.model.events]
        assert "budget.exceeded" in kinds
