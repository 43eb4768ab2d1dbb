"""``tasks cancel`` through the daemon: it says at once what it waits for (it was silent for up
to the grace), and its request outlasts the daemon's wait. The daemon may wait the cancel grace
plus the build's answer (``answer_time``) and then cut the driver short; the request gave up at
the client's 30 s, below the 35 s of the default grace, and the cancel said the daemon was
unreachable while it was still cancelling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from agentfirm.daemon.driver_stop import ANSWER_S, answer_time

from agentfirm.api.calls import Call
from agentfirm.api.client import DaemonClient
from agentfirm.cli.commands import tasks


class Daemon(DaemonClient):
    """A daemon that shows a building task with ``in_flight`` calls and notes how long the
    cancel request would have been waited for."""

    def __init__(self, in_flight: int) -> None:
        super().__init__(Path("/nonexistent.sock"))
        self.in_flight = in_flight
        self.cancel_timeout: float | None = None

    def send(self, call: Call[Any]) -> Any:
        if call.path.endswith("/cancel"):
            self.cancel_timeout = self.timeout
            return {"task_id": "t_1", "status": "aborted"}
        return {"task_id": "t_1", "status": "executing", "calls_in_flight": self.in_flight}


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Daemon:
    monkeypatch.setenv("AGENTFIRM_HOME", str(tmp_path))
    monkeypatch.setenv("AGENTFIRM_CANCEL_GRACE_S", "30")
    fake = Daemon(in_flight=3)
    monkeypatch.setattr(tasks, "start_daemon", lambda settings: fake)
    return fake


def test_the_cancel_request_outlasts_the_daemons_wait(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks.tasks_cancel("t_1", reason="", as_json=True, no_daemon=False)

    assert daemon.cancel_timeout is not None
    assert daemon.cancel_timeout > answer_time(30) + ANSWER_S
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"task_id": "t_1", "status": "aborted"}
    assert captured.err == (
        "agentfirm: cancelling t_1: waiting for 3 calls in flight to answer (up to 35 s)… "
        "Ctrl-C stops waiting; the task still ends aborted\n"
    )


@pytest.mark.parametrize(
    ("status", "driven", "in_flight", "says"),
    [
        ("executing", True, 1, "waiting for 1 call in flight to answer (up to 35 s)"),
        ("assembling", True, 0, "asking its build to stop (up to 35 s)"),
        ("executing", False, 2, "waiting for 2 calls in flight to answer (up to 35 s)"),
        ("executing", False, 0, None),  # nothing builds it: cancelled at once
        ("awaiting_plan_approval", True, 0, None),  # waits for a person: cancelled at once
    ],
)
def test_it_says_what_it_waits_for_only_when_it_waits(
    status: str, driven: bool, in_flight: int, says: str | None
) -> None:
    line = tasks.cancel_wait_line("t_1", status, driven, in_flight, 35.0)
    if says is None:
        assert line is None
    else:
        assert line == f"cancelling t_1: {says}… Ctrl-C stops waiting; the task still ends aborted"


def test_ctrl_c_while_it_waits_says_the_task_still_ends_aborted(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It exited 130 without a word: the user could not tell whether the cancel held."""

    def interrupted(call: Call[Any]) -> Any:
        raise KeyboardInterrupt

    shown = daemon.send
    monkeypatch.setattr(
        daemon,
        "send",
        lambda call: interrupted(call) if call.path.endswith("/cancel") else shown(call),
    )
    with pytest.raises(KeyboardInterrupt):
        tasks.tasks_cancel("t_1", reason="", as_json=False, no_daemon=False)

    assert capsys.readouterr().err.splitlines()[-1] == (
        "agentfirm: stopped waiting; task t_1 still ends aborted: see agentfirm tasks show t_1"
    )
