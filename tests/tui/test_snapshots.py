"""Every screen and modal at 160×45 and 80×24, on fixed data (``FakeSource``, a fixed clock, no
animation), so a snapshot changes only when the drawing does. Update with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and review the SVGs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import RichLog

from tests.tui.conftest import fake_app
from tests.tui.fixed_data import FakeSource
from tests.tui.fixed_parts import _event
from tests.tui.helpers import settle, until

SIZES = [pytest.param((160, 45), id="160x45"), pytest.param((80, 24), id="80x24")]
LAUNCH = {
    "run_id": "run_1",
    "runner": "colab",
    "url": "https://colab.research.google.com/github/acme/t-exec/blob/main/task.ipynb",
    "secrets": ["ANTHROPIC_API_KEY", "GITHUB_TOKEN", "AGENTFIRM_DATABASE_URL"],
}


def _finished_with_paths(fake: FakeSource) -> None:
    fake.details["t_done"]["deliverable_path"] = "/home/ann/agentfirm/tasks/t_done/deliverable.md"
    fake.details["t_done"]["repo_path"] = "/home/ann/agentfirm/tasks/t_done"


def _launched_on_colab(fake: FakeSource) -> None:
    seq = len(fake.event_lists["t_exec"]) + 1
    fake.event_lists["t_exec"].append(_event("t_exec", seq, "runner.launched", LAUNCH))


def _journaled_turns(fake: FakeSource) -> None:
    """The first module of ``t_done`` asked for a fetch, then answered: its transcript."""
    module = fake.details["t_done"]["modules"][0]["id"]
    turn = {"provider": "anthropic", "model": "claude-sonnet-4-6", "simulated": False}
    journal = [
        (
            "model.turn",
            {
                **turn,
                "turn": 1,
                "cost_usd": 0.0042,
                "sent": [
                    {"role": "system", "content": "You are a specialist on a team."},
                    {"role": "user", "content": "# Your module\nBuild the outage timeline."},
                ],
                "tool_calls": [
                    {"name": "fetch_url", "raw_arguments": '{"url": "https://status.example"}'}
                ],
            },
        ),
        (
            "tool.called",
            {
                "turn": 1,
                "tool": "fetch_url",
                "arguments": '{"url": "https://status.example"}',
                "content": "09:12 UTC checkout errors rise; 09:41 UTC rollback completes.",
            },
        ),
        (
            "model.turn",
            {
                **turn,
                "turn": 2,
                "cost_usd": 0.0061,
                "tool_calls": [],
                "data": {"summary": "Checkout failed from 09:12 to 09:41 UTC."},
            },
        ),
    ]
    events = fake.event_lists["t_done"]
    for kind, payload in journal:
        events.append(_event("t_done", len(events) + 1, kind, payload, module))


PREPARE: dict[str, Callable[[FakeSource], None]] = {
    "task_done": _finished_with_paths,
    "task_colab": _launched_on_colab,
    "module_transcript": _journaled_turns,
}
VIEWS = [
    pytest.param(None, (), id="task_list"),
    pytest.param(None, ("slash",), id="task_list_filtering"),
    pytest.param(None, ("f",), id="task_list_at_work"),
    pytest.param(None, ("f1",), id="help_list"),
    pytest.param(None, ("n",), id="new_task"),
    pytest.param(None, ("n", "f1"), id="help_new_task"),
    pytest.param("t_exec", ("w", "right"), id="task_waves_focused"),
    pytest.param("t_exec", ("c",), id="task_costs"),
    pytest.param("t_exec", ("e",), id="task_events"),
    pytest.param("t_exec", ("f1",), id="help_task"),
    pytest.param("t_exec", (), id="task_colab"),
    pytest.param("t_done", (), id="task_done"),
    pytest.param("t_done", ("w", "o"), id="module_output"),
    pytest.param("t_done", ("w", "t"), id="module_transcript"),
    pytest.param("t_plan", (), id="modal_plan"),
    pytest.param("t_budget", (), id="modal_budget"),
    pytest.param("t_review", (), id="modal_review"),
    pytest.param("t_clarify", (), id="modal_clarify"),
    pytest.param("t_failure", (), id="modal_failure"),
    pytest.param("t_exec", ("x",), id="modal_cancel"),
    pytest.param("t_plan", ("f1",), id="help_modal_plan"),
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("task", "keys"), VIEWS)
def test_snapshot(
    snap_compare: Callable[..., bool],
    request: pytest.FixtureRequest,
    task: str | None,
    keys: tuple[str, ...],
    size: tuple[int, int],
) -> None:
    fake = FakeSource()
    view = request.node.callspec.id.split("-")[0]
    PREPARE.get(view, lambda _fake: None)(fake)

    async def drive(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        # A log written before it had a size draws its lines once it has one: wait for them
        # (on a busy machine the picture was once taken before).
        await until(
            pilot,
            lambda: not any(log._deferred_renders for log in pilot.app.screen.query(RichLog)),
            what="the event log's lines",
        )
        await pilot.pause()

    assert snap_compare(fake_app(fake, open_task=task), terminal_size=size, run_before=drive)
