"""A task's policies travel with it to the daemon and stay with it (issues 20 and 21): ``--yes``
after a restart, ``resume`` of a task the daemon drives already, ``tasks cancel`` while a `run`
follows, personas added after the daemon started, the submitter's simulated latency."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentfirm.api.client import DaemonClient
from agentfirm.bus.base import Bus
from agentfirm.cli.answers import AutoAnswers
from agentfirm.cli.follow import drive
from agentfirm.master.decisions import AUTO_ACTOR
from tests.integration.test_daemon_api import (
    REQUEST,
    Api,
    _done,
    _host,
    _settings,
    serving,
)

pytestmark = pytest.mark.integration

SHIPPED = Path(__file__).resolve().parents[2] / "personas"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving(tmp_path / "home") as served:
        yield served


async def _until(bus: Bus, task_id: str, event_type: str) -> None:
    async for event in bus.subscribe(task_id):
        if event.type == event_type:
            return


async def test_a_yes_task_cut_short_by_a_restart_finishes_under_its_own_policy(
    tmp_path: Path,
) -> None:
    """The `run --yes` that submitted it is gone (its client exited with the daemon): the
    restarted daemon answers the draft review itself, as --yes would have."""
    settings = _settings(tmp_path / "home", latency="150")
    first = await _host(settings)
    task_id = (await first.submit(REQUEST, offline=True, yes=True))["task_id"]
    await asyncio.wait_for(_until(first.app.bus, task_id, "module.completed"), 30)
    await first.close()

    second = await _host(settings)
    try:
        assert await second.start() == [task_id]
        await asyncio.wait_for(_done(second, task_id), 60)
        task = await second.app.store.get_task(task_id)
        assert task.status == "completed"
        reviews = [a for a in await second.app.store.list_approvals(task_id) if a.kind == "review"]
        assert [a.actor for a in reviews] == [AUTO_ACTOR]
    finally:
        await second.close()


async def test_a_yes_task_whose_question_was_pending_at_a_restart_answers_it(
    tmp_path: Path,
) -> None:
    """Stopped between asking a question and answering it by its policy: the restarted daemon
    drives it (a task waiting for a human is otherwise left waiting) and answers it."""
    settings = _settings(tmp_path / "home")
    first = await _host(settings)
    task_id = (await first.submit(REQUEST, offline=True))["task_id"]
    await asyncio.wait_for(_until(first.app.bus, task_id, "approval.requested"), 30)
    await first.close()

    second = await _host(settings)
    try:
        # as a --yes task stopped right after writing its question, before answering it
        row = await second.app.store.get_task(task_id)
        row.policy = row.policy.model_copy(update={"auto_approve": True})
        await second.app.store.save_task(row)
        assert await second.start() == [task_id]
        await asyncio.wait_for(_done(second, task_id), 60)
        assert (await second.app.store.get_task(task_id)).status == "completed"
    finally:
        await second.close()


async def test_resume_follows_a_task_the_restarted_daemon_drives_already(tmp_path: Path) -> None:
    """`agentfirm resume ID` after a daemon crash: the daemon resumed the task at its start; the
    CLI follows it to its end instead of being refused."""
    home = tmp_path / "home"
    first = await _host(_settings(home, latency="150"))
    task_id = (await first.submit(REQUEST, offline=True, yes=True))["task_id"]
    await asyncio.wait_for(_until(first.app.bus, task_id, "module.completed"), 30)
    await first.close()

    async with serving(home) as second:
        assert await second.host.start() == [task_id]
        response = await second.http.post(f"/tasks/{task_id}/resume", json={})
        assert response.status_code == 200, response.text
        result = await asyncio.wait_for(_follow(second, task_id, response.json()["after_seq"]), 60)

    assert result["status"] == "completed"


async def test_cancel_from_another_shell_ends_the_following_run_aborted(tmp_path: Path) -> None:
    """The `run` following a task hears how a cancel ended it: aborted (exit 4), not a stream
    that ended before its result (exit 1)."""
    async with serving(tmp_path / "home") as api:
        task_id = await api.submit(yes=True)
        following = asyncio.create_task(_follow(api, task_id, 0))
        await asyncio.wait_for(_until(api.host.app.bus, task_id, "task.transition"), 30)
        response = await api.http.post(f"/tasks/{task_id}/cancel", json={"actor": "cli:bob"})
        assert response.status_code == 200, response.text
        result = await asyncio.wait_for(following, 30)

    assert result["status"] == "aborted"


async def test_a_running_daemon_serves_personas_added_after_it_started(
    api: Api, tmp_path: Path
) -> None:
    mine = tmp_path / "my-personas"
    mine.mkdir()
    shutil.copy(SHIPPED / "patent_research.yaml", mine / "solder_patents.yaml")

    task_id = await api.submit(persona="solder_patents", personas_dir=str(mine), yes=True)

    await asyncio.wait_for(api.until_final(task_id), 60)
    task = await api.host.app.store.get_task(task_id)
    assert (task.persona, task.status) == ("solder_patents", "completed")
    assert task.policy.personas_dir == str(mine)


async def test_the_submitters_latency_travels_with_the_task(api: Api) -> None:
    task_id = await api.submit(offline_latency_ms="3-7", yes=True)

    await asyncio.wait_for(api.until_final(task_id), 60)
    task = await api.host.app.store.get_task(task_id)
    assert task.policy.offline_latency_ms == "3-7"
    master = await api.host._master(task.policy)
    assert master.router is not None
    assert api.host.settings.offline_latency_ms == "0"
    served = [view.settings.offline_latency_ms for view in api.host._views.values()]
    assert "3-7" in served


async def _follow(api: Api, task_id: str, after_seq: int) -> dict[str, object]:
    client = DaemonClient(api.socket)
    try:
        return await asyncio.to_thread(
            drive, client, task_id, after_seq=after_seq, out=None, answers=AutoAnswers()
        )
    finally:
        client.close()
