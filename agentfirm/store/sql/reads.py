"""The reads front ends show (``agentfirm.api.views``), as plain rows on any SQL backend: a task
list, a task's pending questions, its running cost totals and a page of its calls.

No model validates these rows (the store wrote them valid): ``tasks list`` and ``costs ID`` read
them in a process that loads no pydantic, which was most of their start-up. The statements are
here, light, for the store (``SqlStore``) and for a plain reader of the SQLite file
(``agentfirm.store.sqlite.reader``) alike, so the two read the same rows the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from agentfirm.domain.costs import CostGroup, LedgerRow
from agentfirm.store.sql.access import SqlAccess

LEDGER_COLUMNS = (
    "task_id, call_id, module_id, tier, provider, model, input_tokens, cached_input_tokens,"
    " output_tokens, cost_nano, latency_ms, outcome, simulated, error, at"
)
TASK_HEADS_SQL = (
    "SELECT id, request, status, persona, budget_nano, created_at FROM tasks"
    " ORDER BY created_at DESC, id DESC"
)
# The running totals of migration 0002, kept by trigger with every ledger row.
COST_GROUPS_SQL = (
    "SELECT module_id, tier, provider, cost_nano, calls, simulated FROM cost_totals"
    " WHERE task_id = ? ORDER BY first_at, first_seq"
)
ESTIMATED = (
    "outcome = 'cancelled' AND cost_nano > 0"
    " AND input_tokens = 0 AND cached_input_tokens = 0 AND output_tokens = 0"
)
"""SQL: a ledger row booked at its reservation, an upper bound (``LedgerEntry.upper_bound``): a
call abandoned after it was sent, whose usage no provider has reported (yet: ``Store.rebook``).
Term for term the condition of migration 0009's partial index, which serves it."""
UPPER_BOUND_SQL = (
    f"SELECT COALESCE(SUM(cost_nano), 0) AS nano FROM ledger WHERE task_id = ? AND {ESTIMATED}"
)
# Keyset pages on the primary key (task_id, seq): each page costs the same however deep.
LEDGER_PAGE_SQL = (
    f"SELECT seq, {LEDGER_COLUMNS} FROM ledger WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?"
)


@dataclass(frozen=True)
class TaskHead:
    """A task as ``tasks list`` shows it: the ``Task`` fields it reads, its spec and policy
    left unread."""

    id: str
    request: str
    status: str
    persona: str | None
    budget_nano: int
    created_at: datetime


class SqlReads(SqlAccess):
    """The ``Reads`` methods (see ``agentfirm.store.base``)."""

    async def task_heads(self, *, limit: int = 100) -> list[TaskHead]:
        # A negative limit is no limit (as SQLite reads it; Postgres has no such spelling).
        rows = (
            await self._fetch(f"{TASK_HEADS_SQL} LIMIT ?", (limit,))
            if limit >= 0
            else await self._fetch(TASK_HEADS_SQL)
        )
        read_time = self.dialect.read_time
        return [
            TaskHead(
                id=row["id"],
                request=row["request"],
                status=row["status"],
                persona=row["persona"],
                budget_nano=int(row["budget_nano"]),
                created_at=read_time(row["created_at"]),
            )
            for row in rows
        ]

    async def has_task(self, task_id: str) -> bool:
        return bool(await self._fetch_by_key("SELECT 1 FROM tasks WHERE id = ?", (task_id,)))

    async def pending_kinds(self, task_ids: Sequence[str]) -> list[tuple[str, str]]:
        if not task_ids:
            return []
        among, ids = self.dialect.any_of("task_id", task_ids)
        rows = await self._fetch(
            f"SELECT task_id, kind FROM approvals WHERE decision = 'pending' AND {among}"
            " ORDER BY task_id, created_at, id",
            (ids,),
        )
        return [(row["task_id"], row["kind"]) for row in rows]

    async def cost_groups(self, task_id: str) -> tuple[list[CostGroup], int]:
        """The task's running totals (module x tier x provider, in order of first appearance)
        and the part of them booked as upper bounds (cancelled calls), without reading the
        ledger's rows into memory."""
        rows = await self._fetch(COST_GROUPS_SQL, (task_id,))
        bound = await self._fetch(UPPER_BOUND_SQL, (task_id,))
        groups = [
            CostGroup(
                module_id=row["module_id"],
                tier=row["tier"],
                provider=row["provider"],
                cost_nano=int(row["cost_nano"]),
                calls=int(row["calls"]),
                simulated=bool(row["simulated"]),
            )
            for row in rows
        ]
        return groups, int(bound[0]["nano"])

    async def ledger_rows(
        self, task_id: str, *, after_seq: int = 0, limit: int = 500
    ) -> list[tuple[int, LedgerRow]]:
        rows = await self._fetch(LEDGER_PAGE_SQL, (task_id, after_seq, limit))
        read_time = self.dialect.read_time
        return [
            (
                int(row["seq"]),
                LedgerRow(
                    call_id=row["call_id"],
                    module_id=row["module_id"],
                    tier=row["tier"],
                    provider=row["provider"],
                    model=row["model"],
                    input_tokens=int(row["input_tokens"]),
                    cached_input_tokens=int(row["cached_input_tokens"]),
                    output_tokens=int(row["output_tokens"]),
                    cost_nano=int(row["cost_nano"]),
                    latency_ms=int(row["latency_ms"]),
                    outcome=row["outcome"],
                    simulated=bool(row["simulated"]),
                    at=read_time(row["at"]),
                ),
            )
            for row in rows
        ]
