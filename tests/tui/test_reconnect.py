"""The daemon dies (SIGKILL) while the TUI follows a task, and comes back: the task view
reconnects from the last seq it saw and ends with exactly the daemon's events — none missing,
none twice."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from agentfirm.daemon import process
from agentfirm.tui.app import AgentfirmApp
from agentfirm.tui.client import DaemonApi
from agentfirm.tui.context import Context
from agentfirm.tui.modals import ClarifyModal, PlanModal, ReviewModal
from agentfirm.tui.source import Submission

from agentfirm.settings import Settings, load_settings
from tests.tui.conftest import QUICK
from tests.tui.helpers import task_screen, until

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
_SCRUB = ("AGENTFIRM_", "ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_", "GITHUB_", "SLACK_")


@pytest.fixture
def detached(short_dir: Path) -> Iterator[tuple[Settings, dict[str, str]]]:
    """Settings and env of a detached daemon under a temporary home (stopped at the end)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env |= {**QUICK, "AGENTFIRM_HOME": str(short_dir), "AGENTFIRM_OFFLINE_LATENCY_MS": "60-120"}
    settings = load_settings(env, cwd=short_dir)
    yield settings, env
    with contextlib.suppress(Exception):
        process.stop(settings, timeout=10)


def _kill(settings: Settings) -> None:
    pid = process.running_pid(settings.paths)
    assert pid is not None
    assert pid > 0
    os.kill(pid, signal.SIGKILL)


async def test_the_task_view_catches_up_after_a_daemon_restart(
    detached: tuple[Settings, dict[str, str]],
) -> None:
    settings, env = detached
    await asyncio.to_thread(process.start, settings, env=env)
    socket = process.socket_path(settings.paths)
    api = DaemonApi(socket)
    created = await api.submit(Submission(REQUEST, offline=True, budget_usd=Decimal(5)))
    task_id = str(created["task_id"])
    ctx = Context(source=DaemonApi(socket), actor="tui:tester", refresh_s=0.5)
    app = AgentfirmApp(ctx, open_task=task_id, close_source=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(
            pilot,
            lambda: isinstance(app.screen, ClarifyModal) and app.screen.ready,
            what="the questions",
        )
        await pilot.press("ctrl+s")
        await until(
            pilot,
            lambda: isinstance(app.screen, PlanModal) and app.screen.ready,
            what="the plan prompt",
        )
        await pilot.press("ctrl+s")
        view = task_screen(pilot)
        await until(
            pilot,
            lambda: any(e["type"] == "module.completed" for e in view.model.events),
            what="a module to finish",
        )
        seen_before = view.model.last_seq

        _kill(settings)
        await until(pilot, lambda: view.link == "reconnecting", what="the break to show")
        await asyncio.to_thread(process.start, settings, env=env)
        await until(pilot, lambda: view.link == "live", what="the view to reconnect")

        await until(
            pilot,
            lambda: isinstance(app.screen, ReviewModal) and app.screen.ready,
            within=60,
            what="the review prompt after the restart",
        )
        await pilot.press("ctrl+s")
        await until(
            pilot,
            lambda: view.model.final and view.link == "ended" and view.settled,
            within=60,
            what="the task to finish",
        )

        shown = [(e["seq"], e["id"]) for e in view.model.events]
        status = view.model.status

    everything = [(e["seq"], e["id"]) async for e in api.events(task_id)]
    await api.aclose()
    assert status == "completed"
    assert shown == everything
    assert [seq for seq, _id in shown] == list(range(1, len(shown) + 1))
    assert 0 < seen_before < len(shown)
