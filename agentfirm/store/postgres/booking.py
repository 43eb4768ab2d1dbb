"""Budget bookings on PostgreSQL (``reserve``, ``settle``, ``record_call``,
``release_reservations``), as a mixin of ``PostgresStore``.

Each booking is one statement in its own (autocommit) transaction: one round trip, and no lock
held while the client thinks. ``reserve`` and ``settle`` call functions of migration 0009, whose
statements the server plans once per session (a statement sent as text is planned on every
call), and go through a ``Batcher`` each per task (``batching``): alone when nothing else of the
task is booking; those asked while one is on its way go together as the next, through the batch
functions of migration 0010. Concurrent calls of one task meet on its budget row only for the
instant of a statement and its commit: the ceiling check and the hold are one conditional
``UPDATE``; a settle releases the reservation, numbers the task's ledger row from its counter
row (migration 0006), writes it and spends its cost, the budget row last.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from agentfirm.domain.models import CallRow, LedgerEntry, utcnow
from agentfirm.errors import BadInput
from agentfirm.store.postgres.batching import PerKey, Refused
from agentfirm.store.postgres.conn import Params
from agentfirm.store.sql import budgets
from agentfirm.store.sql.access import SqlAccess

# The hold, only when it fits, and whether the task has a budget at all (refused: which reason);
# the booking of a call's cost. Each a function of migration 0009, whose statements the server
# plans once per session instead of once per call.
_RESERVE_SQL = (
    "SELECT held, budgeted FROM agentfirm_reserve(%(task_id)s, %(call_id)s, %(amount)s, %(now)s,"
    " %(module_id)s, %(tier)s, %(provider)s, %(model)s, %(simulated)s)"
)
_BOOK_SQL = (
    "SELECT cost_nano, held, foreign_task FROM agentfirm_book(%(task_id)s, %(call_id)s,"
    " %(module_id)s, %(tier)s, %(provider)s, %(model)s, %(input_tokens)s,"
    " %(cached_input_tokens)s, %(output_tokens)s, %(cost_nano)s, %(latency_ms)s, %(outcome)s,"
    " %(simulated)s, %(error)s, %(at)s, %(now)s, %(booked_dead)s)"
)
# The call is about to be sent: its reservation takes its row (booked should its holder die).
_MARK_SENT_SQL = (
    "UPDATE reservations SET module_id = %(module_id)s, tier = %(tier)s,"
    " provider = %(provider)s, model = %(model)s, simulated = %(simulated)s"
    " WHERE call_id = %(call_id)s RETURNING call_id"
)
# The same for a batch of calls (migration 0010): one JSON document, a row per item.
_RESERVE_MANY_SQL = "SELECT idx, held, budgeted, duplicate FROM agentfirm_reserve_many(%s)"
_BOOK_MANY_SQL = "SELECT idx, cost_nano, held, foreign_task FROM agentfirm_book_many(%s, %s, %s)"
_UNDO_RESERVE_SQL = (
    "WITH gone AS (DELETE FROM reservations WHERE call_id = %(call_id)s"
    " AND created_at = %(now)s RETURNING task_id, amount_nano),"
    " freed AS (UPDATE budgets b SET reserved_nano = b.reserved_nano - gone.amount_nano"
    " FROM gone WHERE b.task_id = gone.task_id)"
    " SELECT COUNT(*) AS n FROM gone"
)
# A dead holder's reservations: those with their call's row (``dead``) become ledger rows at
# their amount, numbered after the task's last (one bump of its counter row), and spent; the
# others are dropped at $0. One statement, so nothing is half-released.
_RELEASE_SQL = (
    "WITH gone AS (DELETE FROM reservations WHERE task_id = %(task_id)s"
    " AND created_at <= COALESCE(%(cutoff)s::timestamptz, created_at) RETURNING *),"
    " dead AS (SELECT gone.*, ROW_NUMBER() OVER (ORDER BY created_at, call_id) AS rn FROM gone"
    " WHERE tier IS NOT NULL),"
    " total AS (SELECT COUNT(*) AS n, COALESCE(SUM(amount_nano), 0)::BIGINT AS nano FROM gone),"
    " billed AS (SELECT COUNT(*) AS n, COALESCE(SUM(amount_nano), 0)::BIGINT AS nano FROM dead),"
    " numbered AS (INSERT INTO ledger_counters AS c (task_id, last_seq)"
    " SELECT %(task_id)s, billed.n FROM billed WHERE billed.n > 0"
    " ON CONFLICT (task_id) DO UPDATE SET last_seq = c.last_seq + excluded.last_seq"
    " RETURNING last_seq),"
    f" written AS (INSERT INTO ledger (seq, {budgets.LEDGER_COLUMNS})"
    " SELECT (numbered.last_seq - billed.n + dead.rn)::INTEGER, dead.task_id, dead.call_id,"
    " dead.module_id, dead.tier, dead.provider, dead.model, 0, 0, 0, dead.amount_nano, 0,"
    " 'cancelled', dead.simulated, %(error)s, %(now)s FROM dead, numbered, billed),"
    " freed AS (UPDATE budgets b SET reserved_nano = b.reserved_nano - total.nano,"
    " spent_nano = b.spent_nano + billed.nano, updated_at = %(now)s FROM total, billed"
    " WHERE b.task_id = %(task_id)s AND total.n > 0)"
    " SELECT n FROM total"
)


class PostgresBooking(budgets.Reserving, SqlAccess):
    """The booking methods of ``PostgresStore`` (see ``agentfirm.store.base.BudgetLedger``).
    Reserves and settles go through a ``Batcher`` each per task: alone when nothing else of
    the task is booking, together when its calls book at once."""

    def __init__(self) -> None:
        self._reserving = PerKey(self._reserve_one, self._reserve_many)
        self._booking = PerKey(self._book_one, self._book_many)

    @abstractmethod
    async def query(self, sql: str, params: Params = ()) -> list[DictRow]:
        """The rows of one statement, committed on its own."""

    async def _one(self, sql: str, params: dict[str, Any]) -> DictRow:
        """The one row of one statement run as its own transaction (one round trip)."""
        return (await self.query(sql, params))[0]

    async def _hold(
        self, task_id: str, call_id: str, amount_nano: int, for_call: CallRow | None
    ) -> tuple[bool, bool]:
        params = {
            "amount": amount_nano,
            "now": utcnow(),
            "task_id": task_id,
            "call_id": call_id,
            **budgets.reservation_params(for_call),
        }
        # Cancelled: undo this very hold (same call, same instant) and only it, if it was made.
        row = await self._reserving.run(
            task_id, params, undo=lambda: self._one(_UNDO_RESERVE_SQL, params)
        )
        if row["duplicate"]:
            raise BadInput(f"call {call_id} already holds a reservation")
        return bool(row["held"]), bool(row["budgeted"])

    async def _reserve_one(self, params: dict[str, Any]) -> DictRow:
        try:
            row = await self._one(_RESERVE_SQL, params)
        except pg_errors.UniqueViolation:
            return {"held": False, "budgeted": True, "duplicate": True}
        return {**row, "duplicate": False}

    async def _reserve_many(self, items: Sequence[dict[str, Any]]) -> list[DictRow]:
        batch = [{**item, "now": item["now"].isoformat(), "idx": i} for i, item in enumerate(items)]
        try:
            rows = await self.query(_RESERVE_MANY_SQL, (Jsonb(batch),))
        except psycopg.Error as err:
            raise _refused(err) from err
        return _in_order(rows, len(items))

    async def mark_sent(self, call_id: str, for_call: CallRow) -> bool:
        params = {"call_id": call_id, **budgets.reservation_params(for_call)}
        return bool(await self.query(_MARK_SENT_SQL, params))

    async def settle(self, call_id: str, entry: LedgerEntry) -> None:
        await self._book(call_id, entry, settling=True)

    async def record_call(self, entry: LedgerEntry) -> None:
        await self._book(entry.call_id, entry, settling=False)

    async def _book(self, call_id: str, entry: LedgerEntry, *, settling: bool) -> None:
        budgets.check_booking(call_id, entry)
        row = await self._booking.run(entry.task_id, budgets.ledger_params(self.dialect, entry))
        if row["foreign_task"]:
            raise budgets.foreign_reservation(call_id, entry)
        if row["cost_nano"] is None:
            budgets.log_booked_dead(call_id, entry)
            return
        budgets.log_booking(
            call_id, entry, booked_nano=row["cost_nano"], held=row["held"], settling=settling
        )

    async def _book_one(self, params: dict[str, Any]) -> DictRow:
        return await self._one(
            _BOOK_SQL, {**params, "now": utcnow(), "booked_dead": budgets.DIED_MID_CALL}
        )

    async def _book_many(self, items: Sequence[dict[str, Any]]) -> list[DictRow]:
        if len({item["call_id"] for item in items}) < len(items):
            raise Refused  # the same call twice: each must see the other's booking
        batch = [{**item, "at": item["at"].isoformat(), "idx": i} for i, item in enumerate(items)]
        try:
            rows = await self.query(_BOOK_MANY_SQL, (Jsonb(batch), utcnow(), budgets.DIED_MID_CALL))
        except psycopg.Error as err:
            raise _refused(err) from err
        return _in_order(rows, len(items))

    async def release_reservations(
        self, task_id: str, *, older_than: timedelta | None = None
    ) -> int:
        now = utcnow()
        cutoff = now - older_than if older_than is not None else None
        params = {"task_id": task_id, "cutoff": cutoff, "now": now, "error": budgets.DIED_MID_CALL}
        row = await self._one(_RELEASE_SQL, params)
        return int(row["n"])


def _in_order(rows: Sequence[DictRow], count: int) -> list[DictRow]:
    """A batch's rows in its items' order (the server answers in its own)."""
    by_idx = {int(row["idx"]): row for row in rows}
    return [by_idx[i] for i in range(count)]


def _refused(err: psycopg.Error) -> Exception:
    """What a batch's failure means: ``Refused`` (each item goes again alone) when nothing of it
    was written — the server refused it, or psycopg before sending it — and the error itself when
    the connection failed, as then whether it was written is unknown."""
    lost = isinstance(err, psycopg.OperationalError | psycopg.InterfaceError)
    return err if lost and err.sqlstate is None else Refused()
