"""The CLI stays fast to start: `--help` loads typer and the command modules, nothing heavy (the
timings are in bench/cli_startup.sh; this guards the cause)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

Done = subprocess.CompletedProcess[str]

HEAVY = (
    "agentfirm.app",
    "agentfirm.daemon",
    "agentfirm.master",
    "agentfirm.router",
    "anthropic",
    "fastapi",
    "google.genai",
    "httpx",
    "openai",
    "pydantic_settings",
    "rich.table",
    "slack_bolt",
    "textual",
    "uvicorn",
)

PROBE = """
import sys
from pathlib import Path
from agentfirm.cli.app import main
sys.argv = ["agentfirm", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\n".join(sorted(sys.modules)))
"""


@pytest.mark.parametrize(
    "argv", [["--help"], ["run", "--help"], ["tasks", "list", "--help"]], ids=" ".join
)
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    done, loaded = probe(argv)

    assert "typer" in loaded, done.stderr[-2000:]
    assert among(loaded, HEAVY) == []
    assert "Usage:" in done.stdout


def probe(argv: list[str], env: dict[str, str] | None = None) -> tuple[Done, set[str]]:
    """The CLI run with ``argv`` in a fresh interpreter, and the modules it loaded."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    return done, set(done.stderr.splitlines())


def among(loaded: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in packages))


READ_HEAVY = (
    "agentfirm.app",
    "agentfirm.personas",
    "agentfirm.router",
    "keyring",
    "pygments",  # structlog imported rich for tracebacks it never drew here
    "rich",
)


@pytest.mark.parametrize("argv", [["tasks", "list", "--json", "--no-daemon"]], ids=" ".join)
def test_reads_in_process_open_the_store_alone(argv: list[str], tmp_path: Path) -> None:
    # A read needs no secret (keyring), persona or router, and --json no rich: loading them
    # made `tasks list` take several times `import typer`.
    env = {**os.environ, "AGENTFIRM_HOME": str(tmp_path), "NO_COLOR": "1"}
    done, loaded = probe(argv, env)

    assert "agentfirm.store.sqlite" in loaded, done.stderr[-2000:]
    assert among(loaded, READ_HEAVY) == []
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "argv", [["daemon", "status"], ["daemon", "status", "--json"]], ids=" ".join
)
def test_a_command_loads_its_own_module_and_not_pydantic(argv: list[str], tmp_path: Path) -> None:
    # Every command module was imported for any command, and typer converted every value
    # (even a flag left unset) through pydantic: both cost more than importing typer.
    env = {**os.environ, "AGENTFIRM_HOME": str(tmp_path), "NO_COLOR": "1"}
    done, loaded = probe(argv, env)

    assert "agentfirm.cli.commands.daemon" in loaded, done.stderr[-2000:]
    assert among(loaded, ("agentfirm.cli.commands",)) == [
        "agentfirm.cli.commands",
        "agentfirm.cli.commands.daemon",
    ]
    assert among(loaded, ("pydantic", "pydantic_core", "rich")) == []  # a line needs no rich
    assert "not running" in done.stdout or '"running": false' in done.stdout


def test_reads_of_a_store_in_place_load_neither_pydantic_nor_asyncio(tmp_path: Path) -> None:
    # Once the store file is there and up to date, `tasks list` and `costs ID` read it plainly
    # (store.sqlite.reader, settings.plain): pydantic, pydantic-settings, structlog and asyncio
    # were most of their start-up, several times `import typer`.
    env = {**os.environ, "AGENTFIRM_HOME": str(tmp_path), "NO_COLOR": "1"}
    probe(["tasks", "list", "--no-daemon"], env)  # the store creates its file

    for argv in (["tasks", "list", "--json", "--no-daemon"], ["costs", "t_x", "--no-daemon"]):
        done, loaded = probe(argv, env)

        assert "agentfirm.store.sqlite.reader" in loaded, done.stderr[-2000:]
        assert among(loaded, ("pydantic", "pydantic_core", "asyncio", "structlog")) == []
    assert done.stdout == ""
    assert "task t_x not found" in done.stderr
