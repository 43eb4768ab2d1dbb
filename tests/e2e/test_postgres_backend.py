"""A whole task through the CLI with PostgreSQL as the system of record."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Cli
from tests.integration.pg_server import pg_server, pg_url  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"


def test_a_task_runs_end_to_end_on_postgres(cli: Cli, pg_url: str) -> None:  # noqa: F811
    env = {"AGENTFIRM_DATABASE_URL": pg_url}

    result = cli("run", REQUEST, "--offline", "--yes", "--json", env=env)

    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["status"] == "completed"
    costs = cli("costs", doc["task_id"], "--json", env=env).json()
    assert costs["total_usd"] == doc["cost"]["total_usd"]
    assert len(costs["calls"]) > 0
    listed = cli("tasks", "list", "--json", env=env).json()
    assert [t["task_id"] for t in listed] == [doc["task_id"]]
    # the embedded store was not used behind our back
    assert cli("tasks", "list", "--json").json() == []
