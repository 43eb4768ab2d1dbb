"""Budgets and the ledger (``BudgetLedger``) on any SQL backend: what reads and sets them. The
bookings themselves (``reserve``, ``settle``, ``record_call``, ``release_reservations``) are each
backend's own — they are where the backends differ most (SQLite books by trigger and often inline,
Postgres in single round trips) — and share the checks and warnings below."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import structlog

from agentfirm.domain.models import Budget, CallRow, LedgerEntry, utcnow
from agentfirm.errors import BadInput
from agentfirm.store.sql.access import Dialect, SqlAccess, no_budget, no_task
from agentfirm.store.sql.reads import ESTIMATED, LEDGER_PAGE_SQL
from agentfirm.store.sql.reads import LEDGER_COLUMNS as LEDGER_COLUMNS

log = structlog.get_logger(__name__)

BUDGET_SQL = (
    "SELECT task_id, ceiling_nano, spent_nano, reserved_nano FROM budgets WHERE task_id = ?"
)
# The reads' condition of a "≤" row (agentfirm.store.sql.reads.ESTIMATED), for one row.
_ESTIMATED_ROW = f"task_id = ? AND call_id = ? AND {ESTIMATED}"
_ESTIMATED_SQL = (
    f"SELECT {LEDGER_COLUMNS} FROM ledger WHERE task_id = ? AND {ESTIMATED} ORDER BY seq"
)
# Read from migration 0009's partial index alone: it holds only the "≤" rows.
_ESTIMATING_TASKS_SQL = f"SELECT DISTINCT task_id FROM ledger WHERE {ESTIMATED} ORDER BY task_id"
_REBOOK_SQL = (
    "UPDATE ledger SET input_tokens = ?, cached_input_tokens = ?, output_tokens = ?,"
    f" cost_nano = ? WHERE {_ESTIMATED_ROW} AND cost_nano = ?"
)
# spent follows the ledger: the row's cost moves by the difference (down, usually).
_RESPEND_SQL = "UPDATE budgets SET spent_nano = spent_nano + ?, updated_at = ? WHERE task_id = ?"


class SqlBudgets(SqlAccess):
    """The reading and setting ``BudgetLedger`` methods (see ``agentfirm.store.base``)."""

    async def set_budget(self, task_id: str, ceiling_nano: int) -> Budget:
        if ceiling_nano < 0:
            raise BadInput(f"budget ceiling for task {task_id} is negative: {ceiling_nano}")
        async with self._write() as tx:
            with self.dialect.refusals(missing=no_task(task_id)):
                rows = await tx.rows(
                    "INSERT INTO budgets (task_id, ceiling_nano, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (task_id) DO UPDATE SET ceiling_nano = excluded.ceiling_nano,"
                    " updated_at = excluded.updated_at"
                    " RETURNING task_id, ceiling_nano, spent_nano, reserved_nano",
                    (task_id, ceiling_nano, self.dialect.time(utcnow())),
                )
            await tx.run("UPDATE tasks SET budget_nano = ? WHERE id = ?", (ceiling_nano, task_id))
        log.info("budget.set", task_id=task_id, ceiling_nano=ceiling_nano)
        return self.dialect.load(Budget, rows[0])

    async def get_budget(self, task_id: str) -> Budget:
        rows = await self._fetch_by_key(BUDGET_SQL, (task_id,))
        if not rows:
            raise no_budget(task_id)
        return self.dialect.load(Budget, rows[0])

    async def calls_in_flight(self, task_id: str) -> int:
        rows = await self._fetch(
            "SELECT COUNT(*) AS n FROM reservations WHERE task_id = ?", (task_id,)
        )
        return int(rows[0]["n"])

    async def list_ledger(self, task_id: str) -> list[LedgerEntry]:
        rows = await self._fetch(
            f"SELECT {LEDGER_COLUMNS} FROM ledger WHERE task_id = ? ORDER BY at, seq", (task_id,)
        )
        return [self.dialect.load(LedgerEntry, row) for row in rows]

    async def tasks_with_estimates(self) -> list[str]:
        rows = await self._fetch(_ESTIMATING_TASKS_SQL)
        return [str(row["task_id"]) for row in rows]

    async def estimated_calls(self, task_id: str) -> list[LedgerEntry]:
        rows = await self._fetch(_ESTIMATED_SQL, (task_id,))
        return [self.dialect.load(LedgerEntry, row) for row in rows]

    async def rebook(self, entry: LedgerEntry) -> int | None:
        if entry.cost_nano < 0:
            raise BadInput(f"call {entry.call_id} has a negative cost: {entry.cost_nano}")
        key = (entry.task_id, entry.call_id)
        async with self._write() as tx:
            # Locked until the end (Postgres), so a second rebook of the call waits and then
            # finds the row exact: nothing is moved twice.
            rows = await tx.rows(
                f"SELECT cost_nano FROM ledger WHERE {_ESTIMATED_ROW}{self.dialect.for_update}",
                key,
            )
            if not rows:
                return None
            was = int(rows[0]["cost_nano"])
            usage = (entry.input_tokens, entry.cached_input_tokens, entry.output_tokens)
            if not await tx.run(_REBOOK_SQL, (*usage, entry.cost_nano, *key, was)):
                return None
            if entry.cost_nano != was:
                now = self.dialect.time(utcnow())
                await tx.run(_RESPEND_SQL, (entry.cost_nano - was, now, entry.task_id))
        log.info(
            "ledger.rebooked",
            task_id=entry.task_id,
            call_id=entry.call_id,
            was_nano=was,
            cost_nano=entry.cost_nano,
        )
        return was

    async def ledger_page(
        self, task_id: str, *, after_seq: int = 0, limit: int = 500
    ) -> list[tuple[int, LedgerEntry]]:
        """Up to ``limit`` ledger rows after ``after_seq``, oldest first, each with its seq
        (the next page starts after the last one)."""
        rows = await self._fetch(LEDGER_PAGE_SQL, (task_id, after_seq, limit))
        page = []
        for row in rows:
            data = dict(row)
            seq = int(data.pop("seq"))
            page.append((seq, self.dialect.load(LedgerEntry, data)))
        return page


def ledger_params(d: Dialect, entry: LedgerEntry) -> dict[str, Any]:
    """A ledger row's values by column name, for a booking statement."""
    return {
        "task_id": entry.task_id,
        "call_id": entry.call_id,
        "module_id": entry.module_id,
        "tier": entry.tier,
        "provider": entry.provider,
        "model": entry.model,
        "input_tokens": entry.input_tokens,
        "cached_input_tokens": entry.cached_input_tokens,
        "output_tokens": entry.output_tokens,
        "cost_nano": entry.cost_nano,
        "latency_ms": entry.latency_ms,
        "outcome": entry.outcome,
        "simulated": entry.simulated,
        "error": entry.error,
        "at": d.time(entry.at),
    }


DIED_MID_CALL = "its process died mid-call: booked at its reservation, an upper bound"
"""The error of the row that books a dead holder's reservation (``release_reservations``)."""
BOOKED_DEAD = f"outcome = 'cancelled' AND error = '{DIED_MID_CALL}'"
"""SQL: a ledger row is the booking of a dead holder's reservation."""


def reservation_params(for_call: CallRow | None) -> dict[str, Any]:
    """What a reservation keeps of its call's ledger row, to book it should its holder die
    mid-call (all None: a reservation without a row, dropped at $0 when released)."""
    if for_call is None:
        return {
            "module_id": None,
            "tier": None,
            "provider": None,
            "model": None,
            "simulated": False,
        }
    return {
        "module_id": for_call.module_id,
        "tier": for_call.tier,
        "provider": for_call.provider,
        "model": for_call.model,
        "simulated": for_call.simulated,
    }


def check_reservation(call_id: str, amount_nano: int) -> None:
    if amount_nano < 0:
        raise BadInput(f"reservation for call {call_id} is negative: {amount_nano}")


def check_booking(call_id: str, entry: LedgerEntry) -> None:
    if entry.cost_nano < 0:
        raise BadInput(f"call {entry.call_id} has a negative cost: {entry.cost_nano}")
    if call_id != entry.call_id:
        raise BadInput(f"call {call_id} cannot be settled with the row of {entry.call_id}")


def foreign_reservation(call_id: str, entry: LedgerEntry) -> BadInput:
    return BadInput(f"call {call_id} reserved budget of another task, not of task {entry.task_id}")


def log_refused(task_id: str, call_id: str, amount_nano: int) -> None:
    log.info("budget.refused", task_id=task_id, call_id=call_id, nano=amount_nano)


def log_booking(
    call_id: str, entry: LedgerEntry, *, booked_nano: int, held: bool, settling: bool
) -> None:
    """Warn when a settle found its reservation gone (released under a holder presumed dead but
    only slow): booked all the same, at its actual cost."""
    if settling and not held:
        log.warning(
            "ledger.settle_without_reservation",
            task_id=entry.task_id,
            call_id=call_id,
            cost_nano=booked_nano,
        )


def log_booked_dead(call_id: str, entry: LedgerEntry) -> None:
    """A holder presumed dead but only slow came back to book a call that was already booked
    at its reservation when released: nothing is booked twice, the upper bound stands."""
    log.warning(
        "ledger.settle_after_booked_dead",
        task_id=entry.task_id,
        call_id=call_id,
        cost_nano=entry.cost_nano,
    )


class Reserving(ABC):
    """``reserve`` as both dialects do it — check, hold in one statement, say why not — over the
    dialect's ``_hold``."""

    async def reserve(
        self,
        task_id: str,
        call_id: str,
        amount_nano: int,
        *,
        for_call: CallRow | None = None,
    ) -> bool:
        check_reservation(call_id, amount_nano)
        held, budgeted = await self._hold(task_id, call_id, amount_nano, for_call)
        if held:
            return True
        if not budgeted:
            raise no_budget(task_id)
        log_refused(task_id, call_id, amount_nano)
        return False

    @abstractmethod
    async def _hold(
        self, task_id: str, call_id: str, amount_nano: int, for_call: CallRow | None
    ) -> tuple[bool, bool]:
        """Hold ``amount_nano`` for the call if the ceiling allows: (held, the task has a
        budget). Undone when cancelled; ``BadInput`` when the call holds one already."""
