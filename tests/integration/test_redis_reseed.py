"""Redis without persistence, restarted empty together with the daemon (issue 21 item 3): the
new daemon's bus gives Redis the task's history back from the store, and no seq is handed out
twice — every event once, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from keyring.backends import fail

from agentfirm.app import App
from agentfirm.domain.models import Event, Task
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import load_settings

if TYPE_CHECKING:
    from tests.integration.redis_server import RedisServer

pytestmark = pytest.mark.integration


async def _app(home: Path, redis_url: str) -> App:
    env = {"AGENTFIRM_HOME": str(home), "AGENTFIRM_REDIS_URL": redis_url}
    redactor = Redactor()
    secrets = SecretStore(redactor, env={}, backend=fail.Keyring())
    return await App.open(load_settings(env, cwd=home), redactor=redactor, secrets=secrets)


async def _publish_and_record(app: App, task_id: str, first: int, count: int) -> list[Event]:
    """Publish as the Build Master does, record as the Master's event pump does."""
    published = []
    for i in range(first, first + count):
        event = await app.bus.publish(task_id, "module.progress", {"i": i})
        assert event.seq > 0  # delivered, not left in the outbox
        assert await app.store.record_event(event)
        published.append(event)
    return published


async def test_redis_restarted_empty_with_the_daemon_gets_history_back_and_reuses_no_seq(
    tmp_path: Path, redis_url: str, redis_server: RedisServer
) -> None:
    before_app = await _app(tmp_path, redis_url)
    try:
        await before_app.store.create_task(Task(id="t_1", request="r"), actor="test")
        before = await _publish_and_record(before_app, "t_1", 0, 25)
    finally:
        await before_app.close()  # the daemon goes, and with it what its bus remembered
    await asyncio.to_thread(redis_server.restart)  # no persistence: Redis comes back empty

    after_app = await _app(tmp_path, redis_url)
    try:
        after = await _publish_and_record(after_app, "t_1", 25, 5)
        in_redis = await after_app.bus.replay("t_1")
        in_store = await after_app.store.list_events("t_1")
    finally:
        await after_app.close()

    assert [e.seq for e in after] == list(range(26, 31))
    assert [(e.seq, e.id) for e in in_redis] == [(e.seq, e.id) for e in before + after]
    assert [e.payload["i"] for e in in_redis] == list(range(30))
    assert [(e.seq, e.id) for e in in_store] == [(e.seq, e.id) for e in in_redis]
