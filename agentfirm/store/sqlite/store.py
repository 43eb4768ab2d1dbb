"""The embedded system of record: one SQLite file, shared by the daemon and a notebook runner.

Every write is one ``BEGIN IMMEDIATE`` transaction (see ``conn``), so concurrent writers, in this
process or another, serialise and never see each other's half-done work. The router's budget
bookings are single statements instead (their running totals kept by triggers): see ``booking``.
A write runs inline on the event loop when nothing else writes that instant (see ``inline``), else
on the shared connection's thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, ClassVar

import aiosqlite
import structlog

from agentfirm.errors import DamagedFile
from agentfirm.store.migrate import Migration, load_migrations, migrate
from agentfirm.store.sql.access import Dialect, Tx
from agentfirm.store.sql.store import SqlStore
from agentfirm.store.sqlite.basics import store_way_out as store_way_out
from agentfirm.store.sqlite.booking import SQLiteBooking
from agentfirm.store.sqlite.conn import (
    SQLiteMigrationTarget,
    check_integrity,
    damaged_file,
    execute,
    immediate_transaction,
    naming_full_disk,
    open_sqlite,
)
from agentfirm.store.sqlite.dialect import SQLITE
from agentfirm.store.sqlite.found_whole import OwnWrites
from agentfirm.store.sqlite.inline import InlineWrites

log = structlog.get_logger(__name__)

_APPLIED_SQL = "SELECT version FROM schema_migrations"


class SQLiteStore(SQLiteBooking, SqlStore):
    """``Store`` on one SQLite file (see ``agentfirm.store.base.Store`` for each method's contract).

    Beyond the protocol: ``set_budget`` also sets the task's ``budget_nano``; ``reserve`` and
    ``get_budget`` raise ``NotFound`` when the task has no budget; a negative amount of money is
    ``BadInput``; writes that name a missing task raise ``NotFound``.

    A damaged file is ``DamagedFile`` naming it, with the way out: found at ``open`` or by
    ``verify`` (``PRAGMA quick_check``), or when SQLite meets a damaged page. Once found, every
    later use of the store raises it again, so nothing more is written over the file.
    """

    dialect: ClassVar[Dialect] = SQLITE

    def __init__(self, path: Path, *, reads_only: bool = False) -> None:
        """``reads_only``: a command that only reads (``tasks list``) opens without the
        integrity check, which reads every page (about a second for a million ledger rows)."""
        self.path = path
        self._reads_only = reads_only
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._inline = InlineWrites(path)  # see ``inline``
        self._damaged: DamagedFile | None = None
        self._own = OwnWrites(path)  # see ``verify``
        self._verifying = asyncio.Lock()

    async def open(self) -> None:
        if self._db is not None:
            return
        migrations = await asyncio.to_thread(load_migrations)
        self._damaged = None
        way_out = store_way_out(self.path)
        self._db = await open_sqlite(self.path, way_out=way_out, check=not self._reads_only)
        # Found whole just now (unless only reading): ``verify`` need not check it again until
        # something else writes it.
        self._own.known = None if self._reads_only else self._own.seen()
        try:
            if self._reads_only and await self._migrations_pending(migrations):
                await check_integrity(self._db, self.path, way_out)  # a migration writes
            async with immediate_transaction(
                self._db, self._lock, path=self.path, around=self._own.writing
            ) as db:
                await migrate(SQLiteMigrationTarget(db), migrations)
        except BaseException:
            await self.close()
            raise

    async def _migrations_pending(self, migrations: Sequence[Migration]) -> bool:
        try:
            applied = {int(row[0]) for row in await self._fetch(_APPLIED_SQL)}
        except sqlite3.OperationalError:  # no table yet: a new file
            return True
        return any(m.version not in applied for m in migrations)

    async def close(self) -> None:
        """Wait for the operation in flight, then close; idempotent."""
        async with self._lock:
            self._inline.close()
            if self._db is not None:
                db, self._db = self._db, None
                await db.close()

    async def verify(self) -> None:
        """Check the file now, before writing (the daemon, which opened it long ago, calls this
        first): ``PRAGMA quick_check`` on a connection of its own. Raises ``DamagedFile``.

        Skipped while nothing but this store's own writes changed the file since it was last
        found whole, or while it is as the last check of any process found it (see
        ``found_whole``): the daemon's writes change it between any two of its requests, and the
        check costs about a second on a year's ledger."""
        self._conn()
        async with self._verifying:  # a second caller waits for the first one's answer
            self._conn()
            if self._own.unchanged():
                return
            # Known whole from now on if the check passes: our writes meanwhile carry it on,
            # anyone else's makes it unknown again (``OwnWrites.writing``).
            self._own.known = self._own.seen()
            started = time.monotonic()
            try:
                db = await aiosqlite.connect(self.path, isolation_level=None)
                try:
                    with self._noticing_damage():
                        await check_integrity(db, self.path, store_way_out(self.path))
                finally:
                    await db.close()
            except BaseException:
                self._own.known = None
                raise
            log.info(
                "store.integrity_checked",
                path=str(self.path),
                ms=round((time.monotonic() - started) * 1000),
            )

    def _conn(self) -> aiosqlite.Connection:
        if self._damaged is not None:
            raise self._damaged
        if self._db is None:
            raise RuntimeError(f"store {self.path} is not open: call open() first")
        return self._db

    @contextmanager
    def _noticing_damage(self) -> Iterator[None]:
        """SQLite's "malformed" or "not a database" in the block is ``DamagedFile`` naming the
        file, now and for every later use of the store."""
        try:
            yield
        except (sqlite3.DatabaseError, DamagedFile) as err:
            found = damaged_file(err, self.path, store_way_out(self.path))
            if found is None:
                raise
            self._damaged = found
            raise found from None

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Tx]:
        self._conn()  # raises when the store is not open
        with self._noticing_damage():
            # Our turn on the lock, then inline (see ``inline``): our connection is idle
            # meanwhile.
            async with self._lock:
                with naming_full_disk(self.path), self._inline.transaction() as conn:
                    if conn is not None:
                        yield _InlineTx(conn)
                        return
            async with immediate_transaction(
                self._conn(), self._lock, path=self.path, around=self._own.writing
            ) as db:
                yield _SQLiteTx(db)
            self._inline.wrote_slowly()

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._noticing_damage():
            async with self._lock:
                return list(await self._conn().execute_fetchall(sql, tuple(params)))

    async def _fetch_by_key(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        # Inline: a point read costs microseconds, the trip to the connection's thread many
        # times that, and holding the lock for it sent every write meanwhile the slow way. It
        # need not wait for the lock: it sees what is committed (WAL), as it would after a
        # transaction in flight on our connection, which no caller of this awaits meanwhile.
        self._conn()  # raises when the store is not open
        with self._noticing_damage():
            rows = self._inline.read(sql, tuple(params))
        return rows if rows is not None else await self._fetch(sql, params)

    async def _write_one(self, sql: str, params: Sequence[Any] = ()) -> int:
        # In autocommit mode one statement is its own transaction: one trip to the connection's
        # thread instead of three (BEGIN, the statement, COMMIT), or none when it runs inline
        # (see ``inline``). Under the lock, so it never lands inside another coroutine's
        # transaction on this connection.
        self._conn()  # raises when the store is not open
        with self._noticing_damage(), naming_full_disk(self.path):
            async with self._lock:
                changed = self._inline.count(sql, tuple(params))
                if changed is None:
                    with self._own.writing():
                        changed = await execute(self._conn(), sql, params)
                    self._inline.wrote_slowly()
                return changed


class _InlineTx:
    """``Tx`` on the inline connection, inside ``InlineWrites.transaction``: each statement runs
    at once, on the event loop's thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = self._conn.execute(sql, tuple(params))
        cursor.fetchall()  # run to its end
        return cursor.rowcount

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, tuple(params)).fetchall()


class _SQLiteTx:
    """``Tx`` on the shared connection, inside ``immediate_transaction``."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await execute(self._db, sql, params)

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(await self._db.execute_fetchall(sql, tuple(params)))
