"""The Redis bus's disk outbox: events published while Redis could not take them, kept in publish
order in a local SQLite file until a flusher delivers them (ARCHITECTURE.md §7).

An outbox event has no ``seq`` yet: Redis assigns it on delivery (see ``redis_streams``), so
publishers on any number of machines share one gap-free sequence per task and stream. Rows are
read oldest first and deleted once Redis has acknowledged them; the file survives a crash of the
publisher, and the next bus opened on it delivers what was left. Several processes may share one
file: rows are numbered by ``AUTOINCREMENT`` (never reused, so a late delete cannot hit a newer
row) and delivery is idempotent by event id, so two flushers sending the same row is harmless.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiosqlite

from agentfirm.domain.models import Event, StreamName
from agentfirm.errors import disk_full
from agentfirm.store.sqlite.conn import execute, from_db_time, move_aside, open_sqlite, to_db_time

_SCHEMA = """CREATE TABLE IF NOT EXISTS outbox (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    type TEXT NOT NULL,
    module_id TEXT,
    ts TEXT NOT NULL,
    payload TEXT NOT NULL
)"""


@dataclass(frozen=True)
class OutgoingEvent:
    """An event on its way to Redis, before Redis gave it a ``seq``; ``payload`` is JSON text."""

    id: str
    task_id: str
    stream: StreamName
    type: str
    module_id: str | None
    ts: datetime
    payload: str

    def with_seq(self, seq: int) -> Event:
        """The event as subscribers see it once Redis gave it ``seq``."""
        return Event(
            id=self.id,
            task_id=self.task_id,
            stream=self.stream,
            seq=seq,
            type=self.type,
            module_id=self.module_id,
            ts=self.ts,
            payload=json.loads(self.payload),
        )


@dataclass(frozen=True)
class OutboxEntry:
    """A buffered event and its place in the outbox (``position`` grows with every append)."""

    position: int
    event: OutgoingEvent


class Outbox:
    """The outbox file. Every method is one SQLite statement, atomic on its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._db is not None:
            return
        db = await open_sqlite(
            self.path,
            way_out=move_aside(self.path, "(losing the events it held for Redis)"),
        )
        try:
            # WAL + NORMAL: a commit survives a crash of this process (what the outbox is for)
            # without an fsync per event; only a power cut can lose the last commits.
            await execute(db, "PRAGMA synchronous = NORMAL")
            await execute(db, _SCHEMA)
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        async with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                await db.close()

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError(f"outbox {self.path} is not open: call open() first")
        return self._db

    async def append(self, event: OutgoingEvent) -> int:
        """Store ``event`` durably after every event already in the outbox; its position.
        Raises ``DiskFull`` naming the outbox when its disk is full."""
        try:
            async with (
                self._lock,
                self._conn().execute(
                    "INSERT INTO outbox (id, task_id, stream, type, module_id, ts, payload)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        event.id,
                        event.task_id,
                        event.stream,
                        event.type,
                        event.module_id,
                        to_db_time(event.ts),
                        event.payload,
                    ),
                ) as cursor,
            ):
                position = cursor.lastrowid
        except sqlite3.OperationalError as err:
            full = disk_full(err, self.path)
            if full is not None:
                raise full from None
            raise
        if position is None:  # pragma: no cover - sqlite3 always sets it after an INSERT
            raise RuntimeError(f"outbox {self.path}: INSERT returned no row id")
        return position

    async def oldest(self, limit: int) -> list[OutboxEntry]:
        """Up to ``limit`` entries, oldest first."""
        async with self._lock:
            rows = await self._conn().execute_fetchall(
                "SELECT * FROM outbox ORDER BY position LIMIT ?", (limit,)
            )
        return [
            OutboxEntry(
                position=row["position"],
                event=OutgoingEvent(
                    id=row["id"],
                    task_id=row["task_id"],
                    stream=row["stream"],
                    type=row["type"],
                    module_id=row["module_id"],
                    ts=from_db_time(row["ts"]),
                    payload=row["payload"],
                ),
            )
            for row in rows
        ]

    async def remove(self, positions: Sequence[int]) -> None:
        """Delete the entries at ``positions`` (delivered ones); absent positions are ignored."""
        if not positions:
            return
        marks = ",".join("?" * len(positions))
        async with self._lock:
            await execute(
                self._conn(), f"DELETE FROM outbox WHERE position IN ({marks})", positions
            )

    async def count(self) -> int:
        """How many events wait for delivery."""
        async with self._lock:
            rows = await self._conn().execute_fetchall("SELECT COUNT(*) FROM outbox")
        return int(next(iter(rows))[0])
