"""Run leases (``RunLeases``) on any SQL backend: one statement each, so of several takers at once
one gets a free lease. Its times come from the ``Dialect``'s clock (``Clock``)."""

from __future__ import annotations

from datetime import timedelta

from agentfirm.store.base import Lease, check_lease_terms
from agentfirm.store.sql.access import SqlAccess, no_task

# Taken when free, when expired, or renewed by its own holder (who keeps its acquired_at). The
# conflicting row is locked and its WHERE judged on its latest version; a WHERE that fails
# changes nothing and returns no row: another holder's live lease.
_ACQUIRE_SQL = (
    "INSERT INTO run_leases AS l (task_id, holder, acquired_at, expires_at)"
    " VALUES (?, ?, {now}, {until})"
    " ON CONFLICT (task_id) DO UPDATE SET holder = excluded.holder,"
    " acquired_at = CASE WHEN l.holder = excluded.holder THEN l.acquired_at"
    " ELSE excluded.acquired_at END,"
    " expires_at = excluded.expires_at"
    " WHERE l.holder = excluded.holder OR l.expires_at <= excluded.acquired_at"
    " RETURNING holder"
)


class SqlLeases(SqlAccess):
    """The ``RunLeases`` methods (see ``agentfirm.store.base``)."""

    async def acquire_lease(self, task_id: str, holder: str, *, ttl: timedelta) -> bool:
        check_lease_terms(task_id, holder, ttl)
        clock = self.dialect.clock(ttl)
        async with self._write() as tx:
            with self.dialect.refusals(missing=no_task(task_id)):
                taken = await tx.rows(
                    _ACQUIRE_SQL.format(now=clock.now, until=clock.until),
                    (task_id, holder, *clock.now_params, *clock.until_params),
                )
        return bool(taken)

    async def renew_lease(self, task_id: str, holder: str, *, ttl: timedelta) -> bool:
        check_lease_terms(task_id, holder, ttl)
        clock = self.dialect.clock(ttl)
        async with self._write() as tx:
            renewed = await tx.run(
                f"UPDATE run_leases SET expires_at = {clock.until}"
                " WHERE task_id = ? AND holder = ?",
                (*clock.until_params, task_id, holder),
            )
        return renewed == 1

    async def release_lease(self, task_id: str, holder: str) -> bool:
        async with self._write() as tx:
            released = await tx.run(
                "DELETE FROM run_leases WHERE task_id = ? AND holder = ?", (task_id, holder)
            )
        return released == 1

    async def get_lease(self, task_id: str) -> Lease | None:
        clock = self.dialect.clock(timedelta(0))
        rows = await self._fetch(
            f"SELECT task_id, holder, acquired_at, expires_at, expires_at > {clock.now} AS live"
            " FROM run_leases WHERE task_id = ?",
            (*clock.now_params, task_id),
        )
        return self.dialect.load(Lease, rows[0]) if rows else None
