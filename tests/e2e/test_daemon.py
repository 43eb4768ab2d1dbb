"""The daemon end to end (issue 8, acceptance 1–3): the real CLI and client processes talking to
a detached daemon over its Unix socket; SIGTERM and restart; a canary secret in the daemon's env
that no response may carry."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.e2e

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
CANARY = "sk-ant-api03-CANARY" + "3" * 40

# One client process per call: `submit REQUEST`, `decide TASK KIND [BUDGET]`, `costs TASK`.
CLIENT = """
import json, sys
from agentfirm.daemon.client import DaemonClient
from agentfirm.daemon.process import socket_path
from agentfirm.settings import load_settings

client = DaemonClient(socket_path(load_settings().paths))
op, *args = sys.argv[1:]
if op == "submit":
    out = client.submit(args[0], offline=True)
elif op == "decide":
    task_id, kind, *budget = args
    approval = client.wait_for_approval(task_id, kind=kind, timeout=60)
    budget_usd = budget[0] if budget else None
    out = client.decide(approval["id"], "approved", actor="cli:other", budget_usd=budget_usd)
else:
    out = client.costs(args[0])
print(json.dumps(out))
"""


@pytest.fixture
def home() -> Iterator[Path]:
    """Short, so the socket path fits the OS limit (~100 bytes) wherever pytest puts tmp_path."""
    path = Path(tempfile.mkdtemp(prefix="af", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(cli: Cli, cli_env: dict[str, str], home: Path) -> Iterator[dict[str, str]]:
    """The env the daemon runs with (a canary key, simulated latency); stopped at the end."""
    env = {**cli_env, "ANTHROPIC_API_KEY": CANARY, "AGENTFIRM_OFFLINE_LATENCY_MS": "40-80"}
    started = cli("daemon", "start", env=env)
    assert started.code == 0, started.stderr
    yield env
    cli("daemon", "stop")


def _client(env: dict[str, str], *args: str) -> Any:
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert CANARY not in proc.stdout
    return json.loads(proc.stdout)


def _http(home: Path) -> httpx.Client:
    transport = httpx.HTTPTransport(uds=str(home / "run" / "agentfirm.sock"))
    return httpx.Client(transport=transport, base_url="http://daemon", timeout=30)


def _watch(env: dict[str, str], task_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentfirm", "tasks", "watch", task_id],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _terminate(pid: int) -> None:
    """SIGTERM the daemon and wait for it to exit (a pidfd becomes readable when it does)."""
    pidfd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGTERM)
        assert select.select([pidfd], [], [], 60)[0], "the daemon did not exit after SIGTERM"
    finally:
        os.close(pidfd)


def _every_response(home: Path, task_id: str) -> list[str]:
    """The body of every endpoint for this task, error responses included."""
    with _http(home) as http:
        approval_id = http.get(f"/tasks/{task_id}/approvals").json()[0]["id"]
        requests = [
            ("GET", "/health", None),
            ("GET", "/tasks", None),
            ("GET", f"/tasks/{task_id}", None),
            ("GET", f"/tasks/{task_id}/costs", None),
            ("GET", f"/tasks/{task_id}/approvals", None),
            ("GET", f"/tasks/{task_id}/events", None),
            ("GET", "/personas", None),
            ("GET", "/providers", None),
            ("GET", "/openapi.json", None),
            ("GET", "/tasks/t_nope", None),
            ("POST", "/tasks", {"request": REQUEST, "persona": "nosuch", "offline": True}),
            ("POST", "/tasks", {"request": ""}),
            ("POST", f"/approvals/{approval_id}", {"decision": "approved"}),
            ("POST", f"/tasks/{task_id}/resume", {}),
        ]
        return [http.request(m, path, json=body).text for m, path, body in requests]


def test_a_task_flows_through_the_daemon_between_processes_and_survives_a_restart(
    cli: Cli, daemon: dict[str, str], home: Path
) -> None:
    socket = home / "run" / "agentfirm.sock"
    assert socket.stat().st_mode & 0o777 == 0o600

    task_id = _client(daemon, "submit", REQUEST)["task_id"]
    watch = _watch(daemon, task_id)
    plan = _client(daemon, "decide", task_id, "plan", "3")
    review = _client(daemon, "decide", task_id, "review")
    out, err = watch.communicate(timeout=90)
    costs = _client(daemon, "costs", task_id)

    assert (plan["kind"], plan["decision"], plan["actor"]) == ("plan", "approved", "cli:other")
    assert review["kind"] == "review"
    assert watch.returncode == 0, err
    assert "awaiting_plan_approval → approved" in out
    assert "prior_art_search" in out
    assert "done" in out
    assert "status: completed" in out
    assert costs["simulated"] is True
    assert 0 < costs["total_usd"] <= 3.0
    assert costs["total_usd"] == pytest.approx(sum(c["cost_usd"] for c in costs["calls"]))
    for body in _every_response(home, task_id):
        assert CANARY not in body
        assert "CANARY" not in body
    with _http(home) as http:
        before = http.get(f"/tasks/{task_id}").json()
        events_before = http.get(f"/tasks/{task_id}/events").text

    assert cli("daemon", "stop").code == 0
    assert not socket.exists()
    assert not (home / "run" / "agentfirm.pid").exists()
    assert cli("daemon", "status", "--json").json()["running"] is False
    restarted = cli("daemon", "start", env=daemon)

    assert restarted.code == 0, restarted.stderr
    status = cli("daemon", "status", "--json").json()
    assert set(status) == {"running", "pid", "socket", "version"}
    assert status["running"] is True
    with _http(home) as http:
        assert http.get(f"/tasks/{task_id}").json() == before
        assert http.get(f"/tasks/{task_id}/events").text == events_before
    assert '"event": "daemon.stopped"' in (home / "state" / "daemon.log").read_text()


def test_sigterm_mid_run_then_restart_resumes_without_rerunning_done_modules(
    cli: Cli, daemon: dict[str, str], home: Path
) -> None:
    task_id = _client(daemon, "submit", REQUEST)["task_id"]
    _client(daemon, "decide", task_id, "plan")
    with _http(home) as http:
        pid = http.get("/health").json()["pid"]
        with http.stream("GET", f"/tasks/{task_id}/events") as events:
            for line in events.iter_lines():
                if line and json.loads(line)["type"] == "module.completed":
                    break

    _terminate(pid)
    shown = cli("tasks", "show", task_id, "--json").json()
    done = {m["id"]: m["attempts"] for m in shown["modules"] if m["status"] == "done"}
    assert shown["status"] == "executing"
    assert done
    assert all(m["status"] in ("done", "pending") for m in shown["modules"])

    assert cli("daemon", "start", env=daemon).code == 0
    _client(daemon, "decide", task_id, "review")
    watch = _watch(daemon, task_id)
    out, err = watch.communicate(timeout=90)

    assert watch.returncode == 0, err
    after = {m["id"]: m for m in cli("tasks", "show", task_id, "--json").json()["modules"]}
    assert all(after[m]["attempts"] == attempts for m, attempts in done.items())
    assert all(m["status"] == "done" for m in after.values())
    assert "status: completed" in out


def test_daemon_logs_shows_the_last_lines(cli: Cli, daemon: dict[str, str]) -> None:
    result = cli("daemon", "logs", "-n", "3")

    assert result.code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert all(json.loads(line)["event"] for line in lines)


def test_a_foreground_daemon_exits_0_on_sigterm_and_removes_its_files(
    cli_env: dict[str, str], home: Path
) -> None:
    daemon = subprocess.Popen(
        [sys.executable, "-m", "agentfirm", "daemon", "start", "--foreground"],
        env=cli_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with _http(home) as http:  # the socket queues us until the server accepts
            while not (home / "run" / "agentfirm.sock").exists():
                assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
                time.sleep(0.05)
            assert http.get("/health").json()["pid"] == daemon.pid

        daemon.send_signal(signal.SIGTERM)

        assert daemon.wait(timeout=60) == 0
        assert not (home / "run" / "agentfirm.sock").exists()
        assert not (home / "run" / "agentfirm.pid").exists()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def _wait_pending(home: Path, task_id: str, kind: str) -> None:
    deadline = time.monotonic() + 60
    with _http(home) as http:
        while time.monotonic() < deadline:
            rows = http.get(f"/tasks/{task_id}/approvals", params={"pending": "true"}).json()
            if any(row["kind"] == kind for row in rows):
                return
            time.sleep(0.1)
    raise AssertionError(f"no pending {kind} approval for {task_id}")


def test_approve_revise_and_approve_from_other_terminals(
    cli: Cli, daemon: dict[str, str], home: Path
) -> None:
    task_id = _client(daemon, "submit", REQUEST)["task_id"]

    _wait_pending(home, task_id, "plan")
    approved = cli("approve", task_id, "--budget", "3", "--json", env=daemon)
    assert approved.code == 0, approved.stderr
    assert (approved.json()["kind"], approved.json()["decision"]) == ("plan", "approved")

    _wait_pending(home, task_id, "review")
    wrong = cli("revise", task_id, "--notes", "tighten", "--module", "nosuch", env=daemon)
    revised = cli(
        "revise", task_id, "--notes", "tighten the claims", "-m", "claims_drafting", env=daemon
    )
    assert revised.code == 0, revised.stderr

    _wait_pending(home, task_id, "review")
    final = cli("approve", task_id, "--json", env=daemon)
    assert final.code == 0, final.stderr
    deadline = time.monotonic() + 60
    while cli("tasks", "show", task_id, "--json", env=daemon).json()["status"] != "completed":
        assert time.monotonic() < deadline, "the task did not complete"
        time.sleep(0.2)
    shown = cli("tasks", "show", task_id, "--json", env=daemon).json()
    attempts = {m["id"]: m["attempts"] for m in shown["modules"]}
    assert attempts["claims_drafting"] == 2
    assert attempts["prior_art_search"] == 1
    assert shown["budget_usd"] == 3.0
    assert wrong.code == 2
