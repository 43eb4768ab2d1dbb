"""The embedded system of record: one SQLite file, shared by the daemon and a notebook runner.

Every write is one ``BEGIN IMMEDIATE`` transaction (see ``sqlite_conn``), so concurrent writers, in
this process or another, serialise and never see each other's half-done work. The router's budget
bookings are single statements instead (their running totals kept by triggers), usually run inline
on the event loop: see ``_book_one``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite
import structlog

from agentfirm.domain import (
    Approval,
    ApprovalDecision,
    Artifact,
    Budget,
    Event,
    LedgerEntry,
    ModuleRun,
    Task,
    TaskStatus,
    Transition,
    utcnow,
)
from agentfirm.errors import BadInput, NotFound
from agentfirm.master.lifecycle import check_transition
from agentfirm.store.migrate import load_migrations, migrate
from agentfirm.store.sqlite_conn import (
    SQLiteMigrationTarget,
    execute,
    immediate_transaction,
    open_sqlite,
    to_db_time,
)
from agentfirm.store.sqlite_leases import SQLiteLeases
from agentfirm.store.sqlite_rows import (
    approval_from_row,
    artifact_from_row,
    budget_from_row,
    event_from_row,
    ledger_entry_from_row,
    module_run_from_row,
    opt_to_db_time,
    task_from_row,
    transition_from_row,
)

log = structlog.get_logger(__name__)

_TASKS_HINT = "run `agentfirm tasks list` to see task ids"


def _is_foreign_key_error(err: sqlite3.IntegrityError) -> bool:
    return err.sqlite_errorname == "SQLITE_CONSTRAINT_FOREIGNKEY"


def _no_task(task_id: str) -> NotFound:
    return NotFound(f"task {task_id} not found", hint=_TASKS_HINT)


class SQLiteStore(SQLiteLeases):
    """``Store`` on one SQLite file (see ``agentfirm.store.base.Store`` for each method's contract).

    Beyond the protocol: ``set_budget`` also sets the task's ``budget_nano``; ``reserve`` and
    ``get_budget`` raise ``NotFound`` when the task has no budget; a negative amount of money is
    ``BadInput``; writes that name a missing task raise ``NotFound``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._booker: sqlite3.Connection | None = None  # see _book_one
        self._inline_bookings = 0

    async def open(self) -> None:
        if self._db is not None:
            return
        migrations = await asyncio.to_thread(load_migrations)
        self._db = await open_sqlite(self.path)
        try:
            async with self._write() as db:
                await migrate(SQLiteMigrationTarget(db), migrations)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Wait for the operation in flight, then close; idempotent."""
        async with self._lock:
            if self._booker is not None:
                booker, self._booker = self._booker, None
                booker.close()
            if self._db is not None:
                db, self._db = self._db, None
                await db.close()

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError(f"store {self.path} is not open: call open() first")
        return self._db

    def _write(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        return immediate_transaction(self._conn(), self._lock)

    async def _fetch(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        async with self._lock:
            return list(await self._conn().execute_fetchall(sql, tuple(params)))

    # tasks and lifecycle

    async def create_task(self, task: Task, *, actor: str) -> None:
        check_transition(task.id, None, task.status)
        async with self._write() as db:
            try:
                await execute(
                    db,
                    "INSERT INTO tasks (id, request, status, persona, budget_nano, spec, repo_path,"
                    " deliverable_path, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (task.id, task.request, task.status.value, *self._task_fields(task)),
                )
            except sqlite3.IntegrityError as err:
                raise BadInput(f"task {task.id} already exists", hint=_TASKS_HINT) from err
            await self._insert_transition(
                db, task.id, None, task.status, actor, "created", utcnow()
            )

    @staticmethod
    def _task_fields(task: Task) -> tuple[Any, ...]:
        spec = None if task.spec is None else task.spec.model_dump_json()
        return (
            task.persona,
            task.budget_nano,
            spec,
            task.repo_path,
            task.deliverable_path,
            to_db_time(task.created_at),
            to_db_time(task.updated_at),
        )

    async def get_task(self, task_id: str) -> Task:
        rows = await self._fetch("SELECT * FROM tasks WHERE id = ?", (task_id,))
        if not rows:
            raise _no_task(task_id)
        return task_from_row(rows[0])

    async def list_tasks(self, *, limit: int = 100) -> list[Task]:
        rows = await self._fetch(
            "SELECT * FROM tasks ORDER BY created_at DESC, id DESC LIMIT ?", (limit,)
        )
        return [task_from_row(row) for row in rows]

    async def save_task(self, task: Task) -> None:
        async with self._write() as db:
            changed = await execute(
                db,
                "UPDATE tasks SET persona = ?, budget_nano = ?, spec = ?, repo_path = ?,"
                " deliverable_path = ?, created_at = ?, updated_at = ?, request = ? WHERE id = ?",
                (*self._task_fields(task), task.request, task.id),
            )
            if changed == 0:
                raise _no_task(task.id)

    async def transition(
        self, task_id: str, to: TaskStatus, *, actor: str, reason: str = ""
    ) -> Transition:
        async with self._write() as db:
            rows = list(
                await db.execute_fetchall("SELECT status FROM tasks WHERE id = ?", (task_id,))
            )
            if not rows:
                raise _no_task(task_id)
            from_status = TaskStatus(rows[0]["status"])
            check_transition(task_id, from_status, to)
            at = utcnow()
            await execute(
                db,
                "UPDATE tasks SET status = ?, updated_at = ? WHERE id = ?",
                (to.value, to_db_time(at), task_id),
            )
            done = await self._insert_transition(db, task_id, from_status, to, actor, reason, at)
        log.info("task.transition", task_id=task_id, from_status=from_status, to=to, actor=actor)
        return done

    @staticmethod
    async def _insert_transition(
        db: aiosqlite.Connection,
        task_id: str,
        from_status: TaskStatus | None,
        to: TaskStatus,
        actor: str,
        reason: str,
        at: datetime,
    ) -> Transition:
        await execute(
            db,
            "INSERT INTO transitions (task_id, seq, from_status, to_status, actor, reason, at)"
            " SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ?"
            " FROM transitions WHERE task_id = ?",
            (
                task_id,
                None if from_status is None else from_status.value,
                to.value,
                actor,
                reason,
                to_db_time(at),
                task_id,
            ),
        )
        return Transition(
            task_id=task_id,
            from_status=from_status,
            to_status=to,
            actor=actor,
            reason=reason,
            at=at,
        )

    async def list_transitions(self, task_id: str) -> list[Transition]:
        rows = await self._fetch(
            "SELECT * FROM transitions WHERE task_id = ? ORDER BY seq", (task_id,)
        )
        return [transition_from_row(row) for row in rows]

    # modules and artifacts

    async def upsert_module_run(self, run: ModuleRun) -> None:
        async with self._write() as db:
            try:
                await execute(db, _UPSERT_MODULE_RUN_SQL, _module_run_params(run))
            except sqlite3.IntegrityError as err:
                raise _no_task(run.task_id) from err

    async def list_module_runs(self, task_id: str) -> list[ModuleRun]:
        rows = await self._fetch(
            "SELECT * FROM module_runs WHERE task_id = ? ORDER BY wave, module_id", (task_id,)
        )
        return [module_run_from_row(row) for row in rows]

    async def save_artifact(self, artifact: Artifact, *, run: ModuleRun | None = None) -> None:
        """Raise ``BadInput`` when that version already exists."""
        async with self._write() as db:
            try:
                await execute(
                    db,
                    "INSERT INTO artifacts (task_id, module_id, version, output_type, content,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        artifact.task_id,
                        artifact.module_id,
                        artifact.version,
                        artifact.output_type,
                        json.dumps(artifact.content),
                        to_db_time(artifact.created_at),
                    ),
                )
                if run is not None:
                    await execute(db, _UPSERT_MODULE_RUN_SQL, _module_run_params(run))
            except sqlite3.IntegrityError as err:
                if _is_foreign_key_error(err):
                    raise _no_task(artifact.task_id) from err
                raise BadInput(
                    f"artifact {artifact.module_id} v{artifact.version} of task"
                    f" {artifact.task_id} already exists",
                    hint="save the new output as the next version",
                ) from err

    async def latest_artifacts(self, task_id: str) -> dict[str, Artifact]:
        rows = await self._fetch(
            "SELECT a.* FROM artifacts a JOIN (SELECT module_id, MAX(version) AS version"
            " FROM artifacts WHERE task_id = ? GROUP BY module_id) latest"
            " ON a.module_id = latest.module_id AND a.version = latest.version"
            " WHERE a.task_id = ?",
            (task_id, task_id),
        )
        return {row["module_id"]: artifact_from_row(row) for row in rows}

    # budget and ledger

    async def set_budget(self, task_id: str, ceiling_nano: int) -> Budget:
        if ceiling_nano < 0:
            raise BadInput(f"budget ceiling for task {task_id} is negative: {ceiling_nano}")
        now = to_db_time(utcnow())
        async with self._write() as db:
            try:
                await execute(
                    db,
                    "INSERT INTO budgets (task_id, ceiling_nano, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (task_id) DO UPDATE SET ceiling_nano = excluded.ceiling_nano,"
                    " updated_at = excluded.updated_at",
                    (task_id, ceiling_nano, now),
                )
            except sqlite3.IntegrityError as err:
                raise _no_task(task_id) from err
            await execute(
                db, "UPDATE tasks SET budget_nano = ? WHERE id = ?", (ceiling_nano, task_id)
            )
            rows = list(await db.execute_fetchall(_BUDGET_SQL, (task_id,)))
        log.info("budget.set", task_id=task_id, ceiling_nano=ceiling_nano)
        return budget_from_row(rows[0])

    async def get_budget(self, task_id: str) -> Budget:
        rows = await self._fetch(_BUDGET_SQL, (task_id,))
        if not rows:
            raise _no_budget(task_id)
        return budget_from_row(rows[0])

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
        shared connection and waits there like every other write."""
        if inline and not self._lock.locked():
            rows = self._book_inline(sql, params)
            if rows is not None:
                return rows
        async with self._lock:
            return list(await self._conn().execute_fetchall(sql, params))

    def _book_inline(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any]
    ) -> list[sqlite3.Row] | None:
        """The booking's rows, or None when the write lock is busy (nothing was written)."""
        booker = self._booker
        if booker is None:
            self._conn()  # raises when the store is not open
            booker = self._booker = _open_booker(self.path)
        self._inline_bookings += 1
        if self._inline_bookings % _CHECKPOINT_EVERY == 0:
            # The booker never checkpoints (that fsyncs: not on the event loop); now and then a
            # booking goes through the shared connection, whose commit checkpoints a WAL grown
            # past its limit, so the WAL stays bounded even when bookings are all that is written.
            return None
        try:
            return booker.execute(sql, params).fetchall()
        except sqlite3.OperationalError as err:
            if err.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return None
            raise

    def reserve_now(self, task_id: str, call_id: str, amount_nano: int) -> bool:
        """Hold ``amount_nano`` for ``call_id`` this instant, inline, if the write lock is free and
        it fits; False when nothing was held (busy, over the ceiling or no budget): ``reserve``
        then waits its turn and says which. See ``BooksInline``."""
        if amount_nano < 0:
            raise BadInput(f"reservation for call {call_id} is negative: {amount_nano}")
        if self._lock.locked():
            return False
        try:
            held = self._book_inline(
                _RESERVE_SQL, (call_id, amount_nano, to_db_time(utcnow()), task_id, amount_nano)
            )
        except sqlite3.IntegrityError as err:
            raise BadInput(f"call {call_id} already holds a reservation") from err
        return bool(held)

    async def reserve(self, task_id: str, call_id: str, amount_nano: int) -> bool:
        if amount_nano < 0:
            raise BadInput(f"reservation for call {call_id} is negative: {amount_nano}")
        now = to_db_time(utcnow())
        try:
            # One statement: the ceiling check and the hold (the budget's reserved total follows
            # by trigger, migration 0003) cannot be separated by another writer.
            held = await self._book_one(
                _RESERVE_SQL, (call_id, amount_nano, now, task_id, amount_nano)
            )
        except sqlite3.IntegrityError as err:
            raise BadInput(f"call {call_id} already holds a reservation") from err
        except asyncio.CancelledError:
            # The INSERT runs to its end in the connection's thread even though we stopped
            # waiting for it; the DELETE queued behind it undoes it (and only it: same call, same
            # instant), so a cancelled reserve holds nothing. Shielded: a second cancellation
            # must not stop the undo.
            await asyncio.shield(
                self._book_one(
                    "DELETE FROM reservations WHERE call_id = ? AND created_at = ?"
                    " RETURNING call_id",
                    (call_id, now),
                    inline=False,  # behind the INSERT, on the thread that runs it
                )
            )
            raise
        if held:
            return True
        if not await self._fetch(_BUDGET_SQL, (task_id,)):
            raise _no_budget(task_id)
        log.info("budget.refused", task_id=task_id, call_id=call_id, nano=amount_nano)
        return False

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
        _check_booking(call_id, entry)
        if self._lock.locked():
            return False
        with _foreign_reservation_is_bad_input(call_id, entry):
            rows = self._book_inline(_BOOK_SQL, _ledger_params(entry))
        if rows is None:
            return False
        _log_booking(rows, call_id, entry, settling=settling)
        return True

    async def _book(self, call_id: str, entry: LedgerEntry, *, settling: bool) -> None:
        """Insert the ledger row with its cost clamped to what ``call_id`` reserved, so spend
        cannot pass the ceiling (nothing reserved any more: the actual cost, see
        ``Store.settle``); by trigger (migration 0003), in the same statement, the reservation
        is dropped and the booked cost spent, so the ledger always sums to spent."""
        _check_booking(call_id, entry)
        with _foreign_reservation_is_bad_input(call_id, entry):
            rows = await self._book_one(_BOOK_SQL, _ledger_params(entry))
        _log_booking(rows, call_id, entry, settling=settling)

    async def release_reservations(
        self, task_id: str, *, older_than: timedelta | None = None
    ) -> int:
        if older_than is None:
            gone = await self._book_one(
                "DELETE FROM reservations WHERE task_id = ? RETURNING call_id", (task_id,)
            )
        else:
            gone = await self._book_one(
                "DELETE FROM reservations WHERE task_id = ? AND created_at <= ? RETURNING call_id",
                (task_id, to_db_time(utcnow() - older_than)),
            )
        return len(gone)

    async def list_ledger(self, task_id: str) -> list[LedgerEntry]:
        rows = await self._fetch(
            "SELECT * FROM ledger WHERE task_id = ? ORDER BY at, seq", (task_id,)
        )
        return [ledger_entry_from_row(row) for row in rows]

    # approvals

    async def create_approval(self, approval: Approval) -> None:
        async with self._write() as db:
            try:
                await execute(
                    db,
                    "INSERT INTO approvals (id, task_id, kind, decision, actor, notes, payload,"
                    " created_at, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        approval.id,
                        approval.task_id,
                        approval.kind,
                        approval.decision,
                        approval.actor,
                        approval.notes,
                        json.dumps(approval.payload),
                        to_db_time(approval.created_at),
                        opt_to_db_time(approval.decided_at),
                    ),
                )
            except sqlite3.IntegrityError as err:
                if _is_foreign_key_error(err):
                    raise _no_task(approval.task_id) from err
                raise BadInput(f"approval {approval.id} already exists") from err

    async def decide_approval(
        self, approval_id: str, decision: ApprovalDecision, *, actor: str, notes: str = ""
    ) -> Approval:
        if decision == "pending":
            raise BadInput(f"approval {approval_id}: 'pending' is not a decision")
        async with self._write() as db:
            rows = list(
                await db.execute_fetchall("SELECT * FROM approvals WHERE id = ?", (approval_id,))
            )
            if not rows:
                raise NotFound(f"approval {approval_id} not found", hint=_TASKS_HINT)
            current = approval_from_row(rows[0])
            if current.decision != "pending":
                raise BadInput(
                    f"approval {approval_id} was already decided: {current.decision}"
                    f" by {current.actor}",
                    hint="a new request needs a new approval",
                )
            decided = current.model_copy(
                update={
                    "decision": decision,
                    "actor": actor,
                    "notes": notes,
                    "decided_at": utcnow(),
                }
            )
            await execute(
                db,
                "UPDATE approvals SET decision = ?, actor = ?, notes = ?, decided_at = ?"
                " WHERE id = ?",
                (decision, actor, notes, opt_to_db_time(decided.decided_at), approval_id),
            )
        return decided

    async def list_approvals(self, task_id: str) -> list[Approval]:
        rows = await self._fetch(
            "SELECT * FROM approvals WHERE task_id = ? ORDER BY created_at, id", (task_id,)
        )
        return [approval_from_row(row) for row in rows]

    async def list_pending_approvals(self, task_ids: Sequence[str]) -> list[Approval]:
        if not task_ids:
            return []
        # One JSON parameter, not one per id: any number of ids, still one statement.
        rows = await self._fetch(
            "SELECT * FROM approvals WHERE decision = 'pending'"
            " AND task_id IN (SELECT value FROM json_each(?))"
            " ORDER BY task_id, created_at, id",
            (json.dumps(list(task_ids)),),
        )
        return [approval_from_row(row) for row in rows]

    # events

    async def record_event(self, event: Event) -> bool:
        async with self._write() as db:
            try:
                inserted = await execute(
                    db,
                    "INSERT INTO events (task_id, stream, seq, id, type, module_id, ts, payload)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (task_id, stream, seq) DO NOTHING",
                    (
                        event.task_id,
                        event.stream,
                        event.seq,
                        event.id,
                        event.type,
                        event.module_id,
                        to_db_time(event.ts),
                        json.dumps(event.payload),
                    ),
                )
            except sqlite3.IntegrityError as err:
                raise _no_task(event.task_id) from err
        return inserted == 1

    async def list_events(self, task_id: str, *, after_seq: int = 0) -> list[Event]:
        rows = await self._fetch(
            "SELECT * FROM events WHERE task_id = ? AND stream = 'events' AND seq > ? ORDER BY seq",
            (task_id, after_seq),
        )
        return [event_from_row(row) for row in rows]


_MODULE_RUN_COLUMNS = (
    "wave",
    "tier",
    "depends_on",
    "status",
    "attempts",
    "provider",
    "model",
    "started_at",
    "finished_at",
    "cost_nano",
)
_UPSERT_MODULE_RUN_SQL = (
    f"INSERT INTO module_runs (task_id, module_id, {', '.join(_MODULE_RUN_COLUMNS)})"
    f" VALUES ({', '.join('?' * (len(_MODULE_RUN_COLUMNS) + 2))})"
    " ON CONFLICT (task_id, module_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _MODULE_RUN_COLUMNS)
)
_BUDGET_SQL = (
    "SELECT task_id, ceiling_nano, spent_nano, reserved_nano FROM budgets WHERE task_id = ?"
)
_RESERVE_SQL = (
    "INSERT INTO reservations (call_id, task_id, amount_nano, created_at)"
    " SELECT ?, task_id, ?, ? FROM budgets"
    " WHERE task_id = ? AND spent_nano + reserved_nano + ? <= ceiling_nano"
    " RETURNING call_id"
)
# seq numbers the task's rows from 1; the cost is clamped to the call's reservation, if it
# still has one.
_BOOK_SQL = (
    "INSERT INTO ledger (task_id, seq, call_id, module_id, tier, provider, model,"
    " input_tokens, cached_input_tokens, output_tokens, cost_nano, latency_ms, outcome,"
    " simulated, error, at)"
    " SELECT :task_id, COALESCE(MAX(seq), 0) + 1, :call_id, :module_id, :tier, :provider,"
    " :model, :input_tokens, :cached_input_tokens, :output_tokens,"
    " COALESCE("
    "(SELECT MIN(:cost_nano, amount_nano) FROM reservations WHERE call_id = :call_id),"
    " :cost_nano),"
    " :latency_ms, :outcome, :simulated, :error, :at"
    " FROM ledger WHERE task_id = :task_id"
    # ``held``: RETURNING is computed before the AFTER INSERT trigger drops the reservation
    # (pinned by the conformance suite's warning tests).
    " RETURNING cost_nano,"
    " EXISTS (SELECT 1 FROM reservations WHERE call_id = :call_id) AS held"
)
_CHECKPOINT_EVERY = 200
"""One inline booking in this many goes through the shared connection instead (see
``_book_inline``)."""
_FOREIGN_RESERVATION = "agentfirm: call reserved budget of another task"
"""The message of migration 0003's trigger refusing a row for another task's reservation."""


def _open_booker(path: Path) -> sqlite3.Connection:
    """The inline booking connection: never waits for a lock (busy: the caller goes the slow
    way), never checkpoints, same durability as the shared connection. Used from the event loop
    only, which need not be the thread that opened it."""
    booker = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    try:
        booker.row_factory = sqlite3.Row
        booker.execute("PRAGMA synchronous = NORMAL")
        booker.execute("PRAGMA foreign_keys = ON")
        booker.execute("PRAGMA wal_autocheckpoint = 0")
    except BaseException:
        booker.close()
        raise
    return booker


def _ledger_params(entry: LedgerEntry) -> dict[str, Any]:
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
        "simulated": int(entry.simulated),
        "error": entry.error,
        "at": to_db_time(entry.at),
    }


def _check_booking(call_id: str, entry: LedgerEntry) -> None:
    if entry.cost_nano < 0:
        raise BadInput(f"call {entry.call_id} has a negative cost: {entry.cost_nano}")
    if call_id != entry.call_id:
        raise BadInput(f"call {call_id} cannot be settled with the row of {entry.call_id}")


@contextmanager
def _foreign_reservation_is_bad_input(call_id: str, entry: LedgerEntry) -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as err:
        if _FOREIGN_RESERVATION not in str(err):
            raise
        raise BadInput(
            f"call {call_id} reserved budget of another task, not of task {entry.task_id}"
        ) from err


def _log_booking(
    rows: list[sqlite3.Row], call_id: str, entry: LedgerEntry, *, settling: bool
) -> None:
    """Warn when the booked row differs from what was asked: cost clamped to a smaller
    reservation, or a settle that found its reservation gone."""
    booked, held = int(rows[0]["cost_nano"]), bool(rows[0]["held"])
    if booked < entry.cost_nano:
        log.warning(
            "ledger.cost_clamped",
            task_id=entry.task_id,
            call_id=call_id,
            cost_nano=entry.cost_nano,
            booked_nano=booked,
        )
    if settling and not held:
        log.warning(
            "ledger.settle_without_reservation",
            task_id=entry.task_id,
            call_id=call_id,
            cost_nano=booked,
        )


def _no_budget(task_id: str) -> NotFound:
    return NotFound(
        f"task {task_id} has no budget", hint="set one when approving the plan (--budget USD)"
    )


def _module_run_params(run: ModuleRun) -> tuple[Any, ...]:
    return (
        run.task_id,
        run.module_id,
        run.wave,
        run.tier,
        json.dumps(run.depends_on),
        run.status.value,
        run.attempts,
        run.provider,
        run.model,
        opt_to_db_time(run.started_at),
        opt_to_db_time(run.finished_at),
        run.cost_nano,
    )
