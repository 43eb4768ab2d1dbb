"""Quitting while the task list waits for the daemon: the answer that arrives while the app takes
the list apart (its widgets go first, its readers are stopped after) is dropped, not written into
widgets already gone — the app ended with ``NoMatches``, seen under load in the failure-flow
test, whose app quit as the list read itself again."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from agentfirm.tui.app import AgentfirmApp
from agentfirm.tui.screens.task_list import TaskListScreen

from tests.tui.conftest import fake_app
from tests.tui.fixed_data import FakeSource
from tests.tui.helpers import settle

# A guard against hanging forever when a behaviour is broken, not a timing assertion.
GUARD_S = 10


class AnswersAsItQuits(FakeSource):
    """Once ``app`` is set, the task list is answered only as the app quits, once the list has
    lost the widget the answer is shown in."""

    def __init__(self) -> None:
        super().__init__()
        self.app: AgentfirmApp | None = None
        self.answered_late = 0

    async def _late(self, screen_type: type, widget: str) -> None:
        """Once the app quits and the screen's ``widget`` is gone (its widgets go first, its
        readers are stopped after)."""
        app = self.app
        if app is None:
            return
        async with asyncio.timeout(GUARD_S):
            while True:
                screens = [s for s in app.screen_stack if isinstance(s, screen_type)]
                if not app.is_running and (not screens or not screens[0].query(widget)):
                    break
                await asyncio.sleep(0)
        self.answered_late += 1

    async def _api_tasks(self, *, params: Mapping[str, Any], **rest: Any) -> Any:  # type: ignore[override]
        await self._late(TaskListScreen, "#error")
        return super()._api_tasks(params=params, **rest)


async def test_quitting_while_the_task_list_is_read() -> None:
    source = AnswersAsItQuits()
    app = fake_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        source.app = app
        await pilot.press("r")  # a read on its way; leaving the block quits the app
    assert source.answered_late == 1
