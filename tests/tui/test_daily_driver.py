"""What a daily user trips on (issue 20's TUI list, issue 22's launch link): help, leaving the
filter, the footer at 80 columns, where the focus lands in a prompt, where the work of a finished
task is, state shown by marks, the TUI's own words, and the Colab link to copy."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentfirm.tui.app import AgentfirmApp, theme_for
from agentfirm.tui.modals import BudgetModal, PlanModal, ReviewModal
from agentfirm.tui.screens.help import HelpScreen
from agentfirm.tui.screens.new_task import NewTaskScreen
from agentfirm.tui.screens.task_list import TaskListScreen
from agentfirm.tui.screens.task_view import TaskScreen, viewer
from agentfirm.tui.widgets.marks import MarkedCheckbox
from agentfirm.tui.wording import for_tui
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Footer, Input, RichLog, SelectionList, Static, TextArea

from agentfirm.errors import ConfigError
from tests.tui.conftest import fake_app
from tests.tui.fixed_data import FakeSource
from tests.tui.fixed_parts import _event
from tests.tui.helpers import settle, task_screen, until

NO_PROVIDER = ConfigError(
    [
        "tiers.reasoning: no provider can serve this tier — set a provider key (agentfirm "
        "secrets set ANTHROPIC_API_KEY), configure tiers, or run with --offline / "
        "AGENTFIRM_OFFLINE=1"
    ]
)


def footer_keys(pilot: Pilot[Any]) -> list[str]:
    footer = pilot.app.screen.query_one(Footer)
    return [str(item.render()).strip() for item in footer.children]


def shown(pilot: Pilot[Any], selector: str) -> str:
    """A Static's text as a terminal would show it, wide enough not to wrap."""
    console = Console(width=300, color_system=None)
    with console.capture() as capture:
        console.print(pilot.app.screen.query_one(selector, Static).content)
    return " ".join(line.rstrip() for line in capture.get().splitlines())


async def open_form(pilot: Pilot[Any]) -> None:
    """From the list, once it has loaded: the new-task form."""
    await settle(pilot)
    await pilot.press("n")
    await until(pilot, lambda: isinstance(pilot.app.screen, NewTaskScreen), what="the form")


# ---------------------------------------------------------------- help
@pytest.mark.parametrize("key", ["question_mark", "f1"])
async def test_help_lists_the_screens_keys_and_closes_with_escape(
    fake: FakeSource, key: str
) -> None:
    app = fake_app(fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press(key)
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
        keys = shown(pilot, "#keys")
        for words in ("New task", "Filter", "View", "Refresh", "Quit"):
            assert words in keys  # Refresh is off the footer, not off the help
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, TaskListScreen), what="the list")


async def test_help_on_a_task_names_its_panes(fake: FakeSource) -> None:
    app = fake_app(fake, open_task="t_exec")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
        keys = shown(pilot, "#keys")
        assert all(pane in keys for pane in ("Waves", "Costs", "Events", "Cancel"))


# ---------------------------------------------------------------- the filter
async def test_escape_leaves_the_filter_so_q_quits(fake: FakeSource) -> None:
    app = fake_app(fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("slash", "p", "l", "a", "n")
        box = app.screen.query_one("#filter", Input)
        assert box.value == "plan"
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.focused, DataTable)
        assert box.value == "plan"  # the filter stays
        await pilot.press("escape")
        assert box.value == ""  # a second Esc clears it
        await pilot.press("q")
        await until(pilot, lambda: app._exit, what="q to quit")
    assert box.value == ""  # q went to the app, not into the box


async def test_escape_leaves_the_event_filter_not_the_task(fake: FakeSource) -> None:
    app = fake_app(fake, open_task="t_exec")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("e", "slash")
        await settle(pilot)
        assert app.focused is app.screen.query_one("#event-filter", Input)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, TaskScreen)
        assert isinstance(app.focused, RichLog)


async def test_the_footer_at_80_columns_keeps_new_and_quit_while_filtering(
    fake: FakeSource,
) -> None:
    app = fake_app(fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        await settle(pilot)
        keys = footer_keys(pilot)
        assert "^n New task" in keys
        assert "^q Quit" in keys
        assert "esc Done" in keys
        footer = app.screen.query_one(Footer)
        assert all(item.region.right <= footer.region.right for item in footer.children)
        await pilot.press("ctrl+n")
        await until(pilot, lambda: isinstance(app.screen, NewTaskScreen), what="the form")


async def test_running_tasks_come_first_and_f_cycles_the_view(fake: FakeSource) -> None:
    app = fake_app(fake)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)

        def ids() -> list[str]:
            return [str(k.value) for k in table.rows]

        assert ids()[-2:] == ["t_done", "t_rejected"]  # the finished ones last
        await pilot.press("f")
        assert "t_done" not in ids()
        assert "t_exec" in ids()
        assert "tasks at work" in shown(pilot, "#title")
        fake.details["t_rejected"]["status"] = "failed"
        fake.rows[-1]["status"] = "failed"
        await pilot.press("r")
        await pilot.press("f")
        await settle(pilot)
        assert ids() == ["t_rejected"]
        await pilot.press("f")
        assert len(ids()) == len(fake.rows)


# ---------------------------------------------------------------- prompts
@pytest.mark.parametrize(
    ("task", "prompt", "box", "typed"),
    [
        pytest.param("t_plan", PlanModal, "#budget", "4", id="plan"),
        pytest.param("t_budget", BudgetModal, "#ceiling", "1", id="budget"),
    ],
)
async def test_a_prompt_takes_its_amount_at_once(
    fake: FakeSource, task: str, prompt: type[Any], box: str, typed: str
) -> None:
    """Typing and Enter go to the amount box as the prompt opens: no Tab first."""
    app = fake_app(fake, open_task=task)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, prompt))
        assert app.focused is app.screen.query_one(box, Input)
        await pilot.press("end", *["backspace"] * 6, typed, "enter")
        await until(pilot, lambda: bool(fake.decisions), what="the decision")
    ((_id, decision, _actor),) = fake.decisions
    assert (decision.decision, str(decision.budget_usd)) == ("approved", typed)


async def test_ctrl_x_aborts_from_the_budget_prompt_though_its_box_has_focus(
    fake: FakeSource,
) -> None:
    app = fake_app(fake, open_task="t_budget")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, BudgetModal))
        await pilot.press("ctrl+x")  # the box's own ctrl+x cuts text
        await until(pilot, lambda: bool(fake.decisions), what="the decision")
    assert [d.decision for _id, d, _actor in fake.decisions] == ["aborted"]


# ---------------------------------------------------------------- where the work is
@contextlib.contextmanager
def _no_suspend() -> Iterator[None]:
    yield  # the headless test driver cannot hand the terminal over; a real one does


async def test_a_completed_task_says_where_its_deliverable_and_repo_are_and_opens_it(
    fake: FakeSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliverable = tmp_path / "repo" / "deliverable.md"
    deliverable.parent.mkdir()
    deliverable.write_text("# Postmortem\n", encoding="utf-8")
    fake.details["t_done"]["deliverable_path"] = str(deliverable)
    fake.details["t_done"]["repo_path"] = str(deliverable.parent)
    opened = tmp_path / "opened.txt"
    editor = tmp_path / "editor.py"
    editor.write_text(
        f"import sys, pathlib\npathlib.Path({str(opened)!r}).write_text(sys.argv[1])\n"
    )
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    monkeypatch.setattr(AgentfirmApp, "suspend", lambda self: _no_suspend())
    app = fake_app(fake, open_task="t_done")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        where = shown(pilot, "#where")
        assert str(deliverable) in where
        assert f"Task repo {deliverable.parent}" in where
        await pilot.press("v")
        await settle(pilot)
    assert opened.read_text() == str(deliverable)


def test_the_viewer_is_the_editor_then_the_pager_then_less() -> None:
    assert viewer("/d.md", {"EDITOR": "code --wait", "PAGER": "most"}) == [
        "code",
        "--wait",
        "/d.md",
    ]
    assert viewer("/d.md", {"PAGER": "most"}) == ["most", "/d.md"]
    assert viewer("/d.md", {}) == ["less", "/d.md"]


LAUNCH = {
    "run_id": "run_1",
    "runner": "colab",
    "url": "https://colab.research.google.com/github/acme/t-exec/blob/main/task.ipynb",
    "secrets": ["ANTHROPIC_API_KEY", "GITHUB_TOKEN"],
}


async def test_a_colab_launch_link_shows_in_the_header_and_y_copies_it(fake: FakeSource) -> None:
    app = fake_app(fake, open_task="t_exec")
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        view = task_screen(pilot)
        fake.push("t_exec", [_event("t_exec", 23, "runner.launched", LAUNCH)])
        await settle(pilot, lambda: view.model.last_seq == 23)
        where = shown(pilot, "#where")
        assert LAUNCH["url"] in where
        assert "ANTHROPIC_API_KEY, GITHUB_TOKEN" in where
        await pilot.press("y")
        assert app.clipboard == LAUNCH["url"]


async def test_a_refused_key_shows_in_the_header_and_the_log(fake: FakeSource) -> None:
    app = fake_app(fake, open_task="t_exec")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        view = task_screen(pilot)
        refused = {"provider": "anthropic", "key": "ANTHROPIC_API_KEY", "took_over": "openai"}
        fake.push("t_exec", [_event("t_exec", 23, "provider.key_refused", refused)])
        await settle(pilot, lambda: view.model.last_seq == 23)
        assert "anthropic refused its key ANTHROPIC_API_KEY; openai took over" in shown(
            pilot, "#where"
        )
        await pilot.press("e")
        await settle(pilot)
        lines = [line.text for line in app.screen.query_one(RichLog).lines]
        assert any("refused its key" in line for line in lines)


# ---------------------------------------------------------------- marks and words
async def test_the_offline_box_shows_its_state_by_a_mark(fake: FakeSource) -> None:
    app = fake_app(fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_form(pilot)
        box = app.screen.query_one("#offline", MarkedCheckbox)
        assert "✓" not in str(box.render())
        box.toggle()
        await pilot.pause()
        assert "✓" in str(box.render())


async def test_the_modules_a_revision_reruns_are_said_in_words(fake: FakeSource) -> None:
    app = fake_app(fake, open_task="t_review")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, ReviewModal))
        assert "re-run: all" in shown(pilot, "#chosen")
        app.screen.query_one(SelectionList).select("claim_chart")
        await pilot.pause()
        assert shown(pilot, "#chosen") == "re-run: claim_chart"


async def test_the_request_box_has_room_for_a_paragraph(fake: FakeSource) -> None:
    """It was one line high: the form's grid sized every row to one line."""
    app = fake_app(fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_form(pilot)
        await pilot.pause()
        assert app.screen.query_one("#request", TextArea).region.height == 5


def test_cli_flags_are_told_as_tui_controls() -> None:
    told = for_tui(str(NO_PROVIDER))
    assert "--offline" not in told
    assert "tick “offline provider” in the new-task form" in told
    assert "(in a shell: agentfirm secrets set ANTHROPIC_API_KEY)" in told


async def test_a_refused_submission_is_told_in_the_tuis_words(fake: FakeSource) -> None:
    async def refuse(_submission: Any) -> dict[str, Any]:
        raise NO_PROVIDER

    fake.submit = refuse  # type: ignore[method-assign]
    app = fake_app(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_form(pilot)
        app.screen.query_one("#request", TextArea).insert("A market map of heat pumps")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "offline" in shown(pilot, "#status"), what="the refusal")
        status = shown(pilot, "#status")
        assert "--offline" not in status
        assert "offline provider" in status


# ---------------------------------------------------------------- theme
def test_the_theme_follows_the_terminals_background() -> None:
    assert theme_for({"COLORFGBG": "0;15"}) == "textual-light"
    assert theme_for({"COLORFGBG": "15;0"}) == "textual-dark"
    assert theme_for({}) == "textual-dark"
    assert theme_for({"AGENTFIRM_TUI_THEME": "ansi-dark", "COLORFGBG": "0;15"}) == "ansi-dark"
