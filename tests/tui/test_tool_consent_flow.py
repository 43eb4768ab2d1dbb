"""A tool that changes things, allowed from the TUI's prompt against a real daemon (issue 18,
"Done when" 4): the module pauses on a ``tool`` question, ``y`` in the modal decides it, and the
module's call runs — and its transcript (``t`` on its card) shows the call and its result. The
world is ``tests/fakes/notes_task.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentfirm.tui.app import AgentfirmApp
from agentfirm.tui.modals import ClarifyModal, PlanModal, ReviewModal, ToolModal
from agentfirm.tui.modals.base import ApprovalModal
from agentfirm.tui.screens.new_task import NewTaskScreen
from agentfirm.tui.screens.task_view import TaskScreen
from agentfirm.tui.screens.transcript import TranscriptScreen
from agentfirm.tui.widgets.dag import WaveDag
from textual.pilot import Pilot
from textual.widgets import Static, TextArea

from tests.fakes.http_fake import running
from tests.fakes.notes_task import NOTE, ORIGIN, REQUEST, TOOL, NotesModel, world_env
from tests.fakes.openai_fake import OpenAIFake
from tests.tui.conftest import QUICK, Daemon
from tests.tui.helpers import task_screen, until


@pytest.fixture
def model() -> Iterator[NotesModel]:
    with running(OpenAIFake()) as fake:
        notes = NotesModel(fake)
        fake.respond_with(notes)
        yield notes


@pytest.fixture
def world(tmp_path: Path, model: NotesModel) -> dict[str, str]:
    """The notes world under the daemon's home (``tests/tui/conftest.py``: tmp_path/home)."""
    return world_env(tmp_path / "home", tmp_path / "notebook.txt", model.fake.url)


@pytest.fixture
def daemon_env(world: dict[str, str]) -> dict[str, str]:
    return {**QUICK, **world}


@pytest.fixture
def daemon_keys(world: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in world.items() if k.startswith("OPENAI_")}


async def _next_prompt(pilot: Pilot[Any], answered: set[str]) -> ApprovalModal:
    def asked() -> bool:
        screen = pilot.app.screen
        return (
            isinstance(screen, ApprovalModal)
            and screen.ready
            and screen.approval_id not in answered
        )

    await until(pilot, asked, within=60, what="the next prompt")
    screen = pilot.app.screen
    assert isinstance(screen, ApprovalModal)
    answered.add(screen.approval_id)
    return screen


async def test_allowing_the_tool_in_the_modal_lets_the_module_run_it(
    daemon: Daemon, tmp_path: Path, model: NotesModel
) -> None:
    app: AgentfirmApp = daemon.app()
    answered: set[str] = set()
    shown = ""
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewTaskScreen), what="the form")
        app.screen.query_one("#request", TextArea).insert(REQUEST)
        await pilot.pause()
        await pilot.press("ctrl+s")
        while True:
            modal = await _next_prompt(pilot, answered)
            if isinstance(modal, ClarifyModal | PlanModal):
                await pilot.press("ctrl+s")
            elif isinstance(modal, ToolModal):
                shown = str(modal.query_one("#tool", Static).content)
                await pilot.press("y")
            else:
                assert isinstance(modal, ReviewModal)
                await pilot.press("ctrl+s")
                break
        view = task_screen(pilot)
        assert isinstance(view, TaskScreen)
        await until(pilot, lambda: view.model.final, within=30, what="the task to finish")
        assert view.model.status == "completed"
        task_id = view.task_id
        # Drill into the module's transcript: the turn that asked, the call, what it returned.
        await pilot.press("w")
        await until(pilot, lambda: view.query_one(WaveDag).focused_module == "notes")
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, TranscriptScreen), what="it")
        transcript = str(app.screen.query_one("#transcript", Static).content)

    assert ORIGIN in shown
    assert f"← asks {TOOL}" in transcript
    assert f"⚙ {TOOL}" in transcript
    assert "(ran)" in transcript
    assert "written" in transcript  # the server's answer
    assert transcript.count("◆ turn") == 2
    assert NOTE in shown
    assert (tmp_path / "notebook.txt").read_text() == NOTE + "\n"
    assert model.asked == 1
    approvals = await daemon.host.app.store.list_approvals(task_id)
    [tool] = [a for a in approvals if a.kind == "tool"]
    assert (tool.decision, tool.actor) == ("approved", "tui:tester")
