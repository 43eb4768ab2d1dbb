"""Waiting for the TUI to settle: conditions polled between Pilot pauses, never fixed sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agentfirm.tui.screens.new_task import NewTaskScreen
from agentfirm.tui.screens.output import OutputScreen
from agentfirm.tui.screens.task_view import TaskScreen
from textual.pilot import Pilot


def task_screen(pilot: Pilot[object]) -> TaskScreen:
    return next(s for s in pilot.app.screen_stack if isinstance(s, TaskScreen))


def quiet(pilot: Pilot[object]) -> bool:
    """Every task view has applied what it received and fetched what changed; an output screen
    on top has loaded."""
    for screen in pilot.app.screen_stack:
        if isinstance(screen, TaskScreen) and not screen.settled:
            return False
        if isinstance(screen, OutputScreen | NewTaskScreen) and not screen.loaded:
            return False
    return True


async def until(
    pilot: Pilot[object], condition: Callable[[], bool], *, within: float = 60.0, what: str = ""
) -> None:
    """Pause until ``condition()`` holds (AssertionError naming ``what`` after ``within``
    seconds: a guard against a hang, not a bound; a full run beside others' once took 20 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.02)


async def settle(pilot: Pilot[object], condition: Callable[[], bool] = lambda: True) -> None:
    await until(pilot, lambda: quiet(pilot) and condition(), what="the TUI to settle")
    await pilot.pause()
