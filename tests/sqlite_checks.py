"""What the tests of SQLite integrity checks share: ``quick_checks`` (a fixture, registered in
``tests/conftest.py``) counts the full checks run, and ``tear`` damages a file as a torn write
would."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def quick_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ``PRAGMA quick_check`` run from now on, in this process (it reads every page)."""
    import aiosqlite

    checks: list[str] = []
    fetch = aiosqlite.Connection.execute_fetchall

    async def counting(self: aiosqlite.Connection, sql: str, *args: Any) -> Any:
        if "quick_check" in sql:
            checks.append(sql)
        return await fetch(self, sql, *args)

    monkeypatch.setattr(aiosqlite.Connection, "execute_fetchall", counting)
    return checks


def tear(path: Path, table: str) -> None:
    """A torn write under an open store: ``table``'s root page header overwritten."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the page in the file, not in the WAL
        page = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    finally:
        db.close()
    with path.open("r+b") as f:
        f.seek((root[0] - 1) * page)
        f.write(b"\x07" * 16)
