"""Resuming tasks: after a stop for budget, and after a SIGKILL at a random point."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.e2e

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"


def _query(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _assert_books_balance(home: Path, task_id: str) -> None:
    db = home / "data" / "agentfirm.db"
    calls = _query(db, "SELECT call_id FROM ledger WHERE task_id = ?", task_id)
    assert len(calls) == len(set(calls)), "a ledger row was doubled"
    ((spent, reserved, ceiling, total),) = _query(
        db,
        "SELECT b.spent_nano, b.reserved_nano, b.ceiling_nano,"
        " (SELECT COALESCE(SUM(cost_nano), 0) FROM ledger WHERE task_id = b.task_id)"
        " FROM budgets b WHERE b.task_id = ?",
        task_id,
    )
    assert total == spent, "the ledger and the budget disagree"
    assert reserved == 0, "a reservation leaked"
    assert spent <= ceiling


def test_a_task_stopped_for_budget_resumes_with_a_new_ceiling(cli: Cli, home: Path) -> None:
    stopped = cli("run", REQUEST, "--offline", "--yes", "--json", "--budget", "0.05").json()
    assert stopped["status"] == "budget_exhausted"
    before = {
        m["id"]: m["attempts"]
        for m in cli("tasks", "show", stopped["task_id"], "--json").json()["modules"]
        if m["status"] == "done"
    }

    resumed = cli("resume", stopped["task_id"], "--offline", "--yes", "--json", "--budget", "5")

    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["status"] == "completed"
    after = {
        m["id"]: m for m in cli("tasks", "show", stopped["task_id"], "--json").json()["modules"]
    }
    assert before, "some modules finished before the budget ran out"
    for module_id, attempts in before.items():
        assert after[module_id]["attempts"] == attempts, f"{module_id} ran again"
    _assert_books_balance(home, stopped["task_id"])


def test_resume_refuses_a_finished_task(cli: Cli) -> None:
    done = cli("run", REQUEST, "--offline", "--yes", "--json").json()

    result = cli("resume", done["task_id"], "--offline", "--yes")

    assert result.code == 2
    assert "completed" in result.stderr


def test_sigkill_at_random_points_then_resume_completes_without_rework(
    cli: Cli, cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    rng = random.Random(20261124)
    env = {**cli_env, "AGENTFIRM_OFFLINE_LATENCY_MS": "60-160"}
    bus_db = home / "data" / "bus.db"
    store_db = home / "data" / "agentfirm.db"

    def start(run: int) -> subprocess.Popen[bytes]:
        args = ["run", f"{REQUEST} #{run}", "--offline", "--yes", "--json"]
        return subprocess.Popen(
            [sys.executable, "-m", "agentfirm", *args],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    # one whole run tells how long a run takes on this machine now; kills spread over it
    began = time.monotonic()
    assert start(-1).wait() == 0
    whole = time.monotonic() - began
    interrupted: list[str] = []
    for run in range(20):
        proc = start(run)
        time.sleep(rng.uniform(0.2, 0.95) * whole)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not store_db.exists():
            continue
        rows = _query(store_db, "SELECT id FROM tasks WHERE request = ?", f"{REQUEST} #{run}")
        if not rows:
            continue  # killed before the task existed: nothing to resume, nothing written
        (task_id,) = rows[0]
        status = cli("tasks", "show", str(task_id), "--json").json()["status"]
        if status != "completed":  # else the run finished before the kill: check it all the same
            interrupted.append(status)
            resumed = cli("resume", str(task_id), "--offline", "--yes", "--json")

            assert resumed.code == 0, (run, status, resumed.stderr)
            assert resumed.json()["status"] == "completed", run
        completions = _query(
            bus_db,
            "SELECT module_id, COUNT(*) FROM events WHERE task_id = ? AND type = 'module.completed'"
            " GROUP BY module_id",
            task_id,
        )
        assert completions, run
        assert all(n == 1 for _m, n in completions), (run, completions)
        versions = _query(
            store_db,
            "SELECT module_id, MAX(version) FROM artifacts WHERE task_id = ? GROUP BY module_id",
            task_id,
        )
        assert all(v == 1 for m, v in versions if not str(m).startswith("_")), (run, versions)
        _assert_books_balance(home, str(task_id))
    # the kills landed at different points of the lifecycle, most of them mid-run
    assert len(interrupted) >= 10, interrupted
    assert len(set(interrupted)) >= 2, interrupted


def test_a_task_killed_between_its_creation_and_its_intake_budget_resumes(
    cli: Cli, home: Path
) -> None:
    """A run SIGKILLed right after the task row was written, before its intake budget: resume must
    give it the intake budget instead of failing every call with 'has no budget'."""
    import asyncio

    from agentfirm.domain import Task
    from agentfirm.store.sqlite import SQLiteStore

    persona = cli("classify", REQUEST, "--json").json()["persona"]

    async def create() -> str:
        store = SQLiteStore(home / "data" / "agentfirm.db")
        await store.open()
        try:
            task = Task(id="t_killedearly", request=REQUEST, persona=persona)
            await store.create_task(task, actor="cli:test")  # what intake does first
            return task.id
        finally:
            await store.close()

    (home / "data").mkdir(parents=True, exist_ok=True)
    task_id = asyncio.run(create())

    resumed = cli("resume", task_id, "--offline", "--yes", "--json")

    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["status"] == "completed"
