"""`agentfirm worker`: Build Masters on a shared Redis + Postgres, one of them SIGKILLed mid-module
(issue 4, acceptance 3)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from agentfirm.bus.redis_work import WORK_STREAM
from tests.e2e.conftest import Cli

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
# Guards against a hang when a behaviour is broken, not timing assertions.
GUARD_S = 60


def _rows(url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.encode(), args).fetchall()


def _until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + GUARD_S
    while not (found := check()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)
    return found


@pytest.fixture
def team_env(cli_env: dict[str, str], redis_url: str, pg_url: str) -> dict[str, str]:
    return {
        **cli_env,
        "AGENTFIRM_REDIS_URL": redis_url,
        "AGENTFIRM_DATABASE_URL": pg_url,
        "AGENTFIRM_OFFLINE": "1",
        # Long enough calls that a kill lands mid-module.
        "AGENTFIRM_OFFLINE_LATENCY_MS": "300-500",
        "AGENTFIRM_RUNNER": "worker",
        # One build, no automatic quality revision round: every module runs to done once.
        "AGENTFIRM_QUALITY_REVISION": "false",
    }


@pytest.fixture
def spawn(
    team_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(name: str, *args: str) -> subprocess.Popen[str]:
        # stdout alone: under --json it is one document; notices go to stderr.
        out = (tmp_path / f"{name}.out").open("w")
        err = (tmp_path / f"{name}.err").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentfirm", *args],
            env=team_env,
            cwd=tmp_path,
            stdout=out,
            stderr=err,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_worker_killed_mid_module_costs_time_never_work_or_money(
    spawn: Callable[..., subprocess.Popen[str]],
    redis_url: str,
    pg_url: str,
    tmp_path: Path,
) -> None:
    workers = {
        name: spawn(name, "worker", "--name", name, "--reclaim-after", "1.5")
        for name in ("w1", "w2", "w3")
    }
    master = spawn("master", "run", REQUEST, "--yes", "--json", "--budget", "2")
    queue = redis.Redis.from_url(redis_url, decode_responses=True)

    # Kill the worker holding the task just after a module of a later wave started (those of
    # the first wave are done then), while that module's call is in flight.
    def mid_build() -> list[tuple[Any, ...]]:
        return _rows(pg_url, "SELECT 1 FROM module_runs WHERE status = 'running' AND wave >= 1")

    _until(mid_build, "a module of a later wave running")
    (pending,) = queue.xpending_range(WORK_STREAM, "workers", "-", "+", 1)
    victim = pending["consumer"]
    workers[victim].send_signal(signal.SIGKILL)
    workers[victim].wait()
    at_kill = dict(_rows(pg_url, "SELECT module_id, status FROM module_runs"))
    interrupted = sorted(m for m, status in at_kill.items() if status == "running")
    done_before = sorted(m for m, status in at_kill.items() if status == "done")

    assert master.wait(timeout=GUARD_S) == 0, (tmp_path / "master.err").read_text()
    result = json.loads((tmp_path / "master.out").read_text())
    task_id = result["task_id"]
    assert result["status"] == "completed"

    # every module done once: the interrupted ones ran again, the done ones were reused
    modules = dict(
        _rows(pg_url, "SELECT module_id, attempts FROM module_runs WHERE status = 'done'")
    )
    assert sorted(modules) == sorted(at_kill)
    assert interrupted
    assert all(modules[m] >= 2 for m in interrupted), (interrupted, modules)
    assert all(modules[m] == 1 for m in done_before), (done_before, modules)
    outputs = _rows(
        pg_url,
        "SELECT module_id, COUNT(*), MAX(version) FROM artifacts"
        " WHERE module_id NOT LIKE '\\_%%' GROUP BY module_id",
    )
    assert sorted(m for m, _n, _v in outputs) == sorted(at_kill)
    assert all((n, v) == (1, 1) for _m, n, v in outputs), outputs
    completions = _rows(
        pg_url,
        "SELECT module_id, COUNT(*) FROM events WHERE type = 'module.completed'"
        " AND module_id NOT LIKE '\\_%%' GROUP BY module_id",
    )
    assert sorted(m for m, _n in completions) == sorted(at_kill)
    assert all(n == 1 for _m, n in completions), completions

    # the books: no ledger row lost or doubled, nothing left reserved, spend under the ceiling
    calls = [c for (c,) in _rows(pg_url, "SELECT call_id FROM ledger WHERE task_id = %s", task_id)]
    assert len(calls) == len(set(calls)), "a ledger row was doubled"
    ((spent, reserved, ceiling, total),) = _rows(
        pg_url,
        "SELECT spent_nano, reserved_nano, ceiling_nano,"
        " (SELECT COALESCE(SUM(cost_nano), 0) FROM ledger WHERE task_id = %s)"
        " FROM budgets WHERE task_id = %s",
        task_id,
        task_id,
    )
    assert (total, reserved) == (spent, 0)
    assert 0 < spent <= ceiling
    assert result["cost"]["total_usd"] == pytest.approx(spent / 1e9)

    # another worker finished it, and nothing is left on the queue
    (finished,) = _rows(
        pg_url,
        "SELECT payload FROM events WHERE type = 'runner.finished' AND task_id = %s",
        task_id,
    )
    assert finished[0]["outcome"] == "ok"
    assert finished[0]["pid"] != workers[victim].pid
    assert queue.xpending(WORK_STREAM, "workers")["pending"] == 0
    queue.close()

    # the survivors stop cleanly
    survivors = [proc for name, proc in workers.items() if name != victim]
    for proc in survivors:
        proc.send_signal(signal.SIGTERM)
    assert [proc.wait(timeout=GUARD_S) for proc in survivors] == [0, 0]


def test_worker_without_redis_and_postgres_is_a_config_error(cli: Cli) -> None:
    result = cli("worker")

    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "AGENTFIRM_DATABASE_URL" in lines[0]
    assert "AGENTFIRM_REDIS_URL" in lines[0]
