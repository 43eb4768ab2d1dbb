"""SQLite plumbing shared by the store, the event-log bus and anything else keeping a SQLite file:
connection setup (WAL, busy timeout, foreign keys), ``BEGIN IMMEDIATE`` transactions, time columns,
and the migration target.

Several processes share these files (the daemon and a notebook runner). WAL lets readers run beside
a writer; ``busy_timeout`` makes a process wait for the write lock instead of failing; taking the
write lock at ``BEGIN`` (IMMEDIATE) makes concurrent read-then-write transactions serialise instead
of failing at their first write. An ``aiosqlite`` connection holds one transaction at a time, so the
coroutines sharing one are serialised by an ``asyncio.Lock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from agentfirm.store.migrate import Migration

BUSY_TIMEOUT_MS = 15_000


async def open_sqlite(path: Path) -> aiosqlite.Connection:
    """Open (creating parent dirs) ``path`` in WAL mode with a busy timeout and foreign keys on.
    The connection is in autocommit mode: callers open transactions themselves."""
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        db.row_factory = sqlite3.Row
        # busy_timeout first, so switching to WAL also waits for another process's lock.
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await db.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL never corrupts and loses nothing when a process dies; only an OS
        # crash may roll back the last commits. It halves the router's per-call store time.
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        await db.close()
        raise
    return db


@asynccontextmanager
async def immediate_transaction(
    db: aiosqlite.Connection, lock: asyncio.Lock
) -> AsyncIterator[aiosqlite.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception (cancellation included)."""
    async with lock:
        try:
            await execute(db, "BEGIN IMMEDIATE")
            yield db
        except BaseException:
            # Always queue the ROLLBACK: a cancelled BEGIN may still run after we gave up on it,
            # and aiosqlite runs statements in order. "No transaction is active" is fine here.
            with contextlib.suppress(sqlite3.OperationalError):
                await execute(db, "ROLLBACK")
            raise
        await execute(db, "COMMIT")


async def execute(db: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> int:
    """Run one statement; return the number of rows it changed."""
    async with db.execute(sql, tuple(params)) as cursor:
        return cursor.rowcount


def to_db_time(at: datetime) -> str:
    """ISO 8601 UTC with fixed width, so text order is time order. Naive times are taken as UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def from_db_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def split_statements(script: str) -> list[str]:
    """Split a SQL script into statements, using SQLite's own idea of a complete statement (so a
    trigger body's inner ``;`` does not split it). Comment-only trailing text is dropped."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    leftover = [ln for ln in pending.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    if leftover:
        raise ValueError(f"SQL script ends with an unterminated statement: {leftover[0]!r}")
    return statements


class SQLiteMigrationTarget:
    """``MigrationTarget`` over a connection already inside ``immediate_transaction``."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def run_script(self, sql: str) -> None:
        for statement in split_statements(sql):
            await execute(self._db, statement)

    async def applied_versions(self) -> set[int]:
        rows = await self._db.execute_fetchall("SELECT version FROM schema_migrations")
        return {int(row[0]) for row in rows}

    async def record_version(self, migration: Migration, applied_at: datetime) -> None:
        await execute(
            self._db,
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, to_db_time(applied_at)),
        )
