"""A run SIGKILLed while calls are in flight against a provider that bills on receipt (issue 17
Done when 1, issue 21 item 11): the provider bills calls whose answers nobody read. ``resume``
books each at its reservation (``cancelled``, an upper bound), so after it the ledger bounds the
bill from above, its answered rows bound it from below, no call is booked twice, and the bill
stays under the ceiling. With ``openai_store`` on, ``resume`` then finds each such call in
OpenAI's stored completions and books it at what was stored: the ledger is the bill, exactly.
The kill lands at a seeded random request of the task."""

from __future__ import annotations

import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agentfirm.money import nano_to_float
from agentfirm.store.sql.reads import ESTIMATED
from tests.e2e.conftest import Cli, Result
from tests.e2e.test_daemon_chaos import MODEL, RATES, _env, _rows
from tests.e2e.test_provider_faults_task import REQUEST, _persona_yaml, _succeed
from tests.fakes.http_fake import running
from tests.fakes.openai_fake import OpenAIFake

pytestmark = pytest.mark.e2e

GUARD_S = 60
"""How long the test waits for a kill point before calling the run stuck: a guard, not a bound."""


def _answered(db: Path) -> int:
    """Ledger rows so far (0 before the store exists)."""
    try:
        ((n,),) = _rows(db, "SELECT COUNT(*) FROM ledger")
    except sqlite3.OperationalError:  # not created or not migrated yet
        return 0
    return int(str(n))


# One seed: the worker variant of the cancel test (tests/e2e/test_cancel_notebook.py) took the
# other's CI time.
@pytest.mark.parametrize("seed", [21])
def test_a_run_killed_with_calls_in_flight_books_them_as_upper_bounds_on_resume(
    seed: int, cli: Cli, home: Path, tmp_path: Path
) -> None:
    kill_after = random.Random(seed).randint(3, 12)
    db, billed, resumed, killed = _killed_and_resumed(kill_after, cli, home, tmp_path, {})
    assert killed, "the run never had a billed call in flight"
    assert resumed.code == 0, resumed.stderr[-2000:]
    assert resumed.json()["status"] == "completed"
    ((ledger, answered, estimated, rows, calls, bounds, ceiling, spent, reserved),) = _totals(db)
    assert rows == calls, "a call was booked twice"
    assert bounds > 0, "the calls the kill cut short were not booked"  # type: ignore[operator]
    assert 0 < answered <= billed <= ledger  # type: ignore[operator]
    # The only inexactness is on the rows marked as estimates (shown "≤"): at most their sum.
    assert ledger - billed <= estimated  # type: ignore[operator]
    assert billed <= ceiling  # type: ignore[operator]
    assert (spent, reserved) == (ledger, 0)


@settings(
    max_examples=2,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(kill_after=st.integers(3, 12), budget=st.sampled_from([None, "0.03"]))
@example(kill_after=9, budget="0.03")  # always one whose ceiling runs out
def test_with_openai_store_a_killed_runs_ledger_equals_the_bill_exactly_after_resume(
    kill_after: int, budget: str | None, cli: Cli, tmp_path: Path
) -> None:
    """With ``openai_store`` on, ``resume`` finds each call the kill cut short in OpenAI's
    stored completions and books it at the usage stored: no "≤" row is left, and the ledger is
    the bill to the nano-dollar — whether the task completes or its ceiling (about 60% of what
    it costs, with ``budget``) runs out before or after the kill."""
    # A call the kill stopped before it reached the fake has no record and was not billed: it
    # is booked at $0 once its deadline has passed (with this timeout, seconds after the kill),
    # the resumed task's last reconciliation waiting for that within the cancel grace.
    store_on = {"AGENTFIRM_OPENAI_STORE": "1", "AGENTFIRM_PROVIDER_TIMEOUT_S": "3"}
    home = Path(tempfile.mkdtemp(prefix="af", dir="/tmp"))  # one per example, short for sockets
    try:
        _check_exact(kill_after, budget, cli, home, tmp_path, store_on)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _check_exact(
    kill_after: int,
    budget: str | None,
    cli: Cli,
    home: Path,
    tmp_path: Path,
    settings: dict[str, str],
) -> None:
    db, billed, resumed, killed = _killed_and_resumed(
        kill_after, cli, home, tmp_path, settings, budget=budget
    )
    if budget is None:
        assert killed, "the run never had a billed call in flight"
        assert resumed.code == 0, resumed.stderr[-2000:]
        assert resumed.json()["status"] == "completed"
    ((ledger, _answered_nano, estimated, rows, calls, bounds, ceiling, spent, reserved),) = _totals(
        db
    )
    assert rows == calls, "a call was booked twice"
    if killed:
        (kept,) = _rows(db, "SELECT COUNT(*) FROM ledger WHERE outcome = 'cancelled'")
        assert kept[0] > 0, "the kill cut no call short"  # type: ignore[operator]
    assert (estimated, bounds) == (0, 0), "a call is still booked at its reservation"
    assert ledger == billed
    # ``resume --json`` says what the ledger says after the rows were booked again.
    assert resumed.json()["cost"]["total_usd"] == nano_to_float(billed)
    assert resumed.json()["cost"]["upper_bound_usd"] == 0
    assert billed <= ceiling  # type: ignore[operator]
    assert (spent, reserved) == (ledger, 0)


def _totals(db: Path) -> list[tuple[object, ...]]:
    """The ledger's sum, its answered and "≤" parts, its rows and calls, the number of "≤"
    rows, and the task's budget."""
    return _rows(
        db,
        "SELECT COALESCE(SUM(cost_nano), 0),"
        f" COALESCE(SUM(CASE WHEN {ESTIMATED} THEN 0 ELSE cost_nano END), 0),"
        f" COALESCE(SUM(CASE WHEN {ESTIMATED} THEN cost_nano ELSE 0 END), 0),"
        " COUNT(*), COUNT(DISTINCT call_id),"
        f" COALESCE(SUM({ESTIMATED}), 0),"
        " b.ceiling_nano, b.spent_nano, b.reserved_nano"
        " FROM ledger JOIN budgets b USING (task_id)",
    )


def _killed_and_resumed(
    kill_after: int,
    cli: Cli,
    home: Path,
    tmp_path: Path,
    settings: dict[str, str],
    *,
    budget: str | None = None,
) -> tuple[Path, int, Result, bool]:
    """Run the twelve-module task (under ``budget``), SIGKILL it with a billed call in flight
    once ``kill_after`` requests have reached the fake, resume it: the store's path, what the
    fake billed, the resume's result, and whether the kill landed (a ceiling may end the run
    first)."""
    personas = home / "config" / "personas"
    personas.mkdir(parents=True)
    (personas / "twelve.yaml").write_text(_persona_yaml(), encoding="utf-8")
    db = home / "data" / "agentfirm.db"
    # Each answer takes a while, and the fake bills a request when it arrives: a kill after a
    # request arrived and before its answer leaves a billed call the ledger has not seen.
    with running(OpenAIFake(base_delay_s=0.3, rates={MODEL: RATES})) as provider:
        provider.respond_with(lambda request: _succeed(provider, request))
        # The chaos test's provider settings, run in-process (no daemon).
        env = {**_env(home, provider), "AGENTFIRM_NO_DAEMON": "1", **settings}
        ceiling = ["--budget", budget] if budget is not None else []
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentfirm",
                "run",
                REQUEST,
                "--persona",
                "twelve",
                "--yes",
                *ceiling,
            ],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + GUARD_S
            killed_mid_call = False
            while time.monotonic() < deadline and proc.poll() is None:
                received = len(provider.bill.items)
                if received >= kill_after and received > _answered(db):
                    proc.send_signal(signal.SIGKILL)
                    killed_mid_call = True
                    break
                time.sleep(0.01)
        finally:
            proc.kill()
            proc.wait()
        ((task_id,),) = _rows(db, "SELECT id FROM tasks")
        if killed_mid_call:
            assert _rows(db, "SELECT 1 FROM reservations"), "the kill left no reservation"

        resumed = cli("resume", str(task_id), "--yes", "--json", env=env)
        billed = provider.bill.nano
    return db, billed, resumed, killed_mid_call
