"""The module output viewer reads a module's own output from the daemon, and falls back to the
draft's section for it when the daemon has none; a task created in the TUI names its submitter."""

from __future__ import annotations

from typing import Any

from agentfirm.daemon.outputs import artifact_output
from agentfirm.tui.app import AgentfirmApp
from agentfirm.tui.modals import ClarifyModal, PlanModal, ReviewModal
from agentfirm.tui.screens.output import OutputScreen
from agentfirm.tui.source import module_section
from agentfirm.tui.widgets.markdown import MarkdownText
from textual.pilot import Pilot

from tests.tui.conftest import Daemon, fake_app
from tests.tui.fixed_data import DRAFT, PATENT_MODULES, FakeSource
from tests.tui.helpers import settle, until
from tests.tui.test_flows import create_task, prompt


async def _shown_output(pilot: Pilot[Any]) -> tuple[str, str]:
    """Open the focused module's output from the task view: (module id, markdown shown)."""
    await pilot.press("w", "o")
    await until(pilot, lambda: isinstance(pilot.app.screen, OutputScreen), what="the output")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, OutputScreen)
    return screen.module_id, screen.query_one("#output", MarkdownText).markdown


async def test_a_modules_output_comes_from_the_daemon_when_it_has_one(fake: FakeSource) -> None:
    for module in PATENT_MODULES:
        fake.outputs[("t_done", module["id"])] = {
            "module_id": module["id"],
            "markdown": f"# Output of {module['id']} from the daemon\n",
        }
    app = fake_app(fake, open_task="t_done")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        module_id, shown = await _shown_output(pilot)

    assert shown == f"# Output of {module_id} from the daemon\n"


async def test_without_one_the_viewer_shows_the_drafts_section(fake: FakeSource) -> None:
    app = fake_app(fake, open_task="t_done")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        module_id, shown = await _shown_output(pilot)

    assert shown == module_section(DRAFT, module_id)


async def test_a_task_created_in_the_tui_shows_its_submitter_and_module_outputs(
    daemon: Daemon,
) -> None:
    app: AgentfirmApp = daemon.app()
    async with app.run_test(size=(120, 40)) as pilot:
        view = await create_task(pilot)
        await prompt(pilot, ClarifyModal)
        await pilot.press("ctrl+s")
        await prompt(pilot, PlanModal)
        await pilot.press("ctrl+s")
        await prompt(pilot, ReviewModal)
        await pilot.press("escape")  # put off: look at the outputs first
        await until(pilot, lambda: pilot.app.screen is view, what="the task view")
        module_id, shown = await _shown_output(pilot)
        task_id = view.task_id

    store = daemon.host.app.store
    transitions = await store.list_transitions(task_id)
    assert (transitions[0].from_status, transitions[0].actor) == (None, "tui:tester")
    assert shown == (await artifact_output(store, task_id, module_id))["markdown"]
    assert not shown.startswith("###")  # the module's own output, not the draft's section
