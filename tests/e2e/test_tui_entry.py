"""``agentfirm`` with no command: the TUI on a terminal, the help text anywhere else."""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from pathlib import Path

from tests.e2e.conftest import Cli, stop_daemon

_ANSI = re.compile(rb"\x1b\[[0-9;?]*[a-zA-Z]")


def test_no_command_without_a_terminal_prints_the_help(cli: Cli) -> None:
    result = cli()

    assert result.code == 0
    assert result.stdout.startswith("Usage:")
    assert "run" in result.stdout


def _read_until(fd: int, needle: bytes, deadline: float) -> bytes:
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        seen += chunk
        if needle in _ANSI.sub(b"", seen):
            break
    return seen


def test_no_command_on_a_terminal_opens_the_tui_on_a_started_daemon(
    cli_env: dict[str, str], home: Path
) -> None:
    env = {**cli_env, "AGENTFIRM_NO_DAEMON": "", "TERM": "xterm-256color"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the TUI on the pseudo-terminal
        os.execve(sys.executable, [sys.executable, "-m", "agentfirm"], env)
    try:
        screen = _read_until(fd, b"New task", time.monotonic() + 30)
        assert b"New task" in _ANSI.sub(b"", screen)
        # Quit; the TUI leaves the daemon it started running, as `run` does.
        os.write(fd, b"\x11")
        _read_until(fd, b"\x00never", time.monotonic() + 10)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert (home / "run" / "agentfirm.sock").exists()
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
        stop_daemon(home)
