"""A task repo deleted mid-run (issue 21 item 5) is written again from the store, and the task
completes — it does not fail for good while every module output is in the store."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, spawn

pytestmark = pytest.mark.e2e

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
GUARD_S = 60


def _query(home: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    db = sqlite3.connect(f"file:{home / 'data' / 'agentfirm.db'}?mode=ro", uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def _first_module_done(home: Path, proc: subprocess.Popen[str]) -> Path:
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for repo in (home / "data" / "repos").glob("t_*"):
            done = _query(
                home,
                "SELECT 1 FROM module_runs WHERE task_id = ? AND status = 'done'",
                repo.name,
            )
            if done:
                return repo
        time.sleep(0.05)
    raise AssertionError("no module finished")


def test_a_task_repo_deleted_mid_run_is_written_again_and_the_task_completes(
    cli: Cli, cli_env: dict[str, str], home: Path
) -> None:
    env = {**cli_env, "AGENTFIRM_OFFLINE_LATENCY_MS": "150"}
    run = spawn(env, "run", REQUEST, "--offline", "--yes", "--json")
    try:
        repo = _first_module_done(home, run)
        shutil.rmtree(repo)
        _out, err = run.communicate(timeout=GUARD_S)
    finally:
        run.kill()
        run.wait()

    assert run.returncode == 0, err
    task_id = repo.name
    assert cli("tasks", "show", task_id, "--json").json()["status"] == "completed"
    log = subprocess.run(
        ["git", "-C", str(repo), "log", "--format=%s"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert log == [
        f"agentfirm: deliverable for task {task_id}",
        f"agentfirm: hand-off of task {task_id}",
    ]
    assert {"spec.json", "deliverable.md"} <= {p.name for p in repo.iterdir()}
    attempts = _query(home, "SELECT attempts FROM module_runs WHERE task_id = ?", task_id)
    assert attempts
    assert all(n == 1 for (n,) in attempts)  # no module ran twice
    restored = _query(
        home, "SELECT COUNT(*) FROM events WHERE task_id = ? AND type = 'repo.restored'", task_id
    )
    assert restored == [(1,)]
