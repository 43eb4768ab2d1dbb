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
import subprocess
import sys
from collections.abc import Callable, Iterator
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
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env["AGENTFIRM_HOME"] = str(home)
    env["AGENTFIRM_NO_DAEMON"] = "1"
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "160"
    return env


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
        proc = subprocess.run(
            [sys.executable, "-m", "agentfirm", *args],
            env={**cli_env, **(env or {})},
            cwd=tmp_path,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    yield run
    stop_daemon(home)
