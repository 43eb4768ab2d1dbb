"""Redis without persistence, restarted empty while no agentfirm process runs (issue 21 item 3,
Done when 3): the task resumed afterwards completes, and the store and Redis both hold every
event once, in order, with no seq handed out twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

from tests.e2e.conftest import Cli

if TYPE_CHECKING:
    from tests.integration.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"


def _stored(home: Path, task_id: str) -> list[tuple[int, str, str]]:
    db = sqlite3.connect(f"file:{home / 'data' / 'agentfirm.db'}?mode=ro", uri=True)
    try:
        return db.execute(
            "SELECT seq, id, type FROM events WHERE task_id = ? AND stream = 'events' ORDER BY seq",
            (task_id,),
        ).fetchall()
    finally:
        db.close()


def _in_redis(url: str, task_id: str) -> list[tuple[int, str, str]]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        entries = client.xrange(f"agentfirm:{task_id}:events")
    finally:
        client.close()
    return [(int(entry_id.split("-")[0]), f["id"], f["type"]) for entry_id, f in entries]


def test_a_task_resumed_after_redis_restarted_empty_keeps_one_history(
    cli: Cli, home: Path, redis_url: str, redis_server: RedisServer
) -> None:
    env = {"AGENTFIRM_REDIS_URL": redis_url}
    stopped = cli("run", REQUEST, "--offline", "--yes", "--json", "--budget", "0.05", env=env)
    assert stopped.code == 3, stopped.stderr
    task_id = stopped.json()["task_id"]
    before = _stored(home, task_id)
    assert before
    redis_server.restart()  # no persistence: everything Redis held is gone
    assert _in_redis(redis_url, task_id) == []

    resumed = cli("resume", task_id, "--offline", "--yes", "--json", "--budget", "5", env=env)

    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["status"] == "completed"
    stored = _stored(home, task_id)
    assert stored[: len(before)] == before
    assert [seq for seq, _, _ in stored] == list(range(1, len(stored) + 1))
    assert len({event_id for _, event_id, _ in stored}) == len(stored)
    assert stored[-1][2] == "task.completed"
    assert _in_redis(redis_url, task_id) == stored
