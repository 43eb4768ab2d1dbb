"""A process killed mid-call leaves its call's budget reservation behind; whoever takes the task
over releases it before calling again, and the books stay honest: spent is what the ledger says,
and the killed call — which the provider received and bills — is booked once, at its
reservation, as an upper bound."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentfirm.store.sql.budgets import DIED_MID_CALL
from tests.e2e.conftest import Cli

pytestmark = pytest.mark.e2e

REQUEST = "Prior art search and novelty analysis for a patent on a crash-tolerant ledger"


def _query(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _call_in_flight(db: Path) -> tuple[str, list[str]] | None:
    """The task and its held reservations, once a module's call is in flight."""
    if not db.exists():
        return None
    try:
        rows = _query(
            db,
            "SELECT t.id, r.call_id FROM tasks t JOIN reservations r ON r.task_id = t.id"
            " WHERE t.status = 'executing'",
        )
    except sqlite3.OperationalError:  # not migrated yet
        return None
    if not rows:
        return None
    return str(rows[0][0]), [str(call_id) for _task, call_id in rows]


def test_a_run_killed_mid_call_resumes_with_its_reservation_released(
    cli: Cli, cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    db = home / "data" / "agentfirm.db"
    # Every call takes a while: the kill lands while one is in flight.
    env = {**cli_env, "AGENTFIRM_OFFLINE_LATENCY_MS": "400"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentfirm", "run", REQUEST, "--offline", "--yes", "--json"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        in_flight = None
        while in_flight is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
            in_flight = _call_in_flight(db)
        assert in_flight is not None, "no module call was ever in flight"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    task_id, _calls = in_flight
    # Whatever the kill interrupted is still held: a dead process cannot let go.
    left = [
        str(c) for (c,) in _query(db, "SELECT call_id FROM reservations WHERE task_id = ?", task_id)
    ]
    ((held,),) = _query(db, "SELECT reserved_nano FROM budgets WHERE task_id = ?", task_id)
    assert left
    assert held > 0  # type: ignore[operator]

    resumed = cli("resume", task_id, "--offline", "--yes", "--json")

    assert resumed.code == 0, resumed.stderr
    doc = resumed.json()
    assert doc["status"] == "completed"
    ((spent, reserved, ledger_total),) = _query(
        db,
        "SELECT b.spent_nano, b.reserved_nano,"
        " (SELECT COALESCE(SUM(cost_nano), 0) FROM ledger WHERE task_id = b.task_id)"
        " FROM budgets b WHERE b.task_id = ?",
        task_id,
    )
    assert reserved == 0, "the dead process's reservation was never released"
    assert spent == ledger_total
    assert round(doc["cost"]["total_usd"] * 10**9) == spent
    # The provider received the calls the kill cut short and bills them: each is booked once,
    # at its reservation, cancelled, an upper bound (ARCHITECTURE.md §4).
    cut_short = _query(
        db,
        "SELECT call_id, outcome, error, cost_nano FROM ledger WHERE task_id = ?"
        " AND call_id IN (SELECT value FROM json_each(?))",
        task_id,
        json.dumps(left),
    )
    assert sorted(str(c) for c, *_ in cut_short) == sorted(left), "a killed call is unbooked"
    assert {(o, e) for _c, o, e, _n in cut_short} == {("cancelled", DIED_MID_CALL)}
    assert all(int(str(n)) > 0 for *_, n in cut_short)
    ((rows, calls),) = _query(
        db, "SELECT COUNT(*), COUNT(DISTINCT call_id) FROM ledger WHERE task_id = ?", task_id
    )
    assert rows == calls, "a call was booked twice"
