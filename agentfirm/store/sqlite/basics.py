"""What every SQLite file here shares that needs no asyncio: the busy timeout, times as
fixed-width ISO 8601 text in UTC, and how a damaged file is named. Apart from the connection
plumbing (``conn``), so a plain read (``reader``) loads neither asyncio nor aiosqlite."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from agentfirm.errors import DamagedFile

BUSY_TIMEOUT_MS = 15_000


def store_way_out(path: Path) -> str:
    """How to go on when the store file ``path`` is damaged."""
    return move_aside(path, "and agentfirm starts an empty store, or restore it from a backup")


def to_db_time(at: datetime) -> str:
    """ISO 8601 UTC with fixed width, so text order is time order. Naive times are taken as UTC."""
    if at.tzinfo is UTC:
        # The usual time (``utcnow``), twice in every router call: ``astimezone`` would build
        # the same datetime again.
        return at.isoformat(timespec="microseconds")
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def from_db_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def opt_to_db_time(at: datetime | None) -> str | None:
    return None if at is None else to_db_time(at)


def move_aside(path: Path, then: str) -> str:
    """The way out of a damaged ``path``, for ``open_sqlite``'s ``way_out``: move it aside, and
    what happens ``then``."""
    return f"move it aside (mv {path} {path}.damaged, and its -wal/-shm files) {then}"


def damaged_file(err: BaseException, path: Path, way_out: str) -> DamagedFile | None:
    """``err`` as a ``DamagedFile`` naming ``path`` when SQLite says the file is damaged, else
    None. Only "file is not a database" and "… malformed" say so; a locked file or a full disk
    are the machine's state, not the file's."""
    if isinstance(err, DamagedFile):
        return err
    code = getattr(err, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return DamagedFile(f"{path} is damaged: {err}", hint=way_out)
    return None
