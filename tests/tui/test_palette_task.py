"""The command palette on a task's panes and a module's output: it opens without a markup error,
lists the screen's actions, and each of them runs from it; a pane chosen in it stays chosen."""

from __future__ import annotations

import pytest
from textual.widgets import TabbedContent

from tests.tui.helpers import settle
from tests.tui.palette import (
    SCREENS,
    Reach,
    every_command_runs,
    press,
    recording_app,
    run_from_palette,
)

pytestmark = pytest.mark.heavy


@pytest.mark.parametrize(
    ("task", "reach"),
    [SCREENS[name] for name in ("task_waves", "task_costs", "task_events", "module_output")],
)
async def test_the_palette_opens_and_runs_each_command(task: str | None, reach: Reach) -> None:
    """Every command of the screen is run from the palette; one that leaves the screen (back, a
    decision) ends the round, and the next round starts a fresh app at the same place."""
    await every_command_runs(task, reach)


async def test_a_pane_chosen_in_the_palette_stays_chosen() -> None:
    """The focus given back as the palette closes sat on a module card, and took the tabs back
    to Waves: the pane now takes the focus itself."""
    app = recording_app("t_exec")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "w")  # a module card has focus
        await run_from_palette(pilot, "Costs")
        assert app.screen.query_one(TabbedContent).active == "costs"
        await run_from_palette(pilot, "Events")
        assert app.screen.query_one(TabbedContent).active == "events"
