"""Consent for a tool that changes things, through the real CLI (issue 18, "Done when" 4): under
``--yes`` the module's call is denied and the transcript says so; at a terminal the prompt asks,
and "y" lets the module's paused call run — through the daemon and in-process alike.

The world is ``tests/fakes/notes_task.py``: one module whose model (the OpenAI fake) asks for
``mcp:notes/write_note``, which writes to a file."""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import DAEMON, Cli, stop_daemon
from tests.fakes.http_fake import running
from tests.fakes.notes_task import NOTE, ORIGIN, REQUEST, NotesModel, world_env
from tests.fakes.openai_fake import OpenAIFake

pytestmark = pytest.mark.e2e

_ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]|\r")


@pytest.fixture
def model() -> Iterator[NotesModel]:
    with running(OpenAIFake()) as fake:
        notes = NotesModel(fake)
        fake.respond_with(notes)
        yield notes


@pytest.fixture
def env(home: Path, model: NotesModel) -> dict[str, str]:
    return world_env(home, home / "notebook.txt", model.fake.url)


DENIED = (
    f"{ORIGIN} (used by notes) may change things and will be denied: --yes without "
    f"--allow-tool {ORIGIN}; those modules go on without it"
)
ASKED = f"{ORIGIN} (used by notes) may change things: you are asked before each call"


@pytest.mark.parametrize("daemon", [True, False], ids=["daemon", "no-daemon"])
def test_yes_denies_the_tool_and_the_transcript_says_so(
    cli: Cli, env: dict[str, str], home: Path, model: NotesModel, daemon: bool
) -> None:
    """The plan said nothing of it: under ``--yes`` (stdout holding the JSON) the tool the
    plan may call is said to be denied, on stderr, before the run — the same words through the
    daemon and in-process — and it is."""
    run = cli("run", REQUEST, "--yes", "--json", env={**env, **DAEMON} if daemon else env)

    assert run.code == 0, run.stderr[-3000:]
    assert f"  ! {DENIED}" in run.stderr.splitlines()
    assert model.asked == 1
    assert not (home / "notebook.txt").exists()
    task_id = run.json()["task_id"]
    shown = cli("tasks", "transcript", task_id, "--module", "notes", env=env)
    assert "notes__write_note" in shown.stdout
    assert "(denied)" in shown.stdout
    assert "Denied: notes__write_note can change things" in shown.stdout


class Terminal:
    """The CLI on a pseudo-terminal: what it printed, and answers typed at its prompts."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the CLI on the pseudo-terminal
            os.chdir(cwd)
            os.execve(sys.executable, [sys.executable, "-m", "agentfirm", *args], env)
        self.seen = ""

    def read(self, within: float = 0.2) -> bool:
        """Read what arrives within ``within`` seconds; False once the CLI closed it."""
        ready, _, _ = select.select([self.fd], [], [], within)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:
            return False
        self.seen += _ANSI.sub("", chunk.decode(errors="replace"))
        return bool(chunk)

    def answer(self, prompts: dict[str, str], deadline_s: float = 90) -> int:
        """Type ``prompts[p]`` each time the output ends with a prompt containing ``p``, until
        the CLI exits; its exit code."""
        deadline = time.monotonic() + deadline_s
        answered = 0
        while time.monotonic() < deadline and self.read():
            tail = self.seen[answered:].rstrip(" ")
            if not tail.endswith((":", ">")):
                continue
            line = tail.rsplit("\n", 1)[-1]
            for prompt, typed in prompts.items():
                if prompt in line:
                    os.write(self.fd, typed.encode() + b"\r")
                    answered = len(self.seen)
                    break
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)

    def close(self) -> None:
        try:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


PROMPTS = {"Approve?": "y", "allow it?": "y", "[a]pprove": "a", ">": ""}
"""The plan approved, the tool allowed, the draft approved, questions left to defaults."""


@pytest.mark.parametrize("daemon", [True, False], ids=["daemon", "no-daemon"])
def test_the_terminal_prompt_lets_the_paused_tool_call_run(
    cli_env: dict[str, str],
    env: dict[str, str],
    home: Path,
    tmp_path: Path,
    model: NotesModel,
    daemon: bool,
) -> None:
    full = {**cli_env, **env, "TERM": "dumb", "AGENTFIRM_NO_DAEMON": "" if daemon else "1"}
    terminal = Terminal(full, tmp_path, "run", REQUEST)
    try:
        code = terminal.answer(PROMPTS)
    finally:
        terminal.close()
        stop_daemon(home)

    assert code == 0, terminal.seen[-3000:]
    assert ASKED in terminal.seen  # said with the plan, before it is approved
    assert terminal.seen.index(ASKED) < terminal.seen.index("Approve?")
    assert f"wants to run {ORIGIN}" in terminal.seen
    assert NOTE in terminal.seen  # the arguments, shown before anyone decides
    assert (home / "notebook.txt").read_text() == NOTE + "\n"
    assert model.asked == 1


def test_allow_tool_with_a_wildcard_lets_every_tool_of_the_server_run(
    cli: Cli, env: dict[str, str], home: Path, model: NotesModel
) -> None:
    """``--allow-tool mcp:notes/*`` under ``--yes``, through the daemon: the wildcard was
    refused as "a whole server, not a tool". It is accepted, kept with the task (any host that
    drives it answers the same) and lets the module's call run."""
    import sqlite3

    run = cli(
        "run", REQUEST, "--yes", "--allow-tool", "mcp:notes/*", "--json", env={**env, **DAEMON}
    )

    assert run.code == 0, run.stderr[-3000:]
    assert (home / "notebook.txt").read_text() == NOTE + "\n"
    assert "will be denied" not in run.stderr
    task_id = run.json()["task_id"]
    with sqlite3.connect(home / "data" / "agentfirm.db") as db:
        [(policy,)] = db.execute("SELECT policy FROM tasks WHERE id = ?", (task_id,)).fetchall()
    assert '"allowed_tools":["mcp:notes/*"]' in policy.replace(" ", "")
