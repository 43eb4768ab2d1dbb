"""The embedded system of record: one SQLite file, shared by the daemon and a notebook runner.

Every write is one ``BEGIN IMMEDIATE`` transaction (see ``sqlite_conn``), so concurrent writers, in
this process or another, serialise and never see each other's half-done work.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
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


class SQLiteStore:
    """``Store`` on one SQLite file (see ``agentfirm.store.base.Store`` for each method's contract).

    Beyond the protocol: ``set_budget`` also sets the task's ``budget_nano``; ``reserve`` and
    ``get_budget`` raise ``NotFound`` when the task has no budget; a negative amount of money is
    ``BadInput``; writes that name a missing task raise ``NotFound``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

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
        params = (
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
        async with self._write() as db:
            try:
                await execute(db, _UPSERT_MODULE_RUN_SQL, params)
            except sqlite3.IntegrityError as err:
                raise _no_task(run.task_id) from err

    async def list_module_runs(self, task_id: str) -> list[ModuleRun]:
        rows = await self._fetch(
            "SELECT * FROM module_runs WHERE task_id = ? ORDER BY wave, module_id", (task_id,)
        )
        return [module_run_from_row(row) for row in rows]

    async def save_artifact(self, artifact: Artifact) -> None:
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

    async def reserve(self, task_id: str, call_id: str, amount_nano: int) -> bool:
        if amount_nano < 0:
            raise BadInput(f"reservation for call {call_id} is negative: {amount_nano}")
        now = to_db_time(utcnow())
        async with self._write() as db:
            # One conditional UPDATE: the check and the increment cannot be separated by another
            # writer, in this process or any other.
            fitted = await execute(
                db,
                "UPDATE budgets SET reserved_nano = reserved_nano + ?, updated_at = ?"
                " WHERE task_id = ? AND spent_nano + reserved_nano + ? <= ceiling_nano",
                (amount_nano, now, task_id, amount_nano),
            )
            if not fitted:
                if not await db.execute_fetchall(_BUDGET_SQL, (task_id,)):
                    raise _no_budget(task_id)
                log.info("budget.refused", task_id=task_id, call_id=call_id, nano=amount_nano)
                return False
            try:
                await execute(
                    db,
                    "INSERT INTO reservations (call_id, task_id, amount_nano, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (call_id, task_id, amount_nano, now),
                )
            except sqlite3.IntegrityError as err:
                raise BadInput(f"call {call_id} already holds a reservation") from err
        return True

    async def settle(self, call_id: str, entry: LedgerEntry) -> None:
        await self._book(call_id, entry, settling=True)

    async def record_call(self, entry: LedgerEntry) -> None:
        await self._book(entry.call_id, entry, settling=False)

    async def _book(self, call_id: str, entry: LedgerEntry, *, settling: bool) -> None:
        """Release ``call_id``'s reservation (if any), add the cost — clamped to what was
        reserved, so spend cannot pass the ceiling — to spent, and insert the ledger row with
        the same clamped cost, so the ledger always sums to spent."""
        if entry.cost_nano < 0:
            raise BadInput(f"call {entry.call_id} has a negative cost: {entry.cost_nano}")
        async with self._write() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT task_id, amount_nano FROM reservations WHERE call_id = ?", (call_id,)
                )
            )
            reserved = rows[0]["amount_nano"] if rows else 0
            if rows and rows[0]["task_id"] != entry.task_id:
                raise BadInput(
                    f"call {call_id} reserved budget of task {rows[0]['task_id']},"
                    f" not of task {entry.task_id}"
                )
            if settling and not rows:
                log.warning("ledger.settle_without_reservation", call_id=call_id)
            cost = min(entry.cost_nano, reserved)
            if cost < entry.cost_nano:
                log.warning(
                    "ledger.cost_clamped",
                    task_id=entry.task_id,
                    call_id=call_id,
                    cost_nano=entry.cost_nano,
                    reserved_nano=reserved,
                )
            if rows:
                await execute(db, "DELETE FROM reservations WHERE call_id = ?", (call_id,))
                await execute(
                    db,
                    "UPDATE budgets SET reserved_nano = reserved_nano - ?,"
                    " spent_nano = spent_nano + ?, updated_at = ? WHERE task_id = ?",
                    (reserved, cost, to_db_time(utcnow()), entry.task_id),
                )
            await self._insert_ledger(db, entry, cost)

    async def release_reservations(self, task_id: str) -> int:
        async with self._write() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT COUNT(*) AS n, COALESCE(SUM(amount_nano), 0) AS total"
                    " FROM reservations WHERE task_id = ?",
                    (task_id,),
                )
            )
            count, total = rows[0]["n"], rows[0]["total"]
            if count:
                await execute(db, "DELETE FROM reservations WHERE task_id = ?", (task_id,))
                await execute(
                    db,
                    "UPDATE budgets SET reserved_nano = reserved_nano - ?, updated_at = ?"
                    " WHERE task_id = ?",
                    (total, to_db_time(utcnow()), task_id),
                )
        return int(count)

    @staticmethod
    async def _insert_ledger(db: aiosqlite.Connection, entry: LedgerEntry, cost_nano: int) -> None:
        await execute(
            db,
            "INSERT INTO ledger (task_id, seq, call_id, module_id, tier, provider, model,"
            " input_tokens, cached_input_tokens, output_tokens, cost_nano, latency_ms, outcome,"
            " simulated, error, at)"
            " SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
            " FROM ledger WHERE task_id = ?",
            (
                entry.task_id,
                entry.call_id,
                entry.module_id,
                entry.tier,
                entry.provider,
                entry.model,
                entry.input_tokens,
                entry.cached_input_tokens,
                entry.output_tokens,
                cost_nano,
                entry.latency_ms,
                entry.outcome,
                int(entry.simulated),
                entry.error,
                to_db_time(entry.at),
                entry.task_id,
            ),
        )

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


def _no_budget(task_id: str) -> NotFound:
    return NotFound(
        f"task {task_id} has no budget", hint="set one when approving the plan (--budget USD)"
    )
