"""End-to-end harness: the real CLI in a subprocess, on a throwaway AGENTFIRM_HOME, with a clean
environment (no keys, no AGENTFIRM_* from the developer's shell).

Commands run in-process (``AGENTFIRM_NO_DAEMON=1``, what ``--no-daemon`` does): a whole task then
costs one process, and the tests of the daemon path (``test_daemon.py``) opt in with
``DAEMON`` in the env they pass. Whatever daemon a test starts under its home is stopped when the
test ends.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_SCRUB_PREFIXES = ("AGENTFIRM_", "ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_", "GITHUB_", "SLACK_")
DAEMON = {"AGENTFIRM_NO_DAEMON": ""}
"""Env for a command that goes through the daemon (started on demand), as it does for users."""


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


Cli = Callable[..., Result]


@pytest.fixture
def home() -> Iterator[Path]:
    """Short, so a daemon's socket path under it fits the OS limit (~100 bytes) wherever
    pytest puts tmp_path."""
    path = Path(tempfile.mkdtemp(prefix="af", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """The CLI started in a subprocess with ``env``, for a test to act while it runs (its
    output collected with ``communicate``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "agentfirm", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def clean_env(home: Path) -> dict[str, str]:
    """This process's environment less keys and ``AGENTFIRM_*``, with ``home`` as
    ``AGENTFIRM_HOME``, no colour and a wide terminal (through the daemon unless the caller sets
    ``AGENTFIRM_NO_DAEMON``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env.update(AGENTFIRM_HOME=str(home), NO_COLOR="1", COLUMNS="160")
    return env


def run_cli(env: Mapping[str, str], cwd: Path, *args: str, stdin: str = "") -> Result:
    """The CLI run to its end in a subprocess, with ``env``, in ``cwd``, fed ``stdin``."""
    proc = subprocess.run(
        [sys.executable, "-m", "agentfirm", *args],
        env=dict(env),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli_env(home: Path) -> dict[str, str]:
    return {**clean_env(home), "AGENTFIRM_NO_DAEMON": "1"}


def stop_daemon(home: Path) -> None:
    """Stop the daemon running under ``home``, if any (SIGTERM, then wait for it)."""
    if not (home / "run" / "agentfirm.pid").exists():
        return
    from agentfirm.daemon.process import stop

    from agentfirm.settings import load_settings

    stop(load_settings({"AGENTFIRM_HOME": str(home)}, cwd=home))


@pytest.fixture
def cli(cli_env: dict[str, str], tmp_path: Path, home: Path) -> Iterator[Cli]:
    def run(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> Result:
        return run_cli({**cli_env, **(env or {})}, tmp_path, *args, stdin=stdin)

    yield run
    stop_daemon(home)
