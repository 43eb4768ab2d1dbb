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
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from agentfirm.errors import DamagedFile, disk_full
from agentfirm.store.migrate import Migration
from agentfirm.store.sqlite.basics import BUSY_TIMEOUT_MS
from agentfirm.store.sqlite.basics import damaged_file as damaged_file
from agentfirm.store.sqlite.basics import from_db_time as from_db_time
from agentfirm.store.sqlite.basics import move_aside as move_aside
from agentfirm.store.sqlite.basics import to_db_time as to_db_time
from agentfirm.store.sqlite.found_whole import mark_whole, marked_whole, stamp


async def open_sqlite(
    path: Path, *, way_out: str | None = None, check: bool = True
) -> aiosqlite.Connection:
    """Open (creating parent dirs) ``path`` in WAL mode with a busy timeout and foreign keys on.
    The connection is in autocommit mode: callers open transactions themselves.

    The file's integrity is checked first (``PRAGMA quick_check``: every page's structure, not
    index contents), so a damaged file is found before anything writes over it: ``DamagedFile``
    names it, and its hint is ``way_out`` (how the caller's data comes back). ``check=False``
    (a caller that only reads): only the header is read, which finds a file that is no database
    at all; a damaged page is found when a read meets it (``damaged_file``)."""
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        db.row_factory = sqlite3.Row
        # busy_timeout first, so switching to WAL also waits for another process's lock.
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if check:
            await check_integrity(db, path, way_out)
        else:
            await db.execute_fetchall("PRAGMA schema_version")  # reads the header page
        await _into_wal(db)
        # In WAL mode NORMAL never corrupts and loses nothing when a process dies; only an OS
        # crash may roll back the last commits. It halves the router's per-call store time.
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute("PRAGMA foreign_keys = ON")
    except BaseException as err:
        await db.close()
        full = disk_full(err, path) or damaged_file(
            err, path, way_out or move_aside(path, "or restore it from a backup")
        )
        if full is not None and full is not err:
            raise full from None
        raise
    return db


async def _into_wal(db: aiosqlite.Connection) -> None:
    """Switch ``db``'s file to WAL, waiting for another connection doing the same.

    The switch upgrades the pragma's own read lock to a write lock, and SQLite answers an upgrade
    that could deadlock with "database is locked" at once rather than calling the busy handler:
    two processes opening a new file together (the daemon and a runner) would fail one of them.
    The switch is kept in the file, so only a new file ever waits here."""
    waited = 0.0
    pause = 0.005
    while True:
        try:
            await db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or waited * 1000 >= BUSY_TIMEOUT_MS:
                raise
        await asyncio.sleep(pause)
        waited += pause
        pause = min(pause * 2, 0.1)


async def check_integrity(
    db: aiosqlite.Connection, path: Path, way_out: str | None, *, again: bool = False
) -> None:
    """Raise ``DamagedFile`` (hint: ``way_out``) when ``PRAGMA quick_check`` finds ``path``
    damaged; ``db`` is a connection to it.

    ``quick_check`` reads every page: seconds for a ledger of a million calls, on every command.
    So a file found whole is not checked again until it changes (see ``found_whole``).
    ``again`` checks it whatever (``db status``: the user asked)."""
    before = await asyncio.to_thread(stamp, path)
    if not again and await asyncio.to_thread(marked_whole, path, before):
        return
    hint = way_out or move_aside(path, "or restore it from a backup")
    try:
        rows = await db.execute_fetchall("PRAGMA quick_check(3)")
    except sqlite3.DatabaseError as err:
        found = damaged_file(err, path, hint)
        if found is None:
            raise
        raise found from None
    # The first line of the report is a banner ("*** in database main ***"): keep the pages.
    problems = [
        " ".join(str(row[0]).replace("*** in database main ***", "").split())
        for row in rows
        if row[0] != "ok"
    ]
    if problems:
        raise DamagedFile(f"{path} is damaged: {'; '.join(problems)}", hint=hint)
    await asyncio.to_thread(mark_whole, path, before)


@asynccontextmanager
async def immediate_transaction(
    db: aiosqlite.Connection,
    lock: asyncio.Lock,
    *,
    path: Path | None = None,
    around: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> AsyncIterator[aiosqlite.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception (cancellation included).
    A full disk raises ``DiskFull`` naming ``path`` (the file ``db`` writes). ``around``: a
    context entered once ``lock`` is ours, around the whole transaction."""
    async with lock:
        with around():
            try:
                await execute(db, "BEGIN IMMEDIATE")
                yield db
                await execute(db, "COMMIT")
            except BaseException as err:
                # Always queue the ROLLBACK: a cancelled BEGIN may still run after we gave up on
                # it, and aiosqlite runs statements in order. "No transaction is active" is fine.
                with contextlib.suppress(sqlite3.OperationalError):
                    await execute(db, "ROLLBACK")
                full = disk_full(err, path)
                if full is not None and full is not err:
                    raise full from None
                raise


@contextmanager
def naming_full_disk(path: Path) -> Iterator[None]:
    """A full disk raised in the block is ``DiskFull`` naming ``path`` (the file written)."""
    try:
        yield
    except sqlite3.Error as err:
        full = disk_full(err, path)
        if full is not None:
            raise full from None
        raise


async def execute(db: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> int:
    """Run one statement that returns no rows; return the number of rows it changed.

    The cursor is left to the garbage collector rather than closed: closing is a second trip to
    the connection's thread (a thread switch each way, which under load was much of what a module
    cost the orchestrator), and a statement that returns no rows has already run to its end."""
    cursor = await db.execute(sql, tuple(params))
    return cursor.rowcount


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
