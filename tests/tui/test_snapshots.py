"""Every screen and modal at 120×40 and 80×24, on fixed data (``FakeSource``, a fixed clock, no
animation), so a snapshot changes only when the drawing does. Update with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and review the SVGs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.conftest import fake_app
from tests.tui.fake_source import FakeSource
from tests.tui.helpers import settle

SIZES = [pytest.param((120, 40), id="120x40"), pytest.param((80, 24), id="80x24")]
VIEWS = [
    pytest.param(None, (), id="task_list"),
    pytest.param(None, ("n",), id="new_task"),
    pytest.param("t_exec", ("w", "right"), id="task_waves_focused"),
    pytest.param("t_exec", ("c",), id="task_costs"),
    pytest.param("t_exec", ("e",), id="task_events"),
    pytest.param("t_done", ("w", "o"), id="module_output"),
    pytest.param("t_plan", (), id="modal_plan"),
    pytest.param("t_budget", (), id="modal_budget"),
    pytest.param("t_review", (), id="modal_review"),
    pytest.param("t_clarify", (), id="modal_clarify"),
    pytest.param("t_failure", (), id="modal_failure"),
    pytest.param("t_exec", ("x",), id="modal_cancel"),
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("task", "keys"), VIEWS)
def test_snapshot(
    snap_compare: Callable[..., bool],
    task: str | None,
    keys: tuple[str, ...],
    size: tuple[int, int],
) -> None:
    async def drive(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    assert snap_compare(
        fake_app(FakeSource(), open_task=task), terminal_size=size, run_before=drive
    )
