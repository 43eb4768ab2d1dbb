"""A damaged SQLite store (issue 21 item 9) is found before anything writes over it: one line
names the file and the way out, the command exits 2, no traceback — in-process, when the
daemon starts, and when it is damaged under a running daemon (the same line). A command that
only reads skips the full check and names the damage it meets."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.e2e.conftest import DAEMON, Cli

pytestmark = pytest.mark.e2e

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"


def _damage(db_path: Path, table: str = "events") -> bytes:
    """Overwrite the header of ``table``'s root page, as a torn write or a bad sector would;
    return the file's bytes after."""
    db = sqlite3.connect(db_path)
    try:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[
            0
        ]
    finally:
        db.close()
    with db_path.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\x07" * 16)
    return db_path.read_bytes()


@pytest.fixture
def damaged(cli: Cli, home: Path) -> tuple[Path, bytes]:
    first = cli("plan", REQUEST, "--offline", "--json")  # a task, its events
    assert first.code == 0, first.stderr
    path = home / "data" / "agentfirm.db"
    return path, _damage(path)


def _says_which_file_and_the_way_out(stderr: str, path: Path) -> None:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert str(path) in lines[0]
    assert "damaged" in lines[0]
    assert "aside" in lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ("run", REQUEST, "--offline", "--yes"),
        ("db", "migrate"),
        ("db", "status"),
    ],
    ids=["write", "migrate", "status"],
)
def test_a_damaged_store_is_named_with_the_way_out_and_left_as_it_was(
    cli: Cli, damaged: tuple[Path, bytes], command: tuple[str, ...]
) -> None:
    path, before = damaged

    result = cli(*command)

    assert result.code == 2, result.stderr
    _says_which_file_and_the_way_out(result.stderr, path)
    assert path.read_bytes() == before


def test_a_read_only_command_names_the_damage_it_meets_and_writes_nothing(
    cli: Cli, damaged: tuple[Path, bytes]
) -> None:
    """A read opens without the full check (it reads every page: about a second for a million
    ledger rows), so `tasks list` stays fast: it writes nothing, and names a damaged page it
    meets."""
    path, before = damaged

    untouched = cli("tasks", "list")  # the events table is damaged: not read here
    assert untouched.code == 0, untouched.stderr
    assert path.read_bytes() == before

    before = _damage(path, "tasks")
    met = cli("tasks", "list")
    assert met.code == 2, met.stderr
    _says_which_file_and_the_way_out(met.stderr, path)
    assert path.read_bytes() == before


def test_a_daemon_on_a_damaged_store_says_which_file_instead_of_starting(
    cli: Cli, damaged: tuple[Path, bytes]
) -> None:
    path, before = damaged

    result = cli("daemon", "start", env=DAEMON)

    assert result.code != 0
    assert "Traceback" not in result.stderr
    assert str(path) in result.stderr
    assert "aside" in result.stderr
    assert path.read_bytes() == before


def test_a_store_damaged_under_a_running_daemon_is_found_before_it_writes(
    cli: Cli, home: Path
) -> None:
    first = cli("plan", REQUEST, "--offline", "--json")  # a task, its events
    assert first.code == 0, first.stderr
    assert cli("daemon", "start", env=DAEMON).code == 0  # it checks the store as it opens it
    path = home / "data" / "agentfirm.db"
    before = _damage(path)

    through_daemon = cli("run", REQUEST, "--offline", "--yes", env=DAEMON)
    listed = cli("tasks", "list", env=DAEMON)
    assert cli("daemon", "stop", env=DAEMON).code == 0
    in_process = cli("run", REQUEST, "--offline", "--yes")

    assert through_daemon.code == 2, through_daemon.stderr
    _says_which_file_and_the_way_out(through_daemon.stderr, path)
    assert through_daemon.stderr == in_process.stderr  # the same words either way
    assert (listed.code, listed.stderr) == (2, in_process.stderr)  # and nothing more is read
    assert path.read_bytes() == before
