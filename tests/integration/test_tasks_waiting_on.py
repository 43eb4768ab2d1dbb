"""The task list tells what each task waits on (``waiting_on``: the kind of its pending question),
the same through the daemon's API and ``agentfirm tasks list`` in-process: the one way to tell
that an ``executing`` task waits on a failed module's question."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentfirm.api.views import task_rows
from agentfirm.cli.app import app as cli_app
from agentfirm.domain.models import Approval, ApprovalKind
from agentfirm.master.task_lock import TaskLocks
from agentfirm.paths import Paths
from agentfirm.settings import load_settings
from agentfirm.store.base import Store
from agentfirm.store.sqlite import SQLiteStore
from tests.integration.test_daemon_api import serving
from tests.store_conformance import S, created, walk

pytestmark = pytest.mark.integration

TO_EXECUTING = (S.CLASSIFIED, S.PLANNED, S.AWAITING_PLAN_APPROVAL, S.APPROVED, S.HANDED_OFF)
EXPECTED = {
    "failing": "failure",
    "planned": "plan",
    "quiet": None,
    "finished": None,
    "stopped": "resume",
}


async def seed(store: Store) -> dict[str, str]:
    """Five tasks, by name → id: ``failing`` (executing, its failed module's question pending
    after two answered ones), ``planned`` (awaiting plan approval), ``quiet`` (executing, asked
    nothing; its driver holds its lock: see ``driving``), ``finished`` (aborted with a question
    nobody answered) and ``stopped`` (executing, and nothing drives it: a run stopped by
    Ctrl-C)."""
    base = datetime(2026, 1, 1, tzinfo=UTC)

    async def ask(task_id: str, kind: ApprovalKind, minute: int, decided: bool = False) -> None:
        approval_id = f"ap_{task_id}_{minute}"
        at = base + timedelta(minutes=minute)
        await store.create_approval(
            Approval(id=approval_id, task_id=task_id, kind=kind, created_at=at)
        )
        if decided:
            await store.decide_approval(approval_id, "approved", actor="cli:ann")

    ids = {name: (await created(store)).id for name in EXPECTED}
    await walk(store, ids["failing"], *TO_EXECUTING, S.EXECUTING)
    await ask(ids["failing"], "clarify", 1, decided=True)
    await ask(ids["failing"], "plan", 2, decided=True)
    await ask(ids["failing"], "failure", 3)
    await walk(store, ids["planned"], *TO_EXECUTING[:3])
    await ask(ids["planned"], "plan", 1)
    await walk(store, ids["quiet"], *TO_EXECUTING, S.EXECUTING)
    await walk(store, ids["stopped"], *TO_EXECUTING, S.EXECUTING)
    await ask(ids["finished"], "review", 1)
    await walk(store, ids["finished"], S.ABORTED)
    return ids


def driving(paths: Paths, task_id: str) -> TaskLocks:
    """The lock of a process driving ``task_id`` (as a --no-daemon run holds it)."""
    locks = TaskLocks(paths.runtime_dir / "locks")
    locks.acquire(task_id)
    return locks


def waiting(rows: list[dict[str, object]], ids: dict[str, str]) -> dict[str, object]:
    by_id = {row["task_id"]: row["waiting_on"] for row in rows}
    return {name: by_id[task_id] for name, task_id in ids.items()}


async def test_the_daemon_lists_an_executing_task_waiting_on_a_failure(tmp_path: Path) -> None:
    async with serving(tmp_path / "home") as api:
        store = api.host.app.store
        ids = await seed(store)
        lock = driving(api.host.settings.paths, ids["quiet"])

        listed = (await api.http.get("/tasks")).json()

        lock.release_all()
        assert waiting(listed, ids) == EXPECTED
        # the in-process view: the same rows
        assert listed == await task_rows(store, driven=lambda t: t == ids["quiet"])


def test_tasks_list_in_process_shows_what_a_task_waits_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    settings = load_settings({"AGENTFIRM_HOME": str(home)}, cwd=home)
    settings.paths.ensure()

    async def seeded() -> dict[str, str]:
        async with SQLiteStore(settings.paths.db_path) as store:
            return await seed(store)

    ids = asyncio.run(seeded())
    lock = driving(settings.paths, ids["quiet"])
    monkeypatch.delenv("AGENTFIRM_DATABASE_URL", raising=False)
    env = {"AGENTFIRM_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    runner = CliRunner()

    as_json = runner.invoke(cli_app, ["tasks", "list", "--json", "--no-daemon"], env=env)
    table = runner.invoke(cli_app, ["tasks", "list", "--no-daemon"], env=env)
    lock.release_all()

    assert as_json.exit_code == 0, as_json.output
    assert waiting(json.loads(as_json.stdout), ids) == EXPECTED
    assert table.exit_code == 0, table.output
    lines = {line.split()[0]: line for line in table.stdout.splitlines() if line.strip()}
    assert "executing ⏸ failure" in lines[ids["failing"]]
    assert "awaiting_plan_approval ⏸ plan" in lines[ids["planned"]]
    assert "⏸" not in lines[ids["quiet"]] + lines[ids["finished"]]
    assert "executing ⏸ resume" in lines[ids["stopped"]]
