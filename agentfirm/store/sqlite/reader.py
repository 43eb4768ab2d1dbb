"""A plain reader of the SQLite store, for a command that reads in its own process (``tasks
list``, ``costs ID``): the stdlib driver on the command's own thread, no event loop, no model.

It reads the file only when the file is there and up to date (every shipped migration applied),
with the store's own statements (``agentfirm.store.sql.reads``). Otherwise — a new file, a
pending migration, a file that cannot be opened — ``open`` gives None and the command opens the
store, which creates, migrates or says what is wrong, exactly as before. Importing asyncio alone
costs half of what importing typer does; a read of a few rows on a process's one thread blocks
nothing.

Its methods are coroutines, as the views that call them expect, that never suspend: ``run_now``
runs such a read to its end without an event loop.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, NoReturn, Self, TypeVar

from agentfirm.store.sql.access import Dialect, Tx
from agentfirm.store.sql.reads import SqlReads
from agentfirm.store.sqlite.basics import BUSY_TIMEOUT_MS, damaged_file, store_way_out
from agentfirm.store.sqlite.dialect import SQLITE

T = TypeVar("T")

_VERSION = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def shipped_versions() -> set[int]:
    """The versions of the migrations shipped (``migrate.load_migrations`` reads the same
    files, and their SQL too). Listed beside this package, where ``importlib.resources`` finds
    them for a package installed as files (as agentfirm is), without its import (and zipfile's):
    a twentieth of importing typer. ``OSError`` when they cannot be listed."""
    folder = Path(__file__).resolve().parents[1] / "migrations"
    return {int(m[1]) for name in os.listdir(folder) if (m := _VERSION.match(name))}


class SQLiteReader(SqlReads):
    """``Reads`` on a SQLite store file, for one command (see the module's docstring)."""

    dialect: ClassVar[Dialect] = SQLITE

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, path: Path) -> SQLiteReader | None:
        """A reader of ``path`` when the store there is up to date, else None (open the store)."""
        if not path.is_file():
            return None
        try:
            # mode=rw: never creates the file (the store does, with its schema).
            conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True)
        except sqlite3.Error:
            return None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            applied = {int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations")}
            if shipped_versions() - applied:
                conn.close()
                return None
        except (sqlite3.Error, OSError):  # not a store (yet), or damaged: the store says which
            conn.close()
            return None
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.DatabaseError as err:  # as the store names a damaged file
            found = damaged_file(err, self.path, store_way_out(self.path))
            if found is None:
                raise
            raise found from None

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Tx]:
        raise RuntimeError("a SQLiteReader only reads")
        yield  # pragma: no cover  (makes this a generator)


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """The result of ``coro``, a read over a ``SQLiteReader``, run without an event loop: it
    never suspends, so it finishes at its first step. One that suspends is a bug: it is closed
    and ``RuntimeError`` says so."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    return _suspended()


def _suspended() -> NoReturn:
    raise RuntimeError("a plain read suspended: it needs an event loop")
