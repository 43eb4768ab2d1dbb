"""The command palette on every modal: it opens without a markup error, lists the modal's
actions, and each of them runs from it."""

from __future__ import annotations

import pytest

from tests.tui.palette import SCREENS, Reach, every_command_runs

pytestmark = pytest.mark.heavy


@pytest.mark.parametrize(
    ("task", "reach"),
    [
        SCREENS[name]
        for name in (
            "modal_cancel",
            "modal_plan",
            "modal_budget",
            "modal_review",
            "modal_clarify",
            "modal_failure",
        )
    ],
)
async def test_the_palette_opens_and_runs_each_command(task: str | None, reach: Reach) -> None:
    """Every command of the screen is run from the palette; one that leaves the screen (back, a
    decision) ends the round, and the next round starts a fresh app at the same place."""
    await every_command_runs(task, reach)
