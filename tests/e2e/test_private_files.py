"""Files are the user's alone (issue 21 item 8): after tasks run under umask 022 — in-process
and through the daemon — nothing under AGENTFIRM_HOME is readable by group or others."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import DAEMON, Cli

pytestmark = pytest.mark.e2e

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"


@pytest.fixture
def shell_umask() -> Iterator[None]:
    """The common shell default: files 0644, folders 0755 unless the program says otherwise.
    The CLI's processes inherit it from this one."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _shared(home: Path) -> list[str]:
    found = []
    for path in home.rglob("*"):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        if mode & 0o077:
            found.append(f"{path.relative_to(home)} {stat.filemode(mode)}")
    return found


@pytest.mark.usefixtures("shell_umask")
def test_nothing_under_home_is_readable_by_others_after_runs_under_umask_022(
    cli: Cli, home: Path
) -> None:
    local = cli("run", REQUEST, "--offline", "--no-daemon", "--yes", "--json")
    assert local.code == 0, local.stderr
    daemon = cli("run", REQUEST, "--offline", "--yes", "--json", env=DAEMON)
    assert daemon.code == 0, daemon.stderr

    names = {p.name for p in home.rglob("*")}
    assert {"agentfirm.db", "bus.db", "agentfirm.log", "daemon.log", "repos", "HEAD"} <= names
    assert any(name.endswith(".ipynb") for name in names)
    assert _shared(home) == []
