"""The command palette on the task list, its filter, the new-task form and help: it opens without
a markup error, lists the screen's actions, and each of them runs from it."""

from __future__ import annotations

import pytest

from tests.tui.palette import SCREENS, Reach, every_command_runs

pytestmark = pytest.mark.heavy


@pytest.mark.parametrize(
    ("task", "reach"),
    [SCREENS[name] for name in ("task_list", "task_list_filtering", "new_task", "help")],
)
async def test_the_palette_opens_and_runs_each_command(task: str | None, reach: Reach) -> None:
    """Every command of the screen is run from the palette; one that leaves the screen (back, a
    decision) ends the round, and the next round starts a fresh app at the same place."""
    await every_command_runs(task, reach)
