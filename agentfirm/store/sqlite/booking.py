"""Budget bookings on SQLite (``reserve``, ``settle``, ``record_call``, ``release_reservations``),
and their inline fast path (``BooksInline``), as a mixin of ``SQLiteStore``.

Each booking is one writing statement with ``RETURNING`` in its own implicit transaction; the
budget's running totals follow by trigger (migration 0003), so the check and the hold, or the
ledger row and the spend, cannot be separated by another writer. Usually run inline on the event
loop: see ``_book_one`` and ``inline``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from agentfirm.domain.models import CallRow, LedgerEntry, utcnow
from agentfirm.errors import BadInput, disk_full
from agentfirm.store.sql import budgets
from agentfirm.store.sql.access import SqlAccess
from agentfirm.store.sqlite.conn import to_db_time
from agentfirm.store.sqlite.found_whole import OwnWrites
from agentfirm.store.sqlite.inline import InlineWrites

_RESERVE_SQL = (
    "INSERT INTO reservations (call_id, task_id, amount_nano, created_at, module_id, tier,"
    " provider, model, simulated)"
    " SELECT :call_id, task_id, :amount, :now, :module_id, :tier, :provider, :model, :simulated"
    " FROM budgets WHERE task_id = :task_id AND spent_nano + reserved_nano + :amount"
    " <= ceiling_nano RETURNING call_id"
)
# The call is about to be sent: its reservation takes its row (booked should its holder die).
_MARK_SENT_SQL = (
    "UPDATE reservations SET module_id = :module_id, tier = :tier, provider = :provider,"
    " model = :model, simulated = :simulated WHERE call_id = :call_id RETURNING call_id"
)
_UNRESERVE_SQL = (
    "DELETE FROM reservations WHERE call_id = :call_id AND created_at = :now RETURNING call_id"
)
# Numbered parameters: ?1 the task, ?2 the cutoff (NULL: every reservation), ?3 error, ?4 at.
_DEAD_HOLDS = "task_id = ?1 AND (?2 IS NULL OR created_at <= ?2)"
# A dead holder's reservations that carry their call's row become ledger rows at their amount
# (the triggers of migration 0003 drop each reservation and spend it). SQLite reads the whole
# SELECT into a temporary table before inserting, as it reads the table it inserts into, so
# the seqs from one MAX(seq) are consecutive and the triggers' deletes do not disturb the scan.
_BOOK_DEAD_SQL = (
    "INSERT INTO ledger (task_id, seq, call_id, module_id, tier, provider, model, cost_nano,"
    " outcome, simulated, error, at)"
    " SELECT task_id, (SELECT COALESCE(MAX(seq), 0) FROM ledger WHERE task_id = ?1)"
    " + ROW_NUMBER() OVER (ORDER BY created_at, call_id), call_id, module_id, tier, provider,"
    " model, amount_nano, 'cancelled', simulated, ?3, ?4"
    f" FROM reservations WHERE {_DEAD_HOLDS} AND tier IS NOT NULL"
)
# seq numbers the task's rows from 1; the cost is what the provider reported, never clamped to
# the reservation (the ledger is the bill; the router announces an overrun).
_BOOK_SQL = (
    "INSERT INTO ledger (task_id, seq, call_id, module_id, tier, provider, model,"
    " input_tokens, cached_input_tokens, output_tokens, cost_nano, latency_ms, outcome,"
    " simulated, error, at)"
    " SELECT :task_id, seq, :call_id, :module_id, :tier, :provider,"
    " :model, :input_tokens, :cached_input_tokens, :output_tokens, :cost_nano,"
    " :latency_ms, :outcome, :simulated, :error, :at"
    " FROM (SELECT COALESCE(MAX(seq), 0) + 1 AS seq FROM ledger WHERE task_id = :task_id)"
    # A call already booked for its dead holder (``release_reservations``) is not booked again
    # when the holder turns out to have been only slow: its upper bound stands.
    f" WHERE NOT EXISTS (SELECT 1 FROM ledger WHERE call_id = :call_id AND {budgets.BOOKED_DEAD})"
    # ``held``: RETURNING is computed before the AFTER INSERT trigger drops the reservation
    # (pinned by the conformance suite's warning tests).
    " RETURNING cost_nano,"
    " EXISTS (SELECT 1 FROM reservations WHERE call_id = :call_id) AS held"
)
_FOREIGN_RESERVATION = "agentfirm: call reserved budget of another task"
"""The message of migration 0003's trigger refusing a row for another task's reservation."""


class SQLiteBooking(budgets.Reserving, SqlAccess):
    """The booking methods of ``SQLiteStore`` (see ``agentfirm.store.base.BudgetLedger`` and
    ``BooksInline``)."""

    path: Path
    _lock: asyncio.Lock
    _inline: InlineWrites
    _own: OwnWrites

    @abstractmethod
    def _conn(self) -> aiosqlite.Connection:
        """The shared connection; raises when the store is not open (or found damaged)."""

    @abstractmethod
    def _noticing_damage(self) -> AbstractContextManager[None]:
        """SQLite saying the file is damaged, in the block, is ``DamagedFile`` naming it."""

    async def _book_one(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any], *, inline: bool = True
    ) -> list[sqlite3.Row]:
        """Run one budget booking (a writing statement with ``RETURNING``) as its own implicit
        transaction.

        Inline first: when the write lock is free this very instant, the booking runs on the
        event loop's thread, on a connection that never waits for the lock (tens of
        microseconds; a trip to the shared connection's thread costs a thread switch each way,
        which on a busy machine was most of what the router added to a call). When the lock is
        taken — by our own connection (``self._lock``) or another process — it goes through the
        shared connection and waits there like every other write — inline again, if it can,
        once its turn comes."""
        try:
            tried = inline and not self._lock.locked()
            if tried:
                rows = self._book_inline(sql, params)
                if rows is not None:
                    return rows
            async with self._lock:
                # Refused inline a moment ago (busy, or its turn to checkpoint): the slow way.
                rows = self._book_inline(sql, params) if inline and not tried else None
                if rows is None:
                    with self._own.writing():
                        rows = list(await self._conn().execute_fetchall(sql, params))
                    self._inline.wrote_slowly()
                return rows
        except sqlite3.DatabaseError as err:
            full = disk_full(err, self.path)
            if full is not None:
                raise full from None
            with self._noticing_damage():
                raise

    def _book_inline(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any]
    ) -> list[sqlite3.Row] | None:
        """The booking's rows, or None when the write lock is busy (nothing was written)."""
        self._conn()  # raises when the store is not open, or was found damaged
        try:
            return self._inline.rows(sql, params)
        except sqlite3.DatabaseError:
            # Entered on failure only: a generator context manager around every booking cost
            # a few microseconds, twice a router call.
            with self._noticing_damage():
                raise

    def reserve_now(
        self,
        task_id: str,
        call_id: str,
        amount_nano: int,
        *,
        for_call: CallRow | None = None,
    ) -> bool:
        """Hold ``amount_nano`` for ``call_id`` this instant, inline, if the write lock is free and
        it fits; False when nothing was held (busy, over the ceiling or no budget): ``reserve``
        then waits its turn and says which. See ``BooksInline``."""
        budgets.check_reservation(call_id, amount_nano)
        if self._lock.locked():
            return False
        params = _reserve_params(task_id, call_id, amount_nano, for_call)
        try:
            held = self._book_inline(_RESERVE_SQL, params)
        except sqlite3.IntegrityError as err:
            raise BadInput(f"call {call_id} already holds a reservation") from err
        return bool(held)

    async def _hold(
        self, task_id: str, call_id: str, amount_nano: int, for_call: CallRow | None
    ) -> tuple[bool, bool]:
        params = _reserve_params(task_id, call_id, amount_nano, for_call)
        try:
            # One statement: the ceiling check and the hold (the budget's reserved total follows
            # by trigger, migration 0003) cannot be separated by another writer.
            held = await self._book_one(_RESERVE_SQL, params)
        except sqlite3.IntegrityError as err:
            raise BadInput(f"call {call_id} already holds a reservation") from err
        except asyncio.CancelledError:
            # The INSERT runs to its end in the connection's thread even though we stopped
            # waiting for it; the DELETE queued behind it undoes it (and only it: same call, same
            # instant), so a cancelled reserve holds nothing. Shielded: a second cancellation
            # must not stop the undo.
            await asyncio.shield(
                self._book_one(
                    _UNRESERVE_SQL,
                    {"call_id": call_id, "now": params["now"]},
                    inline=False,  # behind the INSERT, on the thread that runs it
                )
            )
            raise
        if held:
            return True, True
        return False, bool(await self._fetch(budgets.BUDGET_SQL, (task_id,)))

    def mark_sent_now(self, call_id: str, for_call: CallRow) -> bool | None:
        """``mark_sent``, inline, if the write lock is free this instant; None when nothing was
        written (``mark_sent`` then waits its turn). See ``BooksInline``."""
        if self._lock.locked():
            return None
        rows = self._book_inline(_MARK_SENT_SQL, _sent_params(call_id, for_call))
        return None if rows is None else bool(rows)

    async def mark_sent(self, call_id: str, for_call: CallRow) -> bool:
        return bool(await self._book_one(_MARK_SENT_SQL, _sent_params(call_id, for_call)))

    def settle_now(self, call_id: str, entry: LedgerEntry) -> bool:
        """``settle``, inline, if the write lock is free this instant; False when nothing was
        written (``settle`` then waits its turn). See ``BooksInline``."""
        return self._book_now(call_id, entry, settling=True)

    def record_call_now(self, entry: LedgerEntry) -> bool:
        """``record_call``, inline, if the write lock is free this instant; False when nothing
        was written. See ``BooksInline``."""
        return self._book_now(entry.call_id, entry, settling=False)

    async def settle(self, call_id: str, entry: LedgerEntry) -> None:
        await self._book(call_id, entry, settling=True)

    async def record_call(self, entry: LedgerEntry) -> None:
        await self._book(entry.call_id, entry, settling=False)

    def _book_now(self, call_id: str, entry: LedgerEntry, *, settling: bool) -> bool:
        budgets.check_booking(call_id, entry)
        if self._lock.locked():
            return False
        try:
            rows = self._book_inline(_BOOK_SQL, budgets.ledger_params(self.dialect, entry))
        except sqlite3.IntegrityError:
            with _foreign_reservation_is_bad_input(call_id, entry):  # on failure only, as above
                raise
        if rows is None:
            return False
        _log_booked(rows, call_id, entry, settling=settling)
        return True

    async def _book(self, call_id: str, entry: LedgerEntry, *, settling: bool) -> None:
        """Insert the ledger row at its cost as reported (see ``Store.settle``); by trigger
        (migration 0003), in the same statement, the reservation is dropped and the booked cost
        spent, so the ledger always sums to spent."""
        budgets.check_booking(call_id, entry)
        with _foreign_reservation_is_bad_input(call_id, entry):
            rows = await self._book_one(_BOOK_SQL, budgets.ledger_params(self.dialect, entry))
        _log_booked(rows, call_id, entry, settling=settling)

    async def release_reservations(
        self, task_id: str, *, older_than: timedelta | None = None
    ) -> int:
        now = utcnow()
        cutoff = to_db_time(now - older_than) if older_than is not None else None
        # One transaction: the dead calls' rows booked, then what is left (reservations made
        # without their call's row) dropped at $0.
        async with self._write() as tx:
            booked = await tx.run(
                _BOOK_DEAD_SQL, (task_id, cutoff, budgets.DIED_MID_CALL, to_db_time(now))
            )
            dropped = await tx.rows(
                f"DELETE FROM reservations WHERE {_DEAD_HOLDS} RETURNING call_id", (task_id, cutoff)
            )
        return booked + len(dropped)


def _reserve_params(
    task_id: str, call_id: str, amount_nano: int, for_call: CallRow | None
) -> dict[str, Any]:
    return {
        "call_id": call_id,
        "task_id": task_id,
        "amount": amount_nano,
        "now": to_db_time(utcnow()),
        **budgets.reservation_params(for_call),
    }


def _sent_params(call_id: str, for_call: CallRow) -> dict[str, Any]:
    return {"call_id": call_id, **budgets.reservation_params(for_call)}


@contextmanager
def _foreign_reservation_is_bad_input(call_id: str, entry: LedgerEntry) -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as err:
        if _FOREIGN_RESERVATION not in str(err):
            raise
        raise budgets.foreign_reservation(call_id, entry) from err


def _log_booked(
    rows: list[sqlite3.Row], call_id: str, entry: LedgerEntry, *, settling: bool
) -> None:
    if not rows:
        budgets.log_booked_dead(call_id, entry)
        return
    booked, held = int(rows[0]["cost_nano"]), bool(rows[0]["held"])
    budgets.log_booking(call_id, entry, booked_nano=booked, held=held, settling=settling)
