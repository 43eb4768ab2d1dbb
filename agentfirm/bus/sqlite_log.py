"""The embedded bus: an append-only event log in its own SQLite file (ARCHITECTURE.md §7).

Durable and replayable, and shared by every process on the machine that opens the same file (the
daemon and a notebook run by the local runner). ``seq`` is assigned as ``max + 1`` inside a
``BEGIN IMMEDIATE`` transaction, so publishers in any number of processes get gap-free sequences,
and a reader never sees seq ``n + 1`` committed before ``n``. Subscribers poll the file (other
processes' publishes) and are also woken at once by publishes through the same instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from agentfirm.domain.models import Event, StreamName, utcnow
from agentfirm.ids import new_id
from agentfirm.store.sqlite.conn import (
    execute,
    immediate_transaction,
    move_aside,
    naming_full_disk,
    open_sqlite,
    to_db_time,
)
from agentfirm.store.sqlite.inline import InlineWrites
from agentfirm.store.sqlite.rows import event_from_row

log = structlog.get_logger(__name__)

_SCHEMA = """CREATE TABLE IF NOT EXISTS events (
    task_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    module_id TEXT,
    ts TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (task_id, stream, seq)
)"""

# A subscriber reads at most this many rows per query, so a long backlog streams in pages.
_PAGE = 500
_APPEND_SQL = (
    "INSERT INTO events (task_id, stream, seq, id, type, module_id, ts, payload)"
    " SELECT :task_id, :stream, COALESCE(MAX(seq), 0) + 1, :id, :type, :module_id, :ts, :payload"
    " FROM events WHERE task_id = :task_id AND stream = :stream"
    " RETURNING seq"
)


def _encode_payload(payload: dict[str, Any]) -> str:
    """JSON text of ``payload``; ``TypeError`` when it is not plain JSON (a bug in the caller)."""
    try:
        return json.dumps(payload, allow_nan=False, separators=(",", ":"))
    except ValueError as err:  # NaN/infinity or a circular reference
        raise TypeError(f"event payload is not JSON-serialisable: {err}") from err


class SQLiteLogBus:
    """``Bus`` on one SQLite file, separate from the store's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        # One per (task, stream) followed, replaced after every publish there: a subscriber
        # keeps the one it saw before reading, so a publish between its read and its wait still
        # wakes it; a publish elsewhere wakes nobody (each wake-up is a query on the
        # connection's thread, and a build publishes thousands of events its control stream's
        # follower need not read).
        self._published: dict[tuple[str, str], asyncio.Event] = {}
        self._closed = False
        self._inline = InlineWrites(path)

    async def open(self) -> None:
        if self._db is not None:
            return
        self._db = await open_sqlite(
            self.path, way_out=move_aside(self.path, "and the event log starts empty")
        )
        self._closed = False
        try:
            async with immediate_transaction(self._db, self._lock, path=self.path) as db:
                await execute(db, _SCHEMA)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the file; subscriptions of this instance end (their iterators stop)."""
        self._closed = True
        for waiting in self._published.values():
            waiting.set()
        self._published.clear()
        async with self._lock:
            self._inline.close()
            if self._db is not None:
                db, self._db = self._db, None
                await db.close()

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError(f"bus {self.path} is not open: call open() first")
        return self._db

    def _wake_subscribers(self, task_id: str, stream: StreamName) -> None:
        waiting = self._published.pop((task_id, stream), None)
        if waiting is not None:
            waiting.set()

    async def publish(
        self,
        task_id: str,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        module_id: str | None = None,
        stream: StreamName = "events",
    ) -> Event:
        """Append an event and return it as subscribers will see it (payload round-tripped
        through JSON). ``TypeError`` when the payload is not JSON-serialisable."""
        text = _encode_payload(payload or {})
        event_id, ts = new_id("ev"), utcnow()
        params = {
            "task_id": task_id,
            "stream": stream,
            "id": event_id,
            "type": type,
            "module_id": module_id,
            "ts": to_db_time(ts),
            "payload": text,
        }
        # One statement: its own transaction, and SQLite holds the write lock from reading the
        # last seq to the insert. Under the lock, so it never lands inside another coroutine's
        # transaction on this connection; then inline (see ``store.sqlite.inline``), else one
        # trip to the connection's thread.
        self._conn()  # raises when the bus is not open
        with naming_full_disk(self.path):
            async with self._lock:
                rows = self._inline.rows(_APPEND_SQL, params)
                if rows is None:
                    rows = list(await self._conn().execute_fetchall(_APPEND_SQL, params))
                    self._inline.wrote_slowly()
        seq = int(rows[0][0])
        self._wake_subscribers(task_id, stream)
        log.debug("bus.published", task_id=task_id, stream=stream, seq=seq, type=type)
        return Event(
            id=event_id,
            task_id=task_id,
            stream=stream,
            seq=seq,
            type=type,
            module_id=module_id,
            ts=ts,
            payload=json.loads(text),
        )

    async def replay(
        self, task_id: str, *, after_seq: int = 0, stream: StreamName = "events"
    ) -> list[Event]:
        events: list[Event] = []
        while page := await self._page(task_id, stream, after_seq):
            events += page
            after_seq = page[-1].seq
        return events

    async def _page(self, task_id: str, stream: StreamName, after_seq: int) -> list[Event]:
        async with self._lock:
            rows: list[sqlite3.Row] = list(
                await self._conn().execute_fetchall(
                    "SELECT * FROM events WHERE task_id = ? AND stream = ? AND seq > ?"
                    " ORDER BY seq LIMIT ?",
                    (task_id, stream, after_seq, _PAGE),
                )
            )
        return [event_from_row(row) for row in rows]

    async def subscribe(
        self,
        task_id: str,
        *,
        after_seq: int = 0,
        stream: StreamName = "events",
        poll_interval: float = 0.05,
    ) -> AsyncGenerator[Event, None]:
        """Yield events with ``seq > after_seq`` in order, then follow new ones: at once for
        publishes through this instance, within ``poll_interval`` for other processes'. Ends when
        cancelled, closed with ``aclose()``, or when this bus is closed."""
        last = after_seq
        while not self._closed:
            published = self._published.setdefault((task_id, stream), asyncio.Event())
            try:
                page = await self._page(task_id, stream, last)
            except RuntimeError:
                if self._closed:  # the bus closed while we waited for its connection
                    return
                raise
            for event in page:
                yield event
                last = event.seq
            if len(page) == _PAGE:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll_interval):
                    await published.wait()
