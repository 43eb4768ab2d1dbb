"""Daemon chaos (issue 21, Done when 1): tasks run through the daemon — not ``--no-daemon`` —
against a loopback OpenAI, and the daemon is SIGKILLed at a random event of each; the task then
goes on by ``agentfirm resume`` or by a plain daemon start (alternately). Every task completes
under its own ``--yes``; no module produces two results; each task's events are 1..N with no gap
in the bus and the store alike; with ``openai_store`` on, the ledger equals, to the nano-dollar,
what the fake billed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentfirm.store.sql.reads import ESTIMATED
from tests.e2e.conftest import _SCRUB_PREFIXES, Result, stop_daemon
from tests.e2e.test_provider_faults_task import REQUEST, _persona_yaml, _succeed
from tests.fakes.http_fake import running
from tests.fakes.metering import Rates
from tests.fakes.openai_fake import OpenAIFake

pytestmark = [pytest.mark.e2e, pytest.mark.heavy]

RUNS = int(os.environ.get("CHAOS_RUNS", "22"))
KILLED_MID_TASK = RUNS - 2
"""At least this many kills must land while the task runs (a task of the twelve-module persona
has about 60 events; the kill comes at a random one of the first 45, but a task can end while
the test looks)."""
SEED = 20261206
MODEL = "gpt-5-mini"
RATES = Rates(input=250, output=2_000, cached_input=25)  # gpt-5-mini's list prices, nano/token
GUARD_S = 120
"""How long a task may take before the test calls it stuck: a guard, not a bound."""


def _env(home: Path, provider: OpenAIFake) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    return {
        **clean,
        "AGENTFIRM_HOME": str(home),
        "NO_COLOR": "1",
        "OPENAI_API_KEY": "sk-proj-e2e-chaos",
        "OPENAI_BASE_URL": provider.url + "/v1",
        "AGENTFIRM_TIERS__REASONING": f'["openai:{MODEL}"]',
        "AGENTFIRM_TIERS__EXECUTION": f'["openai:{MODEL}"]',
        "AGENTFIRM_TIERS__UTILITY": f'["openai:{MODEL}"]',
        "AGENTFIRM_RESEARCH_ESCALATIONS": "0",
        "AGENTFIRM_QUALITY_REVISION": "false",
    }


def _cli(env: dict[str, str], *args: str) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "agentfirm", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=GUARD_S,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def _rows(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _events(home: Path) -> dict[str, int]:
    """Events in the bus so far, by task."""
    bus = home / "data" / "bus.db"
    if not bus.exists():
        return {}
    try:
        rows = _rows(bus, "SELECT task_id, COUNT(*) FROM events WHERE stream = 'events' GROUP BY 1")
    except sqlite3.OperationalError:  # the daemon is still creating the file
        return {}
    return {str(t): int(str(n)) for t, n in rows}


def _seqs(db: Path, task_id: str) -> list[tuple[int, str]]:
    rows = _rows(
        db,
        "SELECT seq, type FROM events WHERE task_id = ? AND stream = 'events' ORDER BY seq",
        task_id,
    )
    return [(int(str(seq)), str(kind)) for seq, kind in rows]


FINAL = ("completed", "failed", "aborted", "rejected")


def _status(home: Path, task_id: str) -> str:
    ((status,),) = _rows(
        home / "data" / "agentfirm.db", "SELECT status FROM tasks WHERE id = ?", task_id
    )
    return str(status)


def _daemon_pid(home: Path) -> int:
    return int((home / "run" / "agentfirm.pid").read_text().strip())


def _kill_at_event(home: Path, run: subprocess.Popen[str], known: set[str], nth: int) -> str:
    """SIGKILL the daemon once the new task has ``nth`` events (or has ended); its id."""
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        new = {t: n for t, n in _events(home).items() if t not in known}
        if new:
            ((task_id, count),) = new.items()
            if count >= nth or run.poll() is not None:
                os.kill(_daemon_pid(home), signal.SIGKILL)
                return task_id
        time.sleep(0.01)
    raise AssertionError("the task never showed up in the bus")


def _wait_final(home: Path, task_id: str) -> str:
    """The task's status once final (read from the store: a ``tasks show`` a poll, each a
    Python process of its own, cost more than the rest of a run), or the last seen."""
    deadline = time.monotonic() + GUARD_S
    status = "?"
    while time.monotonic() < deadline:
        status = _status(home, task_id)
        if status in FINAL:
            break
        time.sleep(0.05)
    return status


def _wait_reconciled(home: Path) -> None:
    """Until no row is booked at its reservation, or the guard: a completed task's last
    reconciliation, or the daemon start's of a task whose last one a kill cut off, may still be
    waiting for a call's deadline (seconds, with this test's timeout) when its status is final."""
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        ((left,),) = _rows(
            home / "data" / "agentfirm.db", f"SELECT COUNT(*) FROM ledger WHERE {ESTIMATED}"
        )
        if left == 0:
            return
        time.sleep(0.1)


@dataclass(frozen=True)
class Chaos:
    home: Path
    tasks: list[str]
    interrupted: int
    billed_nano: int


@pytest.fixture(scope="module")
def chaos() -> Iterator[Chaos]:
    """RUNS tasks through the daemon, each with a SIGKILL of the daemon at a random event, then
    ``resume`` (even runs) or a plain ``daemon start`` (odd ones), each waited to its end."""
    home = Path(tempfile.mkdtemp(prefix="afk", dir="/tmp"))  # short: the daemon's socket
    personas = home / "config" / "personas"
    personas.mkdir(parents=True)
    (personas / "twelve.yaml").write_text(_persona_yaml(), encoding="utf-8")
    # A reply takes a moment, so kills land between a request and its answer too.
    with running(OpenAIFake(base_delay_s=0.05, rates={MODEL: RATES})) as provider:
        provider.respond_with(lambda request: _succeed(provider, request))
        try:
            # OpenAI keeps every call under its ledger id (``openai_store``), so the calls a kill
            # cut short are booked at what it stored when the task is taken over or ends. One
            # the kill stopped before it reached the fake has no record: $0 once its deadline
            # has passed (seconds, with this timeout). No grace: a task's last look does not
            # wait for that deadline (a 5 s wait a task was most of this test's time); the
            # next daemon start books what is left.
            env = {
                **_env(home, provider),
                "AGENTFIRM_OPENAI_STORE": "1",
                "AGENTFIRM_PROVIDER_TIMEOUT_S": "3",
                "AGENTFIRM_CANCEL_GRACE_S": "0",
            }
            tasks, interrupted = _kill_and_go_on(home, env)
            # The last task's leftovers: a daemon start's look, waiting out their deadline
            # within the grace.
            stop_daemon(home)
            started = _cli({**env, "AGENTFIRM_CANCEL_GRACE_S": "30"}, "daemon", "start")
            assert started.code == 0, started.stderr
            _wait_reconciled(home)
            yield Chaos(home, tasks, interrupted, provider.bill.nano)
        finally:
            stop_daemon(home)
            shutil.rmtree(home, ignore_errors=True)


def _kill_and_go_on(home: Path, env: dict[str, str]) -> tuple[list[str], int]:
    rng = random.Random(SEED)
    tasks: list[str] = []
    interrupted = 0
    for n in range(RUNS):
        run = subprocess.Popen(
            [sys.executable, "-m", "agentfirm", "run", REQUEST, "--persona", "twelve", "--yes"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            task_id = _kill_at_event(home, run, set(tasks), rng.randint(1, 45))
            tasks.append(task_id)
            # The task goes on at once, while the client that lost its daemon still waits for
            # one (a few seconds' patience: waiting it out made most of a run's time). Whether
            # it gives up or follows the task to its end, it must not hang.
            if _status(home, task_id) not in FINAL:  # else it ended before the kill
                interrupted += 1
                if n % 2 == 0:
                    resumed = _cli(env, "resume", task_id, "--yes", "--json")
                    # The daemon this starts drives its unfinished tasks on by itself: one near
                    # its end may be over before the resume reaches it (refused, as finished).
                    over = "is already completed" in resumed.stderr
                    assert resumed.code == 0 or over, (task_id, resumed.stderr[-2000:])
                else:
                    started = _cli(env, "daemon", "start")
                    assert started.code == 0, started.stderr
                assert _wait_final(home, task_id) == "completed", task_id
            run.wait(timeout=GUARD_S)
        finally:
            run.kill()
            run.wait()
    return tasks, interrupted


def test_every_task_killed_mid_run_completes_with_no_module_twice_and_no_event_gap(
    chaos: Chaos,
) -> None:
    assert chaos.interrupted >= KILLED_MID_TASK
    db = chaos.home / "data" / "agentfirm.db"
    for task_id in chaos.tasks:
        assert _status(chaos.home, task_id) == "completed", task_id
        results = _rows(
            db,
            # Plan modules; the close's own steps (_stitch, _quality) are judged again when a
            # kill falls between their call and the task's completion.
            "SELECT module_id, COUNT(*) FROM artifacts WHERE task_id = ?"
            " AND module_id NOT LIKE '\\_%' ESCAPE '\\' GROUP BY 1",
            task_id,
        )
        assert results, task_id
        assert all(count == 1 for _, count in results), (task_id, results)
        stored = _seqs(db, task_id)
        bus = _seqs(chaos.home / "data" / "bus.db", task_id)
        assert [seq for seq, _ in bus] == list(range(1, len(bus) + 1)), task_id
        # The store records what the Master received; the daemon's own notice of how each
        # drive ended (task.result) comes after the Master is done with the task.
        assert stored == [e for e in bus if e in stored], task_id
        missing = {kind for seq, kind in bus if (seq, kind) not in stored}
        assert missing <= {"task.result"}, (task_id, missing)


def test_the_ledger_equals_what_the_provider_billed_and_books_no_call_twice(
    chaos: Chaos,
) -> None:
    """A call in flight at a kill was billed on receipt but never answered: it is booked at its
    reservation (issue 21 item 11), then, when the task is taken over or ends, at the usage
    OpenAI stored for it (``openai_store``): the ledger is the bill to the nano-dollar, with no
    "≤" row left, and the bill under the ceilings."""
    db = chaos.home / "data" / "agentfirm.db"
    ((ledger_nano, estimates, rows, calls, ceilings),) = _rows(
        db,
        "SELECT COALESCE(SUM(cost_nano), 0),"
        f" COALESCE(SUM({ESTIMATED}), 0),"
        " COUNT(*), COUNT(DISTINCT call_id),"
        " (SELECT SUM(ceiling_nano) FROM budgets) FROM ledger",
    )
    assert rows == calls, "a call was booked twice"
    assert estimates == 0, "a call is still booked at its reservation"
    assert ledger_nano == chaos.billed_nano
    assert chaos.billed_nano <= ceilings  # type: ignore[operator]
    (cut,) = _rows(db, "SELECT COUNT(*) FROM ledger WHERE outcome = 'cancelled'")
    assert cut[0] > 0, "no kill cut a call short"  # type: ignore[operator]
