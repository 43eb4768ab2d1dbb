"""A whole task through the CLI with Redis Streams as the bus (and Postgres as the store), and a
whole task that loses Redis halfway (issue 4, acceptance 2)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentfirm.app import App
from agentfirm.bus.redis_streams import RedisStreamsBus
from agentfirm.domain.models import Event
from agentfirm.master.decisions import AutoDecider
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import load_settings
from tests.e2e.conftest import Cli
from tests.integration.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
# A guard against hanging forever when a behaviour is broken, not a timing assertion.
GUARD_S = 60
OUTAGE_S = 2.0


def test_a_task_runs_end_to_end_on_redis_and_postgres(
    cli: Cli,
    redis_url: str,
    pg_url: str,
) -> None:
    env = {"AGENTFIRM_REDIS_URL": redis_url, "AGENTFIRM_DATABASE_URL": pg_url}

    result = cli("run", REQUEST, "--offline", "--yes", "--json", env=env)

    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["status"] == "completed"
    shown = cli("tasks", "show", doc["task_id"], "--json", env=env).json()
    assert all(m["status"] == "done" for m in shown["modules"])
    assert shown["transitions"][-1]["to"] == "completed"


@pytest.fixture
async def team_app(
    tmp_path: Path,
    redis_url: str,
    pg_url: str,
) -> AsyncIterator[App]:
    env = {
        "AGENTFIRM_HOME": str(tmp_path / "home"),
        "AGENTFIRM_REDIS_URL": redis_url,
        "AGENTFIRM_DATABASE_URL": pg_url,
        "AGENTFIRM_OFFLINE": "1",
        # Calls long enough that the build is still running when Redis comes back.
        "AGENTFIRM_OFFLINE_LATENCY_MS": "150-300",
    }
    redactor = Redactor()
    app = await App.open(
        load_settings(env), redactor=redactor, secrets=SecretStore(redactor, env=env), env=env
    )
    yield app
    await app.close()


async def test_redis_killed_mid_task_costs_time_never_events(
    team_app: App,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    """Redis is SIGKILLed when the first module completes and comes back (empty) seconds later:
    the task completes; the Master Agent and an independent subscriber each get every event
    exactly once, in seq order; the outbox is empty at the end."""
    bus = team_app.bus
    assert isinstance(bus, RedisStreamsBus)
    seen: list[Event] = []
    buffered_during_outage: list[int] = []
    outage: list[asyncio.Task[None]] = []

    async def kill_then_restart() -> None:
        await asyncio.to_thread(redis_server.kill)
        await asyncio.sleep(OUTAGE_S)  # the outage, not an assertion
        buffered_during_outage.append(await bus.pending())
        await asyncio.to_thread(redis_server.start)

    def observe(event: Event) -> None:
        seen.append(event)
        if event.type == "module.completed" and not outage:
            outage.append(asyncio.create_task(kill_then_restart()))

    reader = RedisStreamsBus(
        redis_server.url, outbox_path=tmp_path / "reader-outbox.sqlite3", max_backoff=0.3
    )
    await reader.open()
    master = team_app.master(AutoDecider(), observe)
    try:
        task = await master.intake(REQUEST)
        followed: list[Event] = []

        async def follow() -> None:
            async for event in reader.subscribe(task.id):
                followed.append(event)

        follower = asyncio.create_task(follow())
        async with asyncio.timeout(GUARD_S):
            _spec, estimate = await master.plan(task)
            result = await master.approve_and_execute(task.id, estimate.suggested_budget_nano())
            await outage[0]
            await bus.wait_drained()
            replayed = await bus.replay(task.id)
            while len(followed) < len(replayed):  # noqa: ASYNC110 - the follower's own pace
                await asyncio.sleep(0.02)
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
    finally:
        await reader.close()
        redis_server.start()

    assert result.status == "completed", result.error
    assert buffered_during_outage[0] > 0, "nothing was published during the outage"
    assert await bus.pending() == 0
    ids = [e.id for e in replayed]
    assert [e.seq for e in replayed] == list(range(1, len(replayed) + 1))
    assert [e.id for e in followed] == ids
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
    assert [e.id for e in seen] == ids[: len(seen)]
    assert any(e.type == "build.completed" for e in seen)
    recorded = await team_app.store.list_events(task.id)
    assert [e.id for e in recorded] == [e.id for e in seen]
