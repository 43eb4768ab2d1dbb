"""The TUI on fixed data: keys, the command palette, prompts answered and put off, live events,
the new-task form's checks."""

from __future__ import annotations

from pathlib import Path

from agentfirm.daemon.process import DaemonError
from agentfirm.tui.app import AgentfirmApp
from agentfirm.tui.context import Context
from agentfirm.tui.modals import (
    BudgetModal,
    ConfirmModal,
    FailureModal,
    GenericModal,
    PlanModal,
    modal_for,
)
from agentfirm.tui.screens.new_task import NewTaskScreen
from agentfirm.tui.screens.task_list import TaskListScreen
from agentfirm.tui.source import module_section
from textual.widgets import DataTable, Input, RichLog, Select, TabbedContent, TextArea

from tests.tui.conftest import fake_app
from tests.tui.fixed_data import DRAFT, FakeSource, _event
from tests.tui.helpers import settle, task_screen, until


async def test_the_command_palette_runs_the_screens_actions(fake: FakeSource) -> None:
    app = fake_app(fake, open_task="t_exec")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Tasks", "Waves", "Costs", "Events", "Cancel"} <= titles

        await pilot.press("ctrl+p", *"Costs", "enter")
        await until(pilot, lambda: app.screen.query_one(TabbedContent).active == "costs")


async def test_the_list_filters_and_opens_a_task(fake: FakeSource) -> None:
    app = fake_app(fake)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        app.screen.query_one("#filter", Input).value = "budget"
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        assert [str(k.value) for k in table.rows] == ["t_budget"]

        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, BudgetModal), what="the budget prompt")
        await pilot.press("escape", "escape")
        await until(pilot, lambda: isinstance(app.screen, TaskListScreen), what="the list")


async def test_the_list_tells_what_a_task_waits_on_from_its_row_alone(fake: FakeSource) -> None:
    app = fake_app(fake)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        status = {str(k.value): str(table.get_cell(str(k.value), "status")) for k in table.rows}

        assert status["t_failure"] == "⏸ module failed"  # executing, yet waiting for a person
        assert status["t_plan"] == "⏸ plan approval"  # its status says it already
        assert status["t_exec"] == "executing"
        assert fake.approval_reads == []  # the rows' waiting_on: no request per task


async def test_a_prompt_put_off_comes_back_with_a_and_decides(fake: FakeSource) -> None:
    app = fake_app(fake, open_task="t_plan")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, PlanModal))
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, PlanModal)
        assert fake.decisions == []

        await pilot.press("a")
        await settle(pilot, lambda: isinstance(app.screen, PlanModal))
        app.screen.query_one("#budget", Input).value = "nope"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, PlanModal)  # refused in place, nothing sent
        await pilot.press("ctrl+n")
        await until(pilot, lambda: bool(fake.decisions), what="the decision")

    ((approval_id, decision, actor),) = fake.decisions
    assert (approval_id, decision.decision, actor) == ("ap_t_plan_1", "rejected", "tui:ann")


async def test_a_failed_module_is_retried_with_r(fake: FakeSource) -> None:
    app = fake_app(fake, open_task="t_failure")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, FailureModal))
        await pilot.press("r")
        await until(pilot, lambda: bool(fake.decisions), what="the decision")

    assert [d.decision for _id, d, _actor in fake.decisions] == ["retry"]


async def test_live_events_update_the_dag_and_the_log_once_each(fake: FakeSource) -> None:
    app = fake_app(fake, open_task="t_exec")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        view = task_screen(pilot)
        before = len(view.model.events)
        completed = {"cost_usd": 0.02, "provider": "offline"}
        done = _event("t_exec", 23, "module.completed", completed, "claim_chart")
        begun = {"attempt": 1, "tier": "reasoning", "wave": 2}
        started = _event("t_exec", 24, "module.started", begun, "novelty_analysis")
        fake.push("t_exec", [done, done, started])
        await settle(pilot, lambda: view.model.last_seq == 24)

        assert view.model.modules["claim_chart"].status == "done"
        assert view.model.modules["novelty_analysis"].status == "running"
        assert len(view.model.events) == before + 2
        await pilot.press("e")
        assert len(app.screen.query_one(RichLog).lines) == before + 2


async def test_cancel_asks_first(fake: FakeSource) -> None:
    app = fake_app(fake, open_task="t_exec")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the question")
        await pilot.press("y")
        await until(pilot, lambda: fake.details["t_exec"]["status"] == "aborted", what="cancel")


async def test_the_new_task_form_names_what_to_fix(fake: FakeSource, tmp_path: Path) -> None:
    brief = tmp_path / "brief.pdf"
    brief.write_bytes(b"%PDF-1.4")
    app = fake_app(fake)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewTaskScreen), what="the form")
        form = app.screen
        assert isinstance(form, NewTaskScreen)
        form.cwd = tmp_path
        status = form.query_one("#status")

        await pilot.press("ctrl+s")
        assert "write the request first" in str(status.render())
        form.query_one("#request", TextArea).insert("Competitive analysis of heat-pump makers")
        form.query_one("#budget", Input).value = "lots"
        await pilot.press("ctrl+s")
        assert "budget 'lots'" in str(status.render())
        form.query_one("#budget", Input).value = "2.5"
        form.query_one("#attach", Input).focus()
        form.query_one("#attach", Input).value = "nothere.txt"
        await pilot.press("enter")
        assert "attachment 'nothere.txt': no such file" in str(status.render())
        form.query_one("#runner", Select).value = "notebook"
        form.query_one("#attach", Input).value = "brief.pdf"
        await pilot.press("enter", "ctrl+s")
        await until(pilot, lambda: bool(fake.submissions), what="the submission")

    (sent,) = fake.submissions
    assert sent.request == "Competitive analysis of heat-pump makers"
    assert str(sent.budget_usd) == "2.5"
    assert sent.attachments == (str(brief.resolve()),)
    assert sent.runner == "notebook"


async def test_without_animation_a_focused_box_keeps_its_cursor_steady(fake: FakeSource) -> None:
    """Snapshots are taken without animation; a cursor that blinked drew the new-task form with
    or without it, by how long the form took to settle (TextArea keeps the line it drew in a
    blink's dark half)."""
    app = fake_app(fake)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        await settle(pilot)
        (box,) = [b for b in app.screen.query(Input) if b.has_focus]
        assert not box.cursor_blink
        await pilot.press("escape", "n")
        await settle(pilot)
        request = app.screen.query_one("#request", TextArea)
        assert request.has_focus
        assert not request.cursor_blink


def test_a_kind_this_tui_does_not_know_gets_a_generic_prompt() -> None:
    payload = {"question": "Which one?", "candidates": ["a", "b"]}
    modal = modal_for({"id": "ap1", "kind": "persona", "payload": payload})
    assert isinstance(modal, GenericModal)


def test_a_modules_output_is_its_section_of_the_draft() -> None:
    section = module_section(DRAFT, "prior_art_search")

    assert section is not None
    assert section.startswith("### Prior-art search (`prior_art_search`)")
    assert "US 9,876,543 B2" in section
    assert "Non-patent" not in section
    assert module_section(DRAFT, "claims_drafting") is None


async def test_a_question_answered_elsewhere_closes_its_prompt(fake: FakeSource) -> None:
    app = fake_app(fake, open_task="t_plan")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, PlanModal))
        decided = {
            "approval_id": "ap_t_plan_1",
            "kind": "plan",
            "decision": "approved",
            "actor": "cli:bob",
            "budget_usd": 5.0,
            "modules": [],
        }
        fake.push("t_plan", [_event("t_plan", 4, "approval.decided", decided)])
        await until(pilot, lambda: not isinstance(app.screen, PlanModal), what="it to close")

    assert fake.decisions == []  # nothing sent from here


async def test_a_daemon_that_cannot_start_closes_the_app_with_code_1(fake: FakeSource) -> None:
    def startup() -> None:
        raise DaemonError("the daemon exited with code 2: bad config", hint="see daemon.log")

    app = AgentfirmApp(Context(fake, animate=False, refresh_s=0), startup=startup)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.return_code is not None, what="the app to close")

    assert app.return_code == 1
    assert fake.decisions == []
