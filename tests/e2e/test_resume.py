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

pytestmark = [pytest.mark.e2e, pytest.mark.heavy]

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


def _events_published(store_db: Path, bus_db: Path, request: str) -> int:
    """How many events the task of ``request`` has published so far (0 before it exists)."""
    if not (store_db.exists() and bus_db.exists()):
        return 0  # connecting would create the file under the run's feet
    try:
        rows = _query(store_db, "SELECT id FROM tasks WHERE request = ?", request)
        if not rows:
            return 0
        ((count,),) = _query(bus_db, "SELECT COUNT(*) FROM events WHERE task_id = ?", rows[0][0])
    except sqlite3.OperationalError:  # a schema not created yet
        return 0
    return int(str(count))


def _kill_after_event(
    proc: subprocess.Popen[bytes], store_db: Path, bus_db: Path, request: str, nth: int
) -> None:
    """SIGKILL ``proc`` as soon as its task has published ``nth`` events (or once it ended)."""
    deadline = time.monotonic() + 120  # a hung run must not hang the suite
    while proc.poll() is None and time.monotonic() < deadline:
        if _events_published(store_db, bus_db, request) >= nth:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


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

    # One whole run tells how many events a run publishes; each kill lands right after a random
    # one of them, wherever the run is in the lifecycle, however fast this machine is right now
    # (a kill at a random instant, spread over how long the first run took, missed its mark
    # whenever the load changed: after the run ended, or before its task existed).
    assert start(-1).wait() == 0
    whole = _events_published(store_db, bus_db, f"{REQUEST} #-1")
    assert whole > 10, whole
    interrupted: list[str] = []
    for run in range(20):
        proc = start(run)
        _kill_after_event(proc, store_db, bus_db, f"{REQUEST} #{run}", rng.randint(1, whole - 2))
        ((task_id,),) = _query(
            store_db, "SELECT id FROM tasks WHERE request = ?", f"{REQUEST} #{run}"
        )
        # Read from the store, not by a `tasks show` (a Python process a run): resume is what
        # this test puts through the CLI.
        ((status,),) = _query(store_db, "SELECT status FROM tasks WHERE id = ?", task_id)
        if status != "completed":  # else the run finished before the kill: check it all the same
            interrupted.append(str(status))
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


_DIE_AFTER_FIRST_OUTPUT = """
import os, sys
from agentfirm.store.sqlite import SQLiteStore
save = SQLiteStore.save_artifact
async def save_then_die(self, artifact, **kwargs):
    await save(self, artifact, **kwargs)
    if not artifact.module_id.startswith("_"):
        os._exit(137)  # as a SIGKILL would: nothing after this write happens
SQLiteStore.save_artifact = save_then_die
from agentfirm.cli.app import main
sys.argv = ["agentfirm", *sys.argv[1:]]
main()
"""


def test_a_run_killed_right_after_a_module_output_is_saved_does_not_redo_that_module(
    cli: Cli, cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    """The output and the row saying the module is done are one write: a kill right after it
    leaves the module done, and the resume does not run it again (a second version)."""
    killed = subprocess.run(
        [sys.executable, "-c", _DIE_AFTER_FIRST_OUTPUT, "run", REQUEST, "--offline", "--yes"],
        env=cli_env,
        cwd=tmp_path,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert killed.returncode == 137, killed.stderr
    store_db = home / "data" / "agentfirm.db"
    ((task_id,),) = _query(store_db, "SELECT id FROM tasks")
    (saved,) = _query(
        store_db, "SELECT module_id FROM artifacts WHERE substr(module_id, 1, 1) != '_'"
    )

    resumed = cli("resume", str(task_id), "--offline", "--yes", "--json")

    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["status"] == "completed"
    versions = _query(
        store_db,
        "SELECT module_id, MAX(version) FROM artifacts WHERE task_id = ? GROUP BY module_id",
        task_id,
    )
    assert dict(versions)[saved[0]] == 1, versions
    _assert_books_balance(home, str(task_id))


def test_a_task_killed_between_its_creation_and_its_intake_budget_resumes(
    cli: Cli, home: Path
) -> None:
    """A run SIGKILLed right after the task row was written, before its intake budget: resume must
    give it the intake budget instead of failing every call with 'has no budget'."""
    import asyncio

    from agentfirm.domain.models import Task
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


def test_a_run_stopped_by_ctrl_c_is_left_resumable_offline_without_saying_so_again(
    cli: Cli, cli_env: dict[str, str], home: Path
) -> None:
    """A --no-daemon run interrupted by Ctrl-C while it executes: the task shows as waiting for
    `resume` (not executing forever), and `resume` without --offline serves it offline as it
    was started (no key is set: online it could not run at all)."""
    env = {**cli_env, "AGENTFIRM_OFFLINE_LATENCY_MS": "300"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentfirm", "run", REQUEST, "--offline", "--yes", "--json"],
        env=env,
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = home / "data" / "agentfirm.db"
    deadline = time.monotonic() + 60
    rows: list[tuple[object, ...]] = []
    while time.monotonic() < deadline and not (rows and rows[0][1] == "executing"):
        time.sleep(0.1)
        if db.exists():
            try:
                rows = _query(db, "SELECT id, status FROM tasks")
            except sqlite3.OperationalError:  # the schema is being written
                rows = []
    assert rows, "no task was written"
    assert rows[0][1] == "executing", rows
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    task_id = str(rows[0][0])

    assert proc.returncode == 130
    listed = {r["task_id"]: r for r in cli("tasks", "list", "--json").json()}
    assert (listed[task_id]["status"], listed[task_id]["waiting_on"]) == ("executing", "resume")
    resumed = cli("resume", task_id, "--json")
    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["status"] == "completed"
    assert cli("tasks", "list", "--json").json()[0]["waiting_on"] is None


def test_a_run_killed_during_intake_resumes_offline_as_it_was_started(cli: Cli, home: Path) -> None:
    """`run --offline` killed while its intake runs (here: right after the task row is written):
    the row says offline already, so `resume` without --offline serves it offline (no key is
    set: online it could not run at all)."""
    import asyncio

    from agentfirm.app import App
    from agentfirm.cli.commands.run import task_policy
    from agentfirm.master.decisions import AutoDecider
    from agentfirm.secrets import Redactor, SecretStore
    from agentfirm.settings import load_settings

    class Killed(BaseException):
        pass

    async def run_until_killed() -> str:
        env = {"AGENTFIRM_HOME": str(home), "AGENTFIRM_OFFLINE": "1"}
        settings = load_settings(env, cwd=home)
        redactor = Redactor()
        app = await App.open(settings, redactor=redactor, secrets=SecretStore(redactor, env={}))
        created: list[str] = []
        create = app.store.create_task

        async def create_then_die(task: object, *, actor: str) -> None:
            await create(task, actor=actor)  # type: ignore[arg-type]
            created.append(task.id)  # type: ignore[attr-defined]
            raise Killed

        app.store.create_task = create_then_die  # type: ignore[method-assign]
        policy = task_policy(settings, budget_usd=None, runner=None, yes=True)
        try:
            await app.master(AutoDecider()).intake(REQUEST, policy=policy)
        except Killed:
            pass
        finally:
            await app.close()
        return created[0]

    task_id = asyncio.run(run_until_killed())

    resumed = cli("resume", task_id, "--json")

    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["status"] == "completed"
