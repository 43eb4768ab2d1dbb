"""The daemon end to end (issue 8, acceptance 1–3): the real CLI and client processes talking to
a detached daemon over its Unix socket; SIGTERM and restart; a canary secret in the daemon's env
that no response may carry. Then the CLI as users run it: `run`, `approve`, `resume` and the
reads going through a daemon started on demand, with the output, JSON and exit codes of
`--no-daemon`."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentfirm.cli.context import submitter
from tests.e2e.conftest import Cli, Result, clean_env, run_cli, stop_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.heavy]

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
CANARY = "sk-ant-api03-CANARY" + "3" * 40

# One client process per call: `submit REQUEST`, `decide TASK KIND [BUDGET]`, `costs TASK`.
CLIENT = """
import json, sys
from agentfirm.api.client import DaemonClient
from agentfirm.daemon.process import socket_path
from agentfirm.settings import load_settings

client = DaemonClient(socket_path(load_settings().paths))
op, *args = sys.argv[1:]
if op == "submit":
    out = client.submit(args[0], offline=True, offline_latency_ms=(args[1:] or [None])[0])
elif op == "decide":
    task_id, kind, *budget = args
    approval = client.wait_for_approval(task_id, timeout=60)
    while approval["kind"] != kind:  # questions before planning: left to assumptions
        assert approval["kind"] == "clarify", approval
        client.decide(approval["id"], "rejected", actor="cli:other")
        approval = client.wait_for_approval(task_id, timeout=60)
    budget_usd = budget[0] if budget else None
    out = client.decide(approval["id"], "approved", actor="cli:other", budget_usd=budget_usd)
else:
    out = client.costs(args[0])
print(json.dumps(out))
"""


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
            ("GET", f"/tasks/{task_id}/transcript", None),
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
    # Calls slow enough that the SIGTERM lands before the build's last wave even on a loaded
    # machine (at the fixture's 40-80 ms the task once reached review first).
    task_id = _client(daemon, "submit", REQUEST, "500-700")["task_id"]
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
    assert all(after[m]["attempts"] == attempts for m, attempts in done.items()), (done, after)
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
    """Until the task asks a ``kind`` question; questions before planning are assumed."""
    deadline = time.monotonic() + 60
    with _http(home) as http:
        while time.monotonic() < deadline:
            rows = http.get(f"/tasks/{task_id}/approvals", params={"pending": "true"}).json()
            if any(row["kind"] == kind for row in rows):
                return
            for row in rows:
                if row["kind"] == "clarify":
                    http.post(f"/approvals/{row['id']}", json={"decision": "rejected"})
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


# ------------------------------------------------------------------ the CLI through the daemon
RUN_KEYS = {"task_id", "status", "persona", "deliverable", "repo", "budget_usd", "cost"}


class Shell:
    """The CLI on one short home shared by this module's tests; commands go through the daemon
    unless given ``--no-daemon``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = clean_env(home)

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run_cli({**self.env, **(env or {})}, self.home, *args)


@pytest.fixture(scope="module")
def shell() -> Iterator[Shell]:
    home = Path(tempfile.mkdtemp(prefix="af", dir="/tmp"))
    try:
        yield Shell(home)
    finally:
        stop_daemon(home)
        shutil.rmtree(home, ignore_errors=True)


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """A run document without what differs between two runs of one request: ids, paths, and
    amounts (the task id is in the prompts, so token counts differ a little)."""
    return {
        **{k: v for k, v in doc.items() if k not in ("task_id", "deliverable", "repo")},
        "cost": {
            "keys": sorted(doc["cost"]),
            "simulated": doc["cost"]["simulated"],
            "positive": doc["cost"]["total_usd"] > 0,
        },
    }


@pytest.fixture(scope="module")
def done(shell: Shell, tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    """The module's first command: `run --yes --json --out FILE`, which starts the daemon."""
    copy = tmp_path_factory.mktemp("out") / "report.md"
    assert not (shell.home / "run" / "agentfirm.pid").exists()
    return shell("run", REQUEST, "--offline", "--yes", "--json", "--out", str(copy)), copy


def test_run_starts_a_daemon_that_keeps_running_and_prints_the_run_document(
    shell: Shell, done: tuple[Result, Path]
) -> None:
    result, copy = done

    assert result.code == 0, result.stderr
    doc = result.json()
    assert set(doc) == RUN_KEYS
    assert doc["status"] == "completed"
    assert copy.read_text(encoding="utf-8") == Path(doc["deliverable"]).read_text(encoding="utf-8")
    assert shell("daemon", "status", "--json").json()["running"] is True
    plan = [a for a in _approvals(shell.home, doc["task_id"]) if a["kind"] == "plan"]
    assert [(a["decision"], a["actor"]) for a in plan] == [("approved", "auto:--yes")]
    shown = shell("tasks", "show", doc["task_id"], "--json").json()
    assert shown["transitions"][0]["actor"] == submitter()  # who ran it, not the daemon


def _approvals(home: Path, task_id: str) -> list[dict[str, Any]]:
    with _http(home) as http:
        rows: list[dict[str, Any]] = http.get(f"/tasks/{task_id}/approvals").json()
        return rows


def test_run_through_the_daemon_matches_an_in_process_run(
    shell: Shell, done: tuple[Result, Path]
) -> None:
    here = shell("run", REQUEST, "--offline", "--yes", "--json", "--no-daemon")

    assert here.code == done[0].code == 0
    assert _comparable(done[0].json()) == _comparable(here.json())
    # Both drivers, the daemon and this process, set their start-up heap aside once they were up.
    settled = [
        line
        for log in shell.home.rglob("*.log")
        for line in map(json.loads, log.read_text(encoding="utf-8").splitlines())
        if line["event"] == "process.heap_settled"
    ]
    assert len({line["pid"] for line in settled}) == len(settled) == 2, settled
    assert all(line["frozen_objects"] > 10_000 for line in settled)


def test_a_running_daemon_serves_a_task_by_the_settings_and_personas_of_its_caller(
    shell: Shell, done: tuple[Result, Path]
) -> None:
    """The daemon is running already (``done``): a persona added since and a latency set in this
    shell only travel with the task, so it is served as --no-daemon serves it."""
    mine = shell.home / "config" / "personas" / "solder_patents.yaml"
    mine.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).resolve().parents[2] / "personas" / "patent_research.yaml", mine)
    args = ("run", REQUEST, "--offline", "--yes", "--json", "--persona", "solder_patents")
    latency = {"AGENTFIRM_OFFLINE_LATENCY_MS": "1-3"}
    try:
        there, here = shell(*args, env=latency), shell(*args, "--no-daemon", env=latency)
    finally:
        mine.unlink()

    assert (there.code, here.code) == (0, 0), there.stderr
    assert there.json()["persona"] == "solder_patents"
    assert _comparable(there.json()) == _comparable(here.json())
    policies = [
        shell("tasks", "show", doc.json()["task_id"], "--json").json()["policy"]
        for doc in (there, here)
    ]
    assert policies[0] == policies[1]
    assert policies[0]["offline_latency_ms"] == "1-3"
    assert policies[0]["auto_approve"] is True


def test_a_budget_stop_through_the_daemon_matches_an_in_process_one(shell: Shell) -> None:
    args = ("run", REQUEST, "--offline", "--yes", "--json", "--budget", "0.05")
    here, there = shell(*args, "--no-daemon"), shell(*args)

    assert (here.code, there.code) == (3, 3), there.stderr
    assert there.json()["status"] == "budget_exhausted"
    assert _comparable(there.json()) == _comparable(here.json())
    statuses = _statuses(shell.home)
    assert [statuses[r.json()["task_id"]] for r in (here, there)] == ["awaiting_budget"] * 2


def test_reads_through_the_daemon_equal_reads_of_the_store(
    shell: Shell, done: tuple[Result, Path]
) -> None:
    task_id = done[0].json()["task_id"]

    for read in (["tasks", "show", task_id], ["costs", task_id]):
        there = shell(*read, "--json")
        here = shell(*read, "--json", "--no-daemon")

        assert there.code == 0, there.stderr
        assert there.json() == here.json()
    # In-process, these two read the file plainly (store.sqlite.reader): byte for byte the same.
    for read in (["tasks", "list"], ["costs", task_id], ["costs", task_id, "--calls", "3"]):
        for shape in ([], ["--json"]):
            there = shell(*read, *shape)
            here = shell(*read, *shape, "--no-daemon")

            assert there.code == here.code == 0, there.stderr + here.stderr
            assert there.stdout == here.stdout
    # Through the daemon, on a pipe (80 columns): the id to copy and each amount stay whole,
    # and every call of `costs` is one line.
    narrow = {"COLUMNS": "80"}
    assert task_id in shell("tasks", "list", env=narrow).stdout
    shown = shell("tasks", "show", task_id, "--json").json()
    table = shell("tasks", "show", task_id, env=narrow).stdout
    assert all(f"${m['cost_usd']:.4f}" in table for m in shown["modules"])
    calls = shell("costs", task_id, "--json").json()["calls"]
    lines = shell("costs", task_id, "--all", env=narrow).stdout.splitlines()
    assert all(sum(line.startswith(c["call_id"]) for line in lines) == 1 for c in calls)


def test_resume_through_the_daemon_finishes_a_task_stopped_for_budget(shell: Shell) -> None:
    stopped = shell("run", REQUEST, "--offline", "--yes", "--json", "--budget", "0.05").json()

    resumed = shell("resume", stopped["task_id"], "--yes", "--json", "--budget", "5")

    assert resumed.code == 0, resumed.stderr
    assert (resumed.json()["status"], resumed.json()["budget_usd"]) == ("completed", 5.0)
    assert shell("resume", stopped["task_id"], "--yes").code == 2


def test_approve_through_the_daemon_runs_a_planned_task_to_the_end(shell: Shell) -> None:
    task_id = shell("plan", REQUEST, "--offline", "--json").json()["task_id"]

    done = shell("approve", task_id, "--offline", "--yes", "--json", "--budget", "3")

    assert done.code == 0, done.stderr
    assert (done.json()["status"], done.json()["budget_usd"]) == ("completed", 3.0)
    plan = [a for a in _approvals(shell.home, task_id) if a["kind"] == "plan"]
    assert [a["actor"] for a in plan] == [f"cli:{_user()}"]


def _user() -> str:
    import getpass

    return getpass.getuser()


def test_reject_and_cancel_through_the_daemon(shell: Shell) -> None:
    rejected = shell("plan", REQUEST, "--offline", "--json").json()["task_id"]
    cancelled = shell("plan", REQUEST, "--offline", "--json").json()["task_id"]

    assert shell("reject", rejected, "--json").json()["status"] == "rejected"
    assert shell("tasks", "cancel", cancelled, "--json").json()["status"] == "aborted"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--persona", "nosuch", "--yes"], "nosuch"),
        (["--yes", "--attach", "missing.pdf"], "--attach missing.pdf does not exist"),
        ([], "stdin is not one"),
    ],
    ids=["persona", "attachment", "no-terminal"],
)
def test_bad_input_through_the_daemon_is_one_line_exit_2_and_writes_nothing(
    shell: Shell, args: list[str], needle: str
) -> None:
    before = _task_ids(shell.home)

    result = shell("run", REQUEST, "--offline", *args)

    assert result.code == 2
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert _task_ids(shell.home) == before


def _task_ids(home: Path) -> list[str]:
    return sorted(_statuses(home))


def _statuses(home: Path) -> dict[str, str]:
    """Every task's status, read from the home's store (no process to start)."""
    with contextlib.closing(sqlite3.connect(home / "data" / "agentfirm.db")) as db:
        return dict(db.execute("SELECT id, status FROM tasks"))
