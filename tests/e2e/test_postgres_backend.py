"""A whole task through the CLI with PostgreSQL as the system of record, and the local cache in
front of it rebuilt after it was deleted."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agentfirm.api import views
from agentfirm.app import App
from agentfirm.master.decisions import AutoDecider
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import load_settings
from agentfirm.store.base import Store
from agentfirm.store.cache import CachedStore
from agentfirm.store.postgres import PostgresStore
from tests.e2e.conftest import Cli

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"


def test_a_task_runs_end_to_end_on_postgres(cli: Cli, pg_url: str) -> None:
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


async def _open_app(env: dict[str, str]) -> App:
    redactor = Redactor()
    return await App.open(
        load_settings(env), redactor=redactor, secrets=SecretStore(redactor, env=env), env=env
    )


async def _views(store: Store, task_id: str) -> dict[str, Any]:
    return {
        "list": await views.task_rows(store),
        "detail": await views.task_detail(store, task_id),
        "costs": await views.task_costs(store, task_id),
        "ledger": [e.model_dump(mode="json") for e in await store.list_ledger(task_id)],
        "approvals": [a.model_dump(mode="json") for a in await store.list_approvals(task_id)],
        "events": [e.model_dump(mode="json") for e in await store.list_events(task_id)],
    }


def _delete_cache(data_dir: Path) -> list[str]:
    deleted = sorted(p.name for p in (data_dir / "cache").iterdir())
    shutil.rmtree(data_dir / "cache")
    return deleted


async def test_a_deleted_cache_is_rebuilt_when_the_app_starts_again(
    pg_url: str,
    tmp_path: Path,
) -> None:
    """Issue 4, acceptance 4: the SQLite cache is deleted while the app is stopped; on start it
    is rebuilt and every task, ledger and approval reads back identical."""
    env = {
        "AGENTFIRM_HOME": str(tmp_path / "home"),
        "AGENTFIRM_DATABASE_URL": pg_url,
        "AGENTFIRM_OFFLINE": "1",
    }
    app = await _open_app(env)
    try:
        result = await app.master(AutoDecider()).run(REQUEST)
        before = await _views(app.store, result.task_id)
    finally:
        await app.close()
    assert result.status == "completed"
    assert before["approvals"], "the run recorded its approvals"
    deleted = await asyncio.to_thread(_delete_cache, app.settings.paths.data_dir)

    again = await _open_app(env)
    try:
        store = again.store
        assert isinstance(store, CachedStore)
        await store.wait_warm()
        rebuilt = await asyncio.to_thread(_cached_task_ids, store.path)
        after = await _views(store, result.task_id)
    finally:
        await again.close()
    async with PostgresStore(pg_url) as plain:
        direct = await _views(plain, result.task_id)

    assert store.path.name in deleted
    assert rebuilt == {result.task_id}
    assert after == before == direct


def _cached_task_ids(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {task_id for (task_id,) in db.execute("SELECT id FROM tasks")}
