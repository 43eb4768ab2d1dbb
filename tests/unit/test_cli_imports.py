"""The CLI stays fast to start: `--help` loads typer and the command modules, nothing heavy (the
timings are in bench/cli_startup.sh; this guards the cause)."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
from agentfirm.cli import main
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
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    loaded = set(done.stderr.splitlines())
    assert "typer" in loaded, done.stderr[-2000:]
    assert sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)) == []
    assert "Usage:" in done.stdout
