"""A local SQLite cache in front of the Postgres store, for the daemon's hot reads (ARCHITECTURE.md
§1): tasks, transitions, the ledger, approvals and events are served from a file under the data
dir; every write goes through to Postgres, and so does everything else.

Freshness: Postgres numbers every change of a task's data (``cache_revs``, migration 0003: one
rev per task and kind — ``task`` with its transitions, ``ledger``, ``approvals``, ``events`` —
bumped in the changing transaction, whoever changes it: this process, a worker, another machine).
A cached read first asks Postgres for that one rev (a primary-key lookup) and serves the local
copy when it carries the same rev; otherwise it fetches the data again. Revs are read before the
data, and a copy is replaced only by one with a higher rev, so a copy is never older than its rev
and several processes may share one file.

On open: a file that is not a cache (deleted, corrupt, older layout) or that was filled from
another database is rebuilt; stale copies are then fetched again in the background
(``wait_warm``), so the daemon starts at once and reads are served correctly meanwhile. A file
that cannot be kept at all (a read-only or full disk) costs speed only: reads go to Postgres.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiosqlite
import structlog
from pydantic import BaseModel

from agentfirm.domain.models import Approval, Event, LedgerEntry, Task, Transition
from agentfirm.errors import DamagedFile
from agentfirm.settings import mask_url
from agentfirm.store.postgres import PostgresStore
from agentfirm.store.sql.budgets import LEDGER_COLUMNS
from agentfirm.store.sqlite.conn import execute, immediate_transaction, move_aside, open_sqlite

log = structlog.get_logger(__name__)
M = TypeVar("M", bound=BaseModel)

Kind = Literal["task", "ledger", "approvals", "events"]
KINDS: tuple[Kind, ...] = ("task", "ledger", "approvals", "events")
# Tasks fetched per round trip when many are stale (bounds memory on a big rebuild).
_CHUNK = 64
# Ids per SQLite ``IN (…)`` list, well under its limit on bound parameters.
_IN_CHUNK = 500
_LAYOUT = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS revs (
    task_id TEXT NOT NULL, kind TEXT NOT NULL, rev INTEGER NOT NULL, PRIMARY KEY (task_id, kind)
);
CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
    task_id TEXT NOT NULL, kind TEXT NOT NULL, pos INTEGER NOT NULL, seq INTEGER,
    doc TEXT NOT NULL, PRIMARY KEY (task_id, kind, pos)
);
"""
# What each kind holds besides the task row, in the order the Postgres store returns it.
_FETCH: dict[Kind, tuple[str, type[BaseModel]]] = {
    "task": (
        "SELECT task_id, from_status, to_status, actor, reason, at FROM transitions"
        " WHERE task_id = ANY(%s) ORDER BY task_id, seq",
        Transition,
    ),
    "ledger": (
        f"SELECT {LEDGER_COLUMNS} FROM ledger WHERE task_id = ANY(%s) ORDER BY task_id, at, seq",
        LedgerEntry,
    ),
    "approvals": (
        "SELECT * FROM approvals WHERE task_id = ANY(%s) ORDER BY task_id, created_at, id",
        Approval,
    ),
    "events": (
        "SELECT * FROM events WHERE task_id = ANY(%s) AND stream = 'events' ORDER BY task_id, seq",
        Event,
    ),
}


def cache_path(data_dir: Path, url: str) -> Path:
    """The cache file of the database at ``url`` (one per database: the password is no part of
    the name)."""
    digest = hashlib.sha256(mask_url(url).encode()).hexdigest()[:16]
    return data_dir / "cache" / f"store-{digest}.sqlite3"


class CachedStore(PostgresStore):
    """``Store`` on Postgres at ``url``, its hot reads served from the SQLite file ``path``
    (see the module docstring). Same behaviour as ``PostgresStore`` in every other respect."""

    def __init__(self, url: str, path: Path, **pool: int) -> None:
        super().__init__(url, **pool)
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._cache_lock = asyncio.Lock()
        self._warming: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open the Postgres store, then the cache. A cache that cannot be kept at all (a disk
        that is full or read-only) is logged and done without: every read goes to Postgres."""
        await super().open()
        if self._db is None:
            origin = await self._origin()
            try:
                self._db = await self._open_cache(origin)
            except (OSError, sqlite3.Error) as err:
                log.warning("store.cache_unavailable", path=str(self.path), error=str(err))
                return
            self._warming = asyncio.create_task(self._warm(), name="store-cache-warm")

    async def close(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
            await asyncio.gather(self._warming, return_exceptions=True)
            self._warming = None
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()
        await super().close()

    async def wait_warm(self) -> None:
        """Return once the copies found stale on open have been fetched again."""
        if self._warming is not None:
            await asyncio.shield(self._warming)

    # ------------------------------------------------------------------ cached reads
    async def get_task(self, task_id: str) -> Task:
        if self._db is not None and await self._fresh(task_id, "task"):
            rows = await self._cache_read("SELECT doc FROM tasks WHERE id = ?", (task_id,))
            if rows:
                return Task.model_validate_json(rows[0][0])
        return await super().get_task(task_id)  # no such task: the store's own NotFound

    async def list_tasks(self, *, limit: int = 100) -> list[Task]:
        if self._db is None:
            return await super().list_tasks(limit=limit)
        rows = await self.query(
            "SELECT t.id, r.rev FROM tasks t"
            " LEFT JOIN cache_revs r ON r.task_id = t.id AND r.kind = 'task'"
            " ORDER BY t.created_at DESC, t.id DESC LIMIT %s",
            (None if limit < 0 else limit,),
        )
        if any(row["rev"] is None for row in rows):  # not numbered (yet): ask Postgres itself
            return await super().list_tasks(limit=limit)
        await self._refresh_stale("task", {row["id"]: row["rev"] for row in rows})
        found = await self._cache_read_in(
            "SELECT id, doc FROM tasks WHERE id IN", [r["id"] for r in rows]
        )
        docs: dict[str, str] = {row[0]: row[1] for row in found}
        if any(row["id"] not in docs for row in rows):
            return await super().list_tasks(limit=limit)
        return [Task.model_validate_json(docs[row["id"]]) for row in rows]

    async def list_transitions(self, task_id: str) -> list[Transition]:
        if self._db is None:
            return await super().list_transitions(task_id)
        return await self._docs(task_id, "task", Transition)

    async def list_ledger(self, task_id: str) -> list[LedgerEntry]:
        if self._db is None:
            return await super().list_ledger(task_id)
        return await self._docs(task_id, "ledger", LedgerEntry)

    async def list_approvals(self, task_id: str) -> list[Approval]:
        if self._db is None:
            return await super().list_approvals(task_id)
        return await self._docs(task_id, "approvals", Approval)

    async def list_events(self, task_id: str, *, after_seq: int = 0) -> list[Event]:
        if self._db is None:
            return await super().list_events(task_id, after_seq=after_seq)
        return await self._docs(task_id, "events", Event, after_seq=after_seq)

    # ------------------------------------------------------------------ freshness
    async def _fresh(self, task_id: str, kind: Kind) -> bool:
        """Bring the copy of ``(task_id, kind)`` up to the rev Postgres has now; False when
        Postgres has no such data."""
        rows = await self.query(
            "SELECT rev FROM cache_revs WHERE task_id = %s AND kind = %s", (task_id, kind)
        )
        if not rows:
            return False
        await self._refresh_stale(kind, {task_id: rows[0]["rev"]})
        return True

    async def _docs(
        self, task_id: str, kind: Kind, model: type[M], *, after_seq: int = 0
    ) -> list[M]:
        if not await self._fresh(task_id, kind):
            return []
        rows = await self._cache_read(
            "SELECT doc FROM docs WHERE task_id = ? AND kind = ? AND IFNULL(seq, 1) > ?"
            " ORDER BY pos",
            (task_id, kind, after_seq),
        )
        return [model.model_validate_json(row[0]) for row in rows]

    async def _refresh_stale(self, kind: Kind, revs: dict[str, int]) -> None:
        """Fetch again the tasks' ``kind`` data whose copy does not carry the rev given."""
        held = await self._cache_read_in(
            "SELECT task_id, rev FROM revs WHERE kind = ? AND task_id IN", list(revs), kind
        )
        cached: dict[str, int] = {row[0]: row[1] for row in held}
        stale = {t: rev for t, rev in revs.items() if cached.get(t) != rev}
        ids = sorted(stale)
        for start in range(0, len(ids), _CHUNK):
            await self._refresh(kind, {t: stale[t] for t in ids[start : start + _CHUNK]})

    async def _refresh(self, kind: Kind, revs: dict[str, int]) -> None:
        """Fetch the tasks' ``kind`` data (read after ``revs`` were) and keep each copy unless
        the file already holds a newer one."""
        ids = list(revs)
        tasks: dict[str, str] = {}
        if kind == "task":
            rows = await self.query("SELECT * FROM tasks WHERE id = ANY(%s)", (ids,))
            tasks = {row["id"]: Task.model_validate(row).model_dump_json() for row in rows}
        sql, model = _FETCH[kind]
        docs: dict[str, list[tuple[int | None, str]]] = {t: [] for t in ids}
        for row in await self.query(sql, (ids,)):
            docs[row["task_id"]].append(
                (row.get("seq"), model.model_validate(row).model_dump_json())
            )
        async with self._cache_write() as db:
            for task_id, rev in revs.items():
                held = await db.execute_fetchall(
                    "SELECT rev FROM revs WHERE task_id = ? AND kind = ?", (task_id, kind)
                )
                if held and next(iter(held))[0] >= rev:
                    continue  # another reader stored a newer copy meanwhile
                await self._replace(db, task_id, kind, rev, tasks.get(task_id), docs[task_id])

    @staticmethod
    async def _replace(
        db: aiosqlite.Connection,
        task_id: str,
        kind: Kind,
        rev: int,
        task_doc: str | None,
        docs: Sequence[tuple[int | None, str]],
    ) -> None:
        if kind == "task":
            await execute(db, "DELETE FROM tasks WHERE id = ?", (task_id,))
            if task_doc is not None:
                await execute(db, "INSERT INTO tasks (id, doc) VALUES (?, ?)", (task_id, task_doc))
        await execute(db, "DELETE FROM docs WHERE task_id = ? AND kind = ?", (task_id, kind))
        await db.executemany(
            "INSERT INTO docs (task_id, kind, pos, seq, doc) VALUES (?, ?, ?, ?, ?)",
            [(task_id, kind, pos, seq, doc) for pos, (seq, doc) in enumerate(docs)],
        )
        await execute(
            db,
            "INSERT INTO revs (task_id, kind, rev) VALUES (?, ?, ?)"
            " ON CONFLICT (task_id, kind) DO UPDATE SET rev = excluded.rev",
            (task_id, kind, rev),
        )

    async def _warm(self) -> None:
        """Forget copies of data Postgres no longer has; fetch every stale copy again."""
        try:
            current: dict[Kind, dict[str, int]] = {kind: {} for kind in KINDS}
            for row in await self.query("SELECT task_id, kind, rev FROM cache_revs"):
                if row["kind"] in current:
                    current[row["kind"]][row["task_id"]] = row["rev"]
            for kind in KINDS:
                gone = [
                    (task_id,)
                    for (task_id,) in await self._cache_read(
                        "SELECT task_id FROM revs WHERE kind = ?", (kind,)
                    )
                    if task_id not in current[kind]
                ]
                if gone:
                    async with self._cache_write() as db:
                        await _forget(db, kind, gone)
                await self._refresh_stale(kind, current[kind])
            log.info("store.cache_warm", path=str(self.path))
        except Exception as err:  # reads stay correct without a warm cache: never fail on it
            log.warning("store.cache_warm_failed", path=str(self.path), error=repr(err))

    # ------------------------------------------------------------------ the file
    async def _origin(self) -> str:
        """The id of this database (a cache filled from another one is not reused)."""
        await self.query(  # a database emptied by hand lost it: name it anew
            "INSERT INTO cache_origin SELECT gen_random_uuid()::TEXT"
            " WHERE NOT EXISTS (SELECT 1 FROM cache_origin) RETURNING origin"
        )
        rows = await self.query("SELECT MIN(origin) AS origin FROM cache_origin")
        return str(rows[0]["origin"])

    async def _open_cache(self, origin: str) -> aiosqlite.Connection:
        """The cache file, rebuilt when it is missing, unreadable, of another layout or filled
        from another database."""
        try:
            return await _open_layout(self.path, origin)
        except (sqlite3.DatabaseError, DamagedFile) as err:  # not a database, or damaged: afresh
            log.warning("store.cache_unreadable", path=str(self.path), error=str(err))
            await asyncio.to_thread(_delete_files, self.path)
            return await _open_layout(self.path, origin)

    def _cache_write(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        if self._db is None:
            raise RuntimeError(f"store cache {self.path} is not open: call open() first")
        return immediate_transaction(self._db, self._cache_lock, path=self.path)

    async def _cache_read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        if self._db is None:
            raise RuntimeError(f"store cache {self.path} is not open: call open() first")
        async with self._cache_lock:
            return list(await self._db.execute_fetchall(sql, tuple(params)))

    async def _cache_read_in(self, sql: str, ids: Sequence[str], *params: Any) -> list[sqlite3.Row]:
        """``sql`` (ending in ``IN``) completed with a list of ``ids``, a chunk at a time."""
        rows: list[sqlite3.Row] = []
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows += await self._cache_read(f"{sql} ({marks})", (*params, *chunk))
        return rows


async def _open_layout(path: Path, origin: str) -> aiosqlite.Connection:
    db = await open_sqlite(path, way_out=move_aside(path, "and it is rebuilt from Postgres"))
    try:
        async with immediate_transaction(db, asyncio.Lock()):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    await execute(db, statement)
            rows = await db.execute_fetchall("SELECT key, value FROM meta")
            meta: dict[str, str] = {row[0]: row[1] for row in rows}
            if meta != {"layout": _LAYOUT, "origin": origin}:
                if meta:  # an older layout, or filled from another database
                    log.info("store.cache_rebuilt", path=str(path), was=meta)
                for table in ("meta", "revs", "tasks", "docs"):
                    await execute(db, f"DELETE FROM {table}")
                await db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("layout", _LAYOUT), ("origin", origin)],
                )
    except BaseException:
        await db.close()
        raise
    return db


async def _forget(db: aiosqlite.Connection, kind: Kind, gone: list[tuple[str]]) -> None:
    if kind == "task":
        await db.executemany("DELETE FROM tasks WHERE id = ?", gone)
    await db.executemany(
        "DELETE FROM docs WHERE task_id = ? AND kind = ?", [(t, kind) for (t,) in gone]
    )
    await db.executemany(
        "DELETE FROM revs WHERE task_id = ? AND kind = ?", [(t, kind) for (t,) in gone]
    )


def _delete_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
