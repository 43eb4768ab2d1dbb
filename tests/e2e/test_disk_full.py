"""A full disk mid-run (issue 21 item 2): the client is told "disk full" and the path — in
process and through the daemon, whose driver dies on the write — instead of waiting forever;
once space is freed, ``resume`` completes the task and runs no finished module again. A daemon
that cannot start on a full disk says so.

The disk is a small tmpfs the test mounts (root can; a refused mount skips the test, a missing
``mount`` fails it under CI). It is filled with a file once the task is executing, and freed by
deleting that file.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentfirm.bus.outbox import Outbox, OutgoingEvent
from agentfirm.domain.models import utcnow
from agentfirm.errors import DiskFull
from agentfirm.handoff.repos import LocalGitRepos
from tests.e2e.conftest import DAEMON, Cli, spawn, stop_daemon

pytestmark = pytest.mark.e2e

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
GUARD_S = 60
"""How long a client may take to give up before the test calls it hung: a guard, not a bound."""


def _precondition_missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"disk-full test cannot run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def home() -> Iterator[Path]:
    """AGENTFIRM_HOME on its own 24 MB tmpfs (a short path: the daemon's socket lives there)."""
    mount = shutil.which("mount")
    if mount is None:
        _precondition_missing("no mount command")
    point = Path(tempfile.mkdtemp(prefix="afd", dir="/tmp"))
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        point.rmdir()
        pytest.skip(f"mounting a tmpfs was refused: {done.stderr.strip()}")
    home = point / "h"
    home.mkdir()
    try:
        yield home
    finally:
        stop_daemon(home)
        subprocess.run(["umount", "-l", str(point)], check=False)
        point.rmdir()


def _fill(home: Path) -> Path:
    """Write a file until the disk has no space left; return it.

    Unbuffered: a buffered file keeps the chunk that did not fit and raises ENOSPC again when
    it is closed, which failed this test under CI."""
    filler = home.parent / "filler"
    with filler.open("wb", buffering=0) as f:
        chunk = b"\0" * 65536
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
    return filler


def _modules(home: Path, task_id: str) -> dict[str, tuple[str, int, str | None]]:
    db = sqlite3.connect(f"file:{home / 'data' / 'agentfirm.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT module_id, status, attempts, finished_at FROM module_runs WHERE task_id = ?",
            (task_id,),
        ).fetchall()
    finally:
        db.close()
    return {m: (status, attempts, finished) for m, status, attempts, finished in rows}


def _executing_task(home: Path, proc: subprocess.Popen[str]) -> str:
    """The task's id once its first module is done (the task is executing)."""
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for repo in (home / "data" / "repos").glob("t_*"):
            modules = _modules(home, repo.name) if (home / "data" / "agentfirm.db").exists() else {}
            if any(status == "done" for status, _, _ in modules.values()):
                return repo.name
        time.sleep(0.05)
    raise AssertionError("the task never started executing")


@pytest.mark.parametrize("via", ["in-process", "daemon"])
def test_a_full_disk_mid_run_is_named_and_resume_finishes_the_task_with_nothing_twice(
    cli: Cli, cli_env: dict[str, str], home: Path, via: str
) -> None:
    env = {**cli_env, "AGENTFIRM_OFFLINE_LATENCY_MS": "150", **(DAEMON if via == "daemon" else {})}
    run = spawn(env, "run", REQUEST, "--offline", "--yes", "--json")
    try:
        task_id = _executing_task(home, run)
        filler = _fill(home)
        _out, err = run.communicate(timeout=GUARD_S)
    finally:
        run.kill()
        run.wait()

    assert run.returncode == 1, err
    assert "Traceback" not in err
    assert "disk full" in err
    assert str(home / "data") in err
    assert f"agentfirm resume {task_id}" in err
    before = _modules(home, task_id)
    finished = {m: row for m, row in before.items() if row[0] == "done"}
    assert finished

    filler.unlink()
    resumed = cli("resume", task_id, "--offline", "--yes", "--json", env=env)

    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["status"] == "completed"
    after = _modules(home, task_id)
    assert {m: after[m] for m in finished} == finished  # not one finished module ran again
    assert all(status == "done" for status, _, _ in after.values())


def test_a_daemon_that_cannot_start_on_a_full_disk_says_so(cli: Cli, home: Path) -> None:
    assert cli("tasks", "list").code == 0  # the home exists, as after earlier use
    _fill(home)

    result = cli("daemon", "start", env=DAEMON)

    assert result.code == 1
    assert "Traceback" not in result.stderr
    assert "disk full" in result.stderr
    assert str(home) in result.stderr


@pytest.mark.parametrize(
    "language",
    # gettext honours LANGUAGE under a C.UTF-8 locale: git and strerror then speak German,
    # whatever locales are installed (git's own catalogues are enough).
    [None, {"LANG": "C.UTF-8", "LC_ALL": "", "LANGUAGE": "de"}],
    ids=["english", "german"],
)
async def test_a_full_disk_under_a_git_commit_is_disk_full_naming_the_repo(
    home: Path, language: dict[str, str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (language or {}).items():
        monkeypatch.setenv(name, value)
    repos = LocalGitRepos(home / "repos")
    repo = await repos.create("t_full")
    await repos.write_files(repo, {"deliverable.md": os.urandom(300_000)})  # incompressible
    _fill(home)

    with pytest.raises(DiskFull) as raised:
        await repos.commit(repo, "agentfirm: deliverable")

    assert raised.value.path == repo
    assert "git add" in str(raised.value)


async def _append_until_refused(outbox: Outbox) -> None:
    for n in range(10_000):  # SQLite may still fit a few rows in pages it has
        await outbox.append(
            OutgoingEvent(
                id=f"ev_{n}",
                task_id="t_full",
                stream="events",
                type="module.progress",
                module_id=None,
                ts=utcnow(),
                payload=json.dumps({"text": "x" * 2000, "n": n}),
            )
        )


async def test_a_full_disk_under_the_redis_outbox_is_disk_full_naming_it(home: Path) -> None:
    outbox = Outbox(home / "outbox.db")
    await outbox.open()
    try:
        _fill(home)
        with pytest.raises(DiskFull) as raised:
            await _append_until_refused(outbox)
    finally:
        await outbox.close()

    assert raised.value.path == str(home / "outbox.db")
