"""A whole task through the CLI with Redis Streams as the bus (and Postgres as the store)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Cli
from tests.integration.pg_server import pg_server, pg_url  # noqa: F401
from tests.integration.redis_server import redis_server, redis_url  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"


def test_a_task_runs_end_to_end_on_redis_and_postgres(
    cli: Cli,
    redis_url: str,  # noqa: F811
    pg_url: str,  # noqa: F811
) -> None:
    env = {"AGENTFIRM_REDIS_URL": redis_url, "AGENTFIRM_DATABASE_URL": pg_url}

    result = cli("run", REQUEST, "--offline", "--yes", "--json", env=env)

    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["status"] == "completed"
    shown = cli("tasks", "show", doc["task_id"], "--json", env=env).json()
    assert all(m["status"] == "done" for m in shown["modules"])
    assert shown["transitions"][-1]["to"] == "completed"
