"""A cancel reaches a build in the task notebook's kernel, on a worker (issue 17 done-when 2,
issue 22 done-when 4) and in the daemon's own process, through the daemon as users run it.

``run --yes --json`` in one shell (the daemon drives the task; ``AGENTFIRM_RUNNER=notebook``
executes the build in a real kernel, ``worker`` on an ``agentfirm worker`` process sharing a
real Redis and PostgreSQL), ``tasks cancel`` in another while modules are being served by a
loopback OpenAI fake that notes when each request starts. After the cancel returns no request
starts later than the issue's 1 s, the task ends ``aborted``, the ``run`` that followed it
exits 4, and the ledger is exactly what the fake billed.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentfirm.errors import EXIT_REJECTED
from tests.e2e.conftest import Cli, spawn
from tests.e2e.test_ceiling import MODEL, MODULES, RATES, _home, _persona_yaml
from tests.e2e.test_daemon_chaos import _cli
from tests.e2e.test_provider_faults_task import _succeed
from tests.fakes.compat_servers import last_user_text
from tests.fakes.http_fake import Recorded, Reply, running
from tests.fakes.openai_fake import OpenAIFake

pytestmark = pytest.mark.e2e

GUARD_S = 120
"""How long the test waits for anything before it gives up (a guard, not a measurement)."""
SLOW_S = 1.0
"""Each module answer's delay: the build lasts long enough to be cancelled in the middle."""
GRACE_S = 1.0
"""The issue's bound: no request starts later than this after the cancel returns."""


class Starts:
    """The responder: notes when each request started (at receipt, before it is answered)."""

    def __init__(self, fake: OpenAIFake) -> None:
        self._fake = fake
        self._lock = threading.Lock()
        self.module_starts: list[float] = []
        self.all_starts: list[float] = []

    def __call__(self, request: Recorded) -> Reply:
        now = time.monotonic()
        body = request.body if isinstance(request.body, dict) else {}
        module = "Research and write up part" in last_user_text(body)  # not intake or the plan
        with self._lock:
            self.all_starts.append(now)
            if module:
                self.module_starts.append(now)
        reply = _succeed(self._fake, request)
        return Reply(reply.status, reply.body, reply.headers, delay_s=SLOW_S if module else 0)


@pytest.fixture
def provider() -> Iterator[tuple[OpenAIFake, Starts]]:
    with running(OpenAIFake(rates={MODEL: RATES})) as fake:
        starts = Starts(fake)
        fake.respond_with(starts)
        yield fake, starts


def _worker(request: pytest.FixtureRequest, env: dict[str, str], tmp_path: Path) -> None:
    """An ``agentfirm worker`` for the test's length (killed at its end, after the checks that
    it started nothing late), its output in files: a pipe nobody reads would stall it."""
    with (tmp_path / "worker.log").open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentfirm", "worker", "--name", "w1"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def stop() -> None:
        proc.kill()
        proc.wait()

    request.addfinalizer(stop)


@pytest.mark.parametrize("runner", ["notebook", "worker", "inproc"])
def test_a_cancel_from_another_shell_stops_the_build_and_run_exits_4(
    runner: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    cli: Cli,  # stops the daemon at the end
    cli_env: dict[str, str],
    home: Path,
    provider: tuple[OpenAIFake, Starts],
) -> None:
    fake, starts = provider
    personas = home / "config" / "personas"
    personas.mkdir(parents=True)
    (personas / "sixteen.yaml").write_text(_persona_yaml(), encoding="utf-8")
    # The provider's settings, not _home's home: the daemon's socket path needs a short one.
    _, env = _home(tmp_path, fake)
    env = {
        **{k: v for k, v in env.items() if k != "AGENTFIRM_NO_DAEMON"},
        "AGENTFIRM_RUNNER": runner,
        "AGENTFIRM_MAX_CONCURRENCY": "2",
        "AGENTFIRM_RESEARCH_ESCALATIONS": "0",
        "AGENTFIRM_QUALITY_REVISION": "false",
    }
    if runner == "worker":  # a team's backends, the tests' own servers
        env["AGENTFIRM_REDIS_URL"] = request.getfixturevalue("redis_url")
        env["AGENTFIRM_DATABASE_URL"] = request.getfixturevalue("pg_url")
    shell = {**{k: v for k, v in cli_env.items() if k != "AGENTFIRM_NO_DAEMON"}, **env}
    if runner == "worker":
        _worker(request, shell, tmp_path)
    running_run = spawn(shell, "run", "Write up the sixteen parts of the market", "--yes", "--json")
    try:
        deadline = time.monotonic() + GUARD_S
        while len(starts.module_starts) < 2:  # the kernel is serving modules
            assert running_run.poll() is None, running_run.communicate()
            assert time.monotonic() < deadline, "no module request reached the provider"
            time.sleep(0.05)
        listed = _cli(shell, "tasks", "list", "--json")
        assert listed.code == 0, listed.stderr
        (task,) = listed.json()
        task_id = task["task_id"]

        cancelled = _cli(shell, "tasks", "cancel", task_id, "--json")
        returned = time.monotonic()

        assert cancelled.code == 0, cancelled.stderr
        _out, err = running_run.communicate(timeout=GUARD_S)
    finally:
        if running_run.poll() is None:
            running_run.kill()
            running_run.communicate()
    assert running_run.returncode == EXIT_REJECTED, err[-4000:]
    time.sleep(GRACE_S * 2)  # a kernel still running would be heard from by now
    late = [t - returned for t in starts.all_starts if t > returned + GRACE_S]
    assert late == [], f"{len(late)} requests started more than {GRACE_S}s after the cancel"
    shown = _cli(shell, "tasks", "show", task_id, "--json")
    assert shown.code == 0, shown.stderr
    assert shown.json()["status"] == "aborted"
    costs = _cli(shell, "costs", task_id, "--json", "--all")
    assert costs.code == 0, costs.stderr
    calls = costs.json()["calls"]
    # The calls in flight were answered within the grace and booked as answered, not cut off
    # nor lost with a killed kernel: the ledger is the bill, with no estimate in it.
    assert sum(round(c["cost_usd"] * 1e9) for c in calls) == fake.bill.nano
    assert not [c for c in calls if c["upper_bound"]], calls
    served = {c["module_id"] for c in calls if c["outcome"] == "ok"}
    assert not set(MODULES) <= served  # the build stopped before its end
    if runner == "notebook":  # the kernel's build heard the abort and said so
        with contextlib.closing(sqlite3.connect(home / "data" / "agentfirm.db")) as db:
            finished = db.execute(
                "SELECT payload FROM events WHERE type = 'runner.finished' AND task_id = ?",
                (task_id,),
            ).fetchall()
        assert [json.loads(p)["outcome"] for (p,) in finished] == ["aborted"]
