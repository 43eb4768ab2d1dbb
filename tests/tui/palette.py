"""The command palette's test harness (ctrl+p, advertised in every footer): an app that notes
every action run, the screens to reach, and ``every_command_runs``, which runs each of a screen's
actions from the palette. The tests are in ``test_palette_*.py``, split by screen so that the
suite's workers share them (a file runs on one worker)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from agentfirm.tui.actions import screen_actions
from agentfirm.tui.app import AgentfirmApp
from agentfirm.tui.context import Context
from textual.command import CommandInput, CommandList, CommandPalette
from textual.pilot import Pilot
from textual.screen import Screen

from tests.tui.fixed_data import FakeSource
from tests.tui.fixed_parts import NOW
from tests.tui.helpers import settle, until

BUILTIN = frozenset({"Theme", "Quit", "Keys", "Maximize", "Minimize", "Screenshot"})
"""Textual's own commands; ``Keys`` is run too (it toggles a panel), the rest leave or write."""


class Recording(AgentfirmApp):
    """The app, noting every action run (the palette runs a command through ``run_action``)."""

    def __init__(self, ctx: Context, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self.ran: list[str] = []

    async def run_action(self, action: Any, default_namespace: Any = None) -> bool:
        if isinstance(action, str):
            self.ran.append(action)
        return await super().run_action(action, default_namespace)


def recording_app(open_task: str | None = None) -> Recording:
    ctx = Context(
        source=FakeSource(), actor="tui:ann", clock=lambda: NOW, animate=False, refresh_s=0
    )
    return Recording(ctx, open_task=open_task)


async def press(pilot: Pilot[Any], *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


Reach = Callable[[Pilot[Any]], Awaitable[None]]


def keys(*pressed: str) -> Reach:
    async def reach(pilot: Pilot[Any]) -> None:
        await press(pilot, *pressed)

    return reach


SCREENS = {
    p.id: p
    for p in [
        pytest.param(None, keys(), id="task_list"),
        pytest.param(None, keys("slash"), id="task_list_filtering"),
        pytest.param(None, keys("n"), id="new_task"),
        pytest.param("t_exec", keys("w"), id="task_waves"),
        pytest.param("t_exec", keys("c"), id="task_costs"),
        pytest.param("t_exec", keys("e"), id="task_events"),
        pytest.param("t_done", keys("w", "o"), id="module_output"),
        pytest.param(None, keys("f1"), id="help"),
        pytest.param("t_exec", keys("x"), id="modal_cancel"),
        pytest.param("t_plan", keys(), id="modal_plan"),
        pytest.param("t_budget", keys(), id="modal_budget"),
        pytest.param("t_review", keys(), id="modal_review"),
        pytest.param("t_clarify", keys(), id="modal_clarify"),
        pytest.param("t_failure", keys(), id="modal_failure"),
    ]
}
"""Each screen and modal: the task opened at start (or none) and the keys that reach it."""


async def _open_palette(pilot: Pilot[Any]) -> CommandPalette:
    await pilot.press("ctrl+p")
    await until(pilot, lambda: isinstance(pilot.app.screen, CommandPalette), what="the palette")
    palette = pilot.app.screen
    assert isinstance(palette, CommandPalette)
    await until(
        pilot,
        lambda: palette.query_one(CommandList).option_count > 0,
        what="the palette's commands",
    )
    return palette


async def _back_to(pilot: Pilot[Any], screen: Screen[Any]) -> None:
    """Undo what a command opened: pop screens until ``screen`` is on top again."""
    app = pilot.app
    while app.screen is not screen and screen in app.screen_stack:
        app.pop_screen()
        await settle(pilot)


def _actions(screen: Screen[Any]) -> dict[str, str]:
    """Each palette title's action, as the screen binds it."""
    found: dict[str, str] = {}
    for _node, binding in screen_actions(screen):
        found.setdefault(binding.description, binding.action)
    return found


async def run_from_palette(pilot: Pilot[Any], title: str) -> None:
    palette = await _open_palette(pilot)
    palette.query_one(CommandInput).value = title  # as typed, in one step

    def first() -> str:
        listed = pilot.app.screen.query_one(CommandList)
        return str(listed.get_option_at_index(0).prompt) if listed.option_count else ""

    await until(pilot, lambda: first().startswith(title), what=f"{title} first in the palette")
    await pilot.press("enter")
    await settle(pilot)
    assert not isinstance(pilot.app.screen, CommandPalette)


async def every_command_runs(task: str | None, reach: Reach) -> None:
    """Every command of the screen is run from the palette; one that leaves the screen (back, a
    decision) ends the round, and the next round starts a fresh app at the same place."""
    ran: set[str] = set()
    for _round in range(20):
        app = recording_app(task)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            await reach(pilot)
            screen = app.screen
            titles = [c.title for c in app.get_system_commands(screen) if c.title not in BUILTIN]
            assert titles, "the screen offers no action in the palette"
            action = _actions(screen)
            if not ran:
                palette = await _open_palette(pilot)  # the markup error broke it here
                listed = palette.query_one(CommandList)
                count = listed.option_count
                shown = [str(listed.get_option_at_index(i).prompt) for i in range(count)]
                for title in titles:
                    assert any(line.startswith(title) for line in shown), title
                await pilot.press("escape")
                await until(pilot, lambda: not isinstance(pilot.app.screen, CommandPalette))
                await run_from_palette(pilot, "Keys")  # Textual's key panel: opens, no crash
            for title in titles:
                if title in ran:
                    continue
                await _back_to(pilot, screen)
                offered = {c.title for c in app.get_system_commands(screen)}
                if title not in offered:
                    break  # an earlier command changed what the screen offers (another pane)
                before = len(app.ran)
                await run_from_palette(pilot, title)
                ran.add(title)
                assert action[title] in app.ran[before:], f"{title} did not run {action[title]}"
                if screen not in app.screen_stack:
                    break  # it left the screen: a fresh app for the rest
        if ran >= set(titles):
            return
    raise AssertionError(f"commands never offered: {set(titles) - ran}")
