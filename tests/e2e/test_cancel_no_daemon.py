"""Stopping a task driven in-process (``--no-daemon``) while its calls are in flight, against a
loopback provider that bills on receipt (issue 17).

Ctrl-C on the terminal that runs it says at once what happens (the calls already sent get
``cancel_grace_s`` to answer) and what a second Ctrl-C costs; the second stops at once. A
``tasks cancel`` from another shell asks the build to stop and waits for it as the daemon's
cancel does: the calls in flight answer and are booked as answered, so the ledger is the bill.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentfirm.errors import EXIT_REJECTED
from tests.e2e.conftest import clean_env, spawn, stop_daemon
from tests.e2e.test_ceiling import MODEL, RATES, _home
from tests.e2e.test_daemon_chaos import _cli, _rows
from tests.e2e.test_provider_faults_task import _succeed
from tests.fakes.compat_servers import last_user_text
from tests.fakes.http_fake import Recorded, Reply, running
from tests.fakes.notes_task import NOTE, ORIGIN, TOOL, NotesModel, world_env
from tests.fakes.notes_task import REQUEST as NOTES_REQUEST
from tests.fakes.openai_fake import OpenAIFake

pytestmark = pytest.mark.e2e

GUARD_S = 60
"""How long the test waits for anything before it gives up (a guard, not a measurement)."""
REQUEST = "Write up the sixteen parts of the market"
PATENT_REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"


class SlowModules:
    """The responder: intake and plan answer at once, each module's request after ``delay_s``;
    counts the module requests received (billed on receipt)."""

    def __init__(self, fake: OpenAIFake) -> None:
        self._fake = fake
        self._lock = threading.Lock()
        self.delay_s = 0.0
        self.modules = 0

    def __call__(self, request: Recorded) -> Reply:
        body = request.body if isinstance(request.body, dict) else {}
        # a module's own brief (the plan's request holds all sixteen)
        module = last_user_text(body).count("Research and write up part") == 1
        with self._lock:
            self.modules += module
        reply = _succeed(self._fake, request)
        return Reply(reply.status, reply.body, reply.headers, delay_s=self.delay_s * module)


@pytest.fixture
def provider() -> Iterator[tuple[OpenAIFake, SlowModules]]:
    with running(OpenAIFake(rates={MODEL: RATES})) as fake:
        slow = SlowModules(fake)
        fake.respond_with(slow)
        yield fake, slow


def _env(tmp_path: Path, fake: OpenAIFake) -> tuple[Path, dict[str, str]]:
    """A home with the sixteen-part persona, and an environment serving it from ``fake``
    in-process, two modules at a time, with a grace no call here needs in full."""
    home, env = _home(tmp_path, fake)
    return home, {
        **clean_env(home),
        **env,
        "AGENTFIRM_CANCEL_GRACE_S": "40",
        "AGENTFIRM_MAX_CONCURRENCY": "2",
        "AGENTFIRM_RESEARCH_ESCALATIONS": "0",
        "AGENTFIRM_QUALITY_REVISION": "false",
    }


def _modules_in_flight(slow: SlowModules, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + GUARD_S
    while slow.modules < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no module request reached the provider"
        time.sleep(0.05)


def test_ctrl_c_says_the_calls_in_flight_get_their_grace_and_a_second_stops_at_once(
    tmp_path: Path, provider: tuple[OpenAIFake, SlowModules]
) -> None:
    fake, slow = provider
    slow.delay_s = 8.0  # answered well within the grace, unless the second Ctrl-C comes first
    home, env = _env(tmp_path, fake)
    proc = spawn(env, "run", REQUEST, "--yes", "--json")
    try:
        _modules_in_flight(slow, proc)
        proc.send_signal(signal.SIGINT)
        assert proc.stderr is not None
        said = ""
        while not said.startswith("agentfirm: stopping") and proc.poll() is None:
            said = proc.stderr.readline()  # at once: the run has not ended
        # Two modules at the provider (two at a time): counted, as the calls it waits for.
        assert said.startswith("agentfirm: stopping: 2 calls already sent get up to 40s"), said
        assert "Ctrl-C again stops now" in said
        assert "(marked ≤" in said
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    ((task_id,),) = _rows(home / "data" / "agentfirm.db", "SELECT id FROM tasks")
    assert f"stopped; task {task_id} waits where it was: agentfirm resume {task_id}" in err
    # It did not wait for the answers: the calls it cut short are booked at their reservations
    # ("≤") now, their rows saying how they ended (not that the grace ran out), or on resume.
    db = home / "data" / "agentfirm.db"
    assert not _rows(db, "SELECT 1 FROM ledger WHERE outcome = 'ok' AND module_id LIKE 'part%'")
    cut = [str(e) for (e,) in _rows(db, "SELECT error FROM ledger WHERE outcome = 'cancelled'")]
    assert cut or _rows(db, "SELECT 1 FROM reservations"), "no call was in flight"
    assert set(cut) <= {"CancelledError: cut off unanswered by a second cancel"}, cut


@pytest.mark.parametrize("daemon", [False, True], ids=["no-daemon", "daemon"])
def test_a_cancel_from_another_shell_waits_for_the_build_and_the_ledger_is_the_bill(
    tmp_path: Path, provider: tuple[OpenAIFake, SlowModules], daemon: bool
) -> None:
    """``tasks cancel`` (``--no-daemon``, or through the daemon) while a ``run --no-daemon``
    builds in another process: it used to be refused (another process drives the task); a task
    nothing drove was moved to ``aborted`` at once, booking calls still in flight elsewhere at
    their reservations. It says at once what it waits for — it was silent for up to the grace
    — in the same words both ways, on stderr (stdout holds the JSON)."""
    fake, slow = provider
    slow.delay_s = 1.0
    home, env = _env(tmp_path, fake)
    shell = {**env, "AGENTFIRM_NO_DAEMON": ""} if daemon else env
    if daemon:  # started first: the build would be over before a daemon started on demand
        assert _cli(shell, "daemon", "start").code == 0
    proc = spawn(env, "run", REQUEST, "--yes", "--json")
    try:
        _modules_in_flight(slow, proc)
        ((task_id,),) = _rows(home / "data" / "agentfirm.db", "SELECT id FROM tasks")
        cancelled = _cli(shell, "tasks", "cancel", str(task_id), "--json")
        _out, err = proc.communicate(timeout=GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        stop_daemon(home)
    assert cancelled.code == 0, cancelled.stderr
    assert cancelled.json() == {"task_id": task_id, "status": "aborted"}
    # Two modules at a time (one, if the cancel looks between a module's answer and the next
    # one's request); the grace 40 s plus 5 s for the build to answer.
    said = cancelled.stderr.splitlines()[0]
    assert re.fullmatch(
        f"agentfirm: cancelling {task_id}: waiting for (2 calls|1 call) in flight to answer "
        r"\(up to 45 s\)… Ctrl-C stops waiting; the task still ends aborted",
        said,
    ), said
    assert proc.returncode == EXIT_REJECTED, err[-4000:]
    ((ledger, estimated, calls),) = _rows(
        home / "data" / "agentfirm.db",
        "SELECT SUM(cost_nano), SUM(outcome = 'cancelled' AND cost_nano > 0), COUNT(*)"
        " FROM ledger WHERE task_id = ?",
        task_id,
    )
    # The calls in flight answered within their grace and are booked as answered: the ledger
    # is the bill, with no estimate in it, and the build stopped before its end.
    assert (ledger, estimated) == (fake.bill.nano, 0)
    assert slow.modules < 16
    assert calls == len(fake.bill.items)


def _read_until(fd: int, wanted: bytes, seen: bytearray) -> None:
    """Read the terminal ``fd`` into ``seen`` until ``wanted`` shows (or it closes)."""
    deadline = time.monotonic() + GUARD_S
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other end closed
                return
            if not chunk:
                return
            seen += chunk


def test_ctrl_c_at_a_prompt_stops_an_in_process_run_at_once(
    cli_env: dict[str, str], home: Path
) -> None:
    """Prompts were read in ``asyncio.to_thread``'s threads, which the process waits for as it
    ends: Ctrl-C at a question left the run waiting for an Enter nobody would type."""
    terminal, its_end = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentfirm", "run", PATENT_REQUEST, "--offline"],
        env=cli_env,
        cwd=home,
        stdin=its_end,
        stdout=its_end,
        stderr=its_end,
        start_new_session=True,
    )
    os.close(its_end)
    seen = bytearray()
    try:
        _read_until(terminal, b"(blank: assume)", seen)
        _read_until(terminal, b"> ", seen)
        assert b"> " in seen, seen.decode(errors="replace")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=GUARD_S)
        _read_until(terminal, b"picks it up", seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(terminal)
    assert code == 130
    assert b"stopped; task " in seen, seen.decode(errors="replace")


def test_ctrl_c_while_a_model_classifies_the_request_names_the_task_to_resume(
    tmp_path: Path,
) -> None:
    """The task exists (its classifying call is charged to it) before intake returns: a Ctrl-C
    then said nothing of it."""

    def slowly(request: Recorded) -> Reply:
        reply = _succeed(fake, request)
        return Reply(reply.status, reply.body, reply.headers, delay_s=8.0)

    with running(OpenAIFake(rates={MODEL: RATES})) as fake:
        fake.respond_with(slowly)
        home, env = _env(tmp_path, fake)
        env["AGENTFIRM_CANCEL_GRACE_S"] = "0"  # cut at once: this is about what is said
        proc = spawn(env, "run", "Tell me how tall the tallest tree is", "--yes", "--json")
        try:
            deadline = time.monotonic() + GUARD_S
            while not fake.bill.items:  # the classifying request has arrived
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no request reached the provider"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=GUARD_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130, err
    ((task_id,),) = _rows(home / "data" / "agentfirm.db", "SELECT id FROM tasks")
    assert f"stopped; task {task_id} waits where it was: agentfirm resume {task_id}" in err


def test_two_ctrl_cs_cut_off_a_slow_tool_call_and_resume_does_not_run_it_again(
    cli_env: dict[str, str], home: Path
) -> None:
    """A module inside a tool call that does not answer (an MCP server blocked after it took
    effect): the second Ctrl-C did nothing visible — the unwinding waited for the tool, and only
    a third, asyncio's hard stop, ended the run. The second cuts the tool call off; the journal
    says so, and a resume does not run it again (the model is told its outcome is unknown)."""
    notebook = home / "notebook.txt"
    with running(OpenAIFake()) as fake:
        model = NotesModel(fake)
        fake.respond_with(model)
        env = {
            **cli_env,
            **world_env(home, notebook, fake.url, {"NOTE_SLEEP_S": "600"}),
            "AGENTFIRM_CANCEL_GRACE_S": "40",  # the tool is cut off by the second Ctrl-C
        }
        proc = spawn(env, "run", NOTES_REQUEST, "--yes", "--allow-tool", ORIGIN, "--json")
        try:
            deadline = time.monotonic() + GUARD_S
            while not notebook.exists():  # the call took effect and blocks
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the tool was not called"
                time.sleep(0.05)
            assert proc.stderr is not None
            proc.send_signal(signal.SIGINT)
            said = ""
            while not said.startswith("agentfirm: stopping") and proc.poll() is None:
                said = proc.stderr.readline()
            assert "1 tool call running gets up to 40s to answer" in said, said
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=GUARD_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130, err
        ((task_id,),) = _rows(home / "data" / "agentfirm.db", "SELECT id FROM tasks")
        assert f"stopped; task {task_id} waits where it was" in err
        # What is not cut off is named: the server's stop (bounded: stdin, SIGTERM, SIGKILL).
        assert "waiting for mcp:notes to stop; Ctrl-C again stops at once" in err
        shown = _cli(env, "tasks", "transcript", str(task_id), "--module", "notes", "--json")
        assert shown.code == 0, shown.stderr
        (call,) = [e for e in shown.json()["entries"] if e["kind"] == "tool"]
        assert call["tool"] == TOOL, call
        assert call["interrupted"], call
        assert call["cut_off"], call
        assert "was cut off" in call["content"], call

        resumed = _cli(env, "resume", str(task_id), "--json")

    assert resumed.code == 0, resumed.stderr[-3000:]
    assert notebook.read_text() == NOTE + "\n"  # run once, not again on resume
    assert model.asked == 1
