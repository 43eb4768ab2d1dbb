"""Run leases on SQLite (``Store.acquire_lease`` and friends), as a mixin of ``SQLiteStore``.

Each method is one statement in its own ``BEGIN IMMEDIATE`` transaction, so concurrent takers, in
this process or another, serialise: of several taking a free lease at once, one gets it. Times
come from the writing process's clock (the file is shared by one machine only), stored as
fixed-width ISO text, so text order is time order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any, Protocol

import aiosqlite

from agentfirm.domain import utcnow
from agentfirm.errors import NotFound
from agentfirm.store.base import Lease, check_lease_terms
from agentfirm.store.sqlite_conn import execute, from_db_time, to_db_time

# Taken when free, when expired, or renewed by its own holder (who keeps its acquired_at). A
# conflict whose WHERE fails changes nothing and returns no row: another holder's live lease.
_ACQUIRE_SQL = (
    "INSERT INTO run_leases (task_id, holder, acquired_at, expires_at)"
    " VALUES (:task_id, :holder, :now, :until)"
    " ON CONFLICT (task_id) DO UPDATE SET holder = excluded.holder,"
    " acquired_at = CASE WHEN run_leases.holder = excluded.holder"
    " THEN run_leases.acquired_at ELSE excluded.acquired_at END,"
    " expires_at = excluded.expires_at"
    " WHERE run_leases.holder = excluded.holder OR run_leases.expires_at <= excluded.acquired_at"
    " RETURNING holder"
)


class _SQLiteAccess(Protocol):
    def _write(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

    async def _fetch(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]: ...


class SQLiteLeases:
    """The lease methods of ``SQLiteStore`` (see ``agentfirm.store.base.Store``)."""

    async def acquire_lease(
        self: _SQLiteAccess, task_id: str, holder: str, *, ttl: timedelta
    ) -> bool:
        check_lease_terms(task_id, holder, ttl)
        now = utcnow()
        params = {
            "task_id": task_id,
            "holder": holder,
            "now": to_db_time(now),
            "until": to_db_time(now + ttl),
        }
        async with self._write() as db:
            try:
                taken = list(await db.execute_fetchall(_ACQUIRE_SQL, params))
            except sqlite3.IntegrityError as err:
                raise NotFound(
                    f"task {task_id} not found", hint="run `agentfirm tasks list` to see task ids"
                ) from err
        return bool(taken)

    async def renew_lease(
        self: _SQLiteAccess, task_id: str, holder: str, *, ttl: timedelta
    ) -> bool:
        check_lease_terms(task_id, holder, ttl)
        async with self._write() as db:
            renewed = await execute(
                db,
                "UPDATE run_leases SET expires_at = ? WHERE task_id = ? AND holder = ?",
                (to_db_time(utcnow() + ttl), task_id, holder),
            )
        return renewed == 1

    async def release_lease(self: _SQLiteAccess, task_id: str, holder: str) -> bool:
        async with self._write() as db:
            released = await execute(
                db, "DELETE FROM run_leases WHERE task_id = ? AND holder = ?", (task_id, holder)
            )
        return released == 1

    async def get_lease(self: _SQLiteAccess, task_id: str) -> Lease | None:
        rows = await self._fetch(
            "SELECT task_id, holder, acquired_at, expires_at, expires_at > ? AS live"
            " FROM run_leases WHERE task_id = ?",
            (to_db_time(utcnow()), task_id),
        )
        if not rows:
            return None
        row = rows[0]
        return Lease(
            task_id=row["task_id"],
            holder=row["holder"],
            acquired_at=from_db_time(row["acquired_at"]),
            expires_at=from_db_time(row["expires_at"]),
            live=bool(row["live"]),
        )
