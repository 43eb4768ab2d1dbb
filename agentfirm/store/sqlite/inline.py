"""Short writes on the event loop's own thread: a second connection to a SQLite file that never
waits for a lock.

Every statement sent to an ``aiosqlite`` connection is a trip to its thread, a thread switch each
way: on a busy machine most of what a budget booking, a module's row or an event cost. When the
file's shared connection is idle (its ``asyncio.Lock`` is free) and no other process holds the
write lock, a short write runs right here instead, in tens of microseconds. Otherwise — the lock
busy, or this write's turn to checkpoint — the caller is told so (None) and goes the slow way,
waiting its turn on the shared connection like any other write.

The inline connection never checkpoints (that fsyncs: not on the event loop); one write in
``CHECKPOINT_EVERY`` goes the slow way instead, whose commit checkpoints a WAL grown past its
limit, so the WAL stays bounded even when inline writes are all that is written. Until the owner
says such a write was made (``wrote_slowly``), every inline write is refused: a caller refused
once and trying inline again (the router's ``reserve_now``, then ``reserve``) would otherwise
take the next turn, and the WAL grew without end (200 MB after 5,000 router calls), every write
appending to fresh file pages.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

CHECKPOINT_EVERY = 200
"""One inline write in this many goes through the shared connection instead."""

Params = Sequence[Any] | dict[str, Any]


def _busy(err: sqlite3.OperationalError) -> bool:
    return err.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _open(path: Path) -> sqlite3.Connection:
    """Never waits for a lock, never checkpoints, same durability as the shared connection.
    Used from the event loop only, which need not be the thread that opened it."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
    except BaseException:
        conn.close()
        raise
    return conn


class InlineWrites:
    """Writes to ``path`` on the caller's thread, or None: go the slow way. The caller checks
    first that the shared connection is idle."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._writes = 0
        self._slow_due = False

    def _turn(self) -> sqlite3.Connection | None:
        if self._slow_due:
            return None  # the shared connection's turn, not taken yet
        self._writes += 1
        if self._writes % CHECKPOINT_EVERY == 0:
            self._slow_due = True
            return None  # this one goes through the shared connection, which checkpoints
        if self._conn is None:
            self._conn = _open(self.path)
        return self._conn

    def wrote_slowly(self) -> None:
        """A write was committed through the shared connection (its commit checkpoints a WAL
        past its limit): inline writes may go on. Every writer refused inline must say so once
        it wrote the slow way."""
        self._slow_due = False

    def rows(self, sql: str, params: Params = ()) -> list[sqlite3.Row] | None:
        """Run one writing statement as its own transaction; the rows it returned, or None when
        nothing was written (the write lock is busy, or it is the slow way's turn)."""
        conn = self._turn()
        if conn is None:
            return None
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as err:
            if _busy(err):
                return None
            raise

    def read(self, sql: str, params: Params = ()) -> list[sqlite3.Row] | None:
        """The rows of a short read (WAL: it never waits for a writer), or None when the file
        is busy all the same (recovering its WAL)."""
        if self._conn is None:
            self._conn = _open(self.path)
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as err:
            if _busy(err):
                return None
            raise

    def count(self, sql: str, params: Params = ()) -> int | None:
        """``rows`` for a statement that returns none: the number of rows it changed."""
        conn = self._turn()
        if conn is None:
            return None
        try:
            cursor = conn.execute(sql, params)
        except sqlite3.OperationalError as err:
            if _busy(err):
                return None
            raise
        cursor.fetchall()  # run to its end
        return cursor.rowcount

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection | None]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on any exception) on the inline
        connection; it yields None, and nothing is written, when the write lock is busy or it is
        the slow way's turn. The block must not wait on the event loop for long: the file's write
        lock is held."""
        conn = self._turn()
        if conn is not None:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                if not _busy(err):
                    raise
                conn = None
        if conn is None:
            yield None
            return
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.OperationalError):  # none active: fine
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
