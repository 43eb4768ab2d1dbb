"""The team system of record: PostgreSQL (Supabase included), shared by the daemon and any number of
workers on other machines.

Same semantics as ``SQLiteStore``. Every write is one explicit transaction on a pooled connection;
concurrent writers serialise on row locks (the task row for transitions, the budget row for money)
or on a transaction-scoped advisory lock (per-task ledger numbering). Nothing relies on session
state, so the store is safe behind a transaction pooler (see ``postgres_conn``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from types import TracebackType
from typing import Any

import structlog
from psycopg import errors as pg_errors
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

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
from agentfirm.settings import mask_url
from agentfirm.store.base import Lease, check_lease_terms
from agentfirm.store.postgres_conn import (
    PgConnection,
    apply_migrations,
    configure,
    connect,
    connection_kwargs,
    opt_utc,
    postgres_migrations,
    unreachable,
    utc,
)

log = structlog.get_logger(__name__)

_TASKS_HINT = "run `agentfirm tasks list` to see task ids"
_POOL_OPEN_TIMEOUT_S = 10.0


def _no_task(task_id: str) -> NotFound:
    return NotFound(f"task {task_id} not found", hint=_TASKS_HINT)


def _no_budget(task_id: str) -> NotFound:
    return NotFound(
        f"task {task_id} has no budget", hint="set one when approving the plan (--budget USD)"
    )


class PostgresStore:
    """``Store`` on PostgreSQL (see ``agentfirm.store.base.Store`` for each method's contract).

    Beyond the protocol, exactly as ``SQLiteStore``: ``set_budget`` also sets the task's
    ``budget_nano``; ``reserve`` and ``get_budget`` raise ``NotFound`` when the task has no
    budget; a negative amount of money is ``BadInput``; writes that name a missing task raise
    ``NotFound``. Extra (not in the protocol): ``summarize_costs``, ``summarize_all_costs``,
    ``query``. Text may not contain NUL characters (a Postgres limit SQLite does not have).
    """

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._min_size = min_size
        self._max_size = max_size
        self._pool: AsyncConnectionPool[PgConnection] | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Apply pending migrations over one direct connection (so a bad URL fails at once with
        a clear ``AgentfirmError``), then open the pool."""
        async with self._lock:
            if self._pool is not None:
                return
            migrations = await asyncio.to_thread(postgres_migrations)
            conn = await connect(self.url)
            try:
                await apply_migrations(conn, migrations)
            finally:
                await conn.close()
            pool: AsyncConnectionPool[PgConnection] = AsyncConnectionPool(
                self.url,
                connection_class=PgConnection,
                kwargs=connection_kwargs(),
                configure=configure,
                # A pooler or a firewall may drop idle connections: test each one on checkout
                # (one empty round trip) rather than fail a ledger write on a dead one.
                check=AsyncConnectionPool.check_connection,
                min_size=self._min_size,
                max_size=self._max_size,
                open=False,
                name=f"agentfirm-store {mask_url(self.url)}",
            )
            try:
                await pool.open(wait=True, timeout=_POOL_OPEN_TIMEOUT_S)
            except PoolTimeout as err:
                await pool.close()
                raise unreachable(self.url, err) from err
            self._pool = pool

    async def close(self) -> None:
        """Close the pool (connections in use are closed when returned); idempotent."""
        async with self._lock:
            if self._pool is not None:
                pool, self._pool = self._pool, None
                await pool.close()

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _pool_or_raise(self) -> AsyncConnectionPool[PgConnection]:
        if self._pool is None:
            raise RuntimeError(f"store {mask_url(self.url)} is not open: call open() first")
        return self._pool

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[PgConnection]:
        """A pooled connection inside one transaction, rolled back on any exception (a cancelled
        statement is cancelled on the server first, by psycopg)."""
        async with self._pool_or_raise().connection() as conn, conn.transaction():
            yield conn

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[DictRow]:
        async with self._pool_or_raise().connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[DictRow]:
        """Extra, for companions using this database through the store's pool (the local
        cache): the rows of one statement (committed on its own), as dicts."""
        return await self._fetch(sql, params)

    # tasks and lifecycle

    async def create_task(self, task: Task, *, actor: str) -> None:
        check_transition(task.id, None, task.status)
        async with self._write() as conn:
            try:
                await conn.execute(
                    "INSERT INTO tasks (id, request, status, persona, budget_nano, spec,"
                    " repo_path, deliverable_path, created_at, updated_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (task.id, task.request, task.status.value, *_task_fields(task)),
                )
            except pg_errors.UniqueViolation as err:
                raise BadInput(f"task {task.id} already exists", hint=_TASKS_HINT) from err
            await _insert_transition(conn, task.id, None, task.status, actor, "created")

    async def get_task(self, task_id: str) -> Task:
        rows = await self._fetch("SELECT * FROM tasks WHERE id = %s", (task_id,))
        if not rows:
            raise _no_task(task_id)
        return Task.model_validate(rows[0])

    async def list_tasks(self, *, limit: int = 100) -> list[Task]:
        # SQLite reads a negative LIMIT as "no limit"; Postgres spells that LIMIT NULL.
        rows = await self._fetch(
            "SELECT * FROM tasks ORDER BY created_at DESC, id DESC LIMIT %s",
            (None if limit < 0 else limit,),
        )
        return [Task.model_validate(row) for row in rows]

    async def save_task(self, task: Task) -> None:
        async with self._write() as conn:
            cur = await conn.execute(
                "UPDATE tasks SET persona = %s, budget_nano = %s, spec = %s, repo_path = %s,"
                " deliverable_path = %s, created_at = %s, updated_at = %s, request = %s"
                " WHERE id = %s",
                (*_task_fields(task), task.request, task.id),
            )
            if cur.rowcount == 0:
                raise _no_task(task.id)

    async def transition(
        self, task_id: str, to: TaskStatus, *, actor: str, reason: str = ""
    ) -> Transition:
        async with self._write() as conn:
            # The row lock serialises this task's transitions (and their seq numbers).
            cur = await conn.execute(
                "SELECT status FROM tasks WHERE id = %s FOR UPDATE", (task_id,)
            )
            row = await cur.fetchone()
            if row is None:
                raise _no_task(task_id)
            from_status = TaskStatus(row["status"])
            check_transition(task_id, from_status, to)
            done = await _insert_transition(conn, task_id, from_status, to, actor, reason)
            await conn.execute(
                "UPDATE tasks SET status = %s, updated_at = %s WHERE id = %s",
                (to.value, done.at, task_id),
            )
        log.info("task.transition", task_id=task_id, from_status=from_status, to=to, actor=actor)
        return done

    async def list_transitions(self, task_id: str) -> list[Transition]:
        rows = await self._fetch(
            "SELECT task_id, from_status, to_status, actor, reason, at FROM transitions"
            " WHERE task_id = %s ORDER BY seq",
            (task_id,),
        )
        return [Transition.model_validate(row) for row in rows]

    # modules and artifacts

    async def upsert_module_run(self, run: ModuleRun) -> None:
        async with self._write() as conn:
            try:
                await conn.execute(_UPSERT_MODULE_RUN_SQL, _module_run_params(run))
            except pg_errors.ForeignKeyViolation as err:
                raise _no_task(run.task_id) from err

    async def list_module_runs(self, task_id: str) -> list[ModuleRun]:
        rows = await self._fetch(
            "SELECT * FROM module_runs WHERE task_id = %s ORDER BY wave, module_id", (task_id,)
        )
        return [ModuleRun.model_validate(row) for row in rows]

    async def save_artifact(self, artifact: Artifact, *, run: ModuleRun | None = None) -> None:
        """Raise ``BadInput`` when that version already exists."""
        async with self._write() as conn:
            try:
                await conn.execute(
                    "INSERT INTO artifacts (task_id, module_id, version, output_type, content,"
                    " created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        artifact.task_id,
                        artifact.module_id,
                        artifact.version,
                        artifact.output_type,
                        Jsonb(artifact.content),
                        utc(artifact.created_at),
                    ),
                )
                if run is not None:
                    await conn.execute(_UPSERT_MODULE_RUN_SQL, _module_run_params(run))
            except pg_errors.ForeignKeyViolation as err:
                raise _no_task(artifact.task_id) from err
            except pg_errors.UniqueViolation as err:
                raise BadInput(
                    f"artifact {artifact.module_id} v{artifact.version} of task"
                    f" {artifact.task_id} already exists",
                    hint="save the new output as the next version",
                ) from err

    async def latest_artifacts(self, task_id: str) -> dict[str, Artifact]:
        rows = await self._fetch(
            "SELECT DISTINCT ON (module_id) * FROM artifacts WHERE task_id = %s"
            " ORDER BY module_id, version DESC",
            (task_id,),
        )
        return {row["module_id"]: Artifact.model_validate(row) for row in rows}

    # budget and ledger

    async def set_budget(self, task_id: str, ceiling_nano: int) -> Budget:
        if ceiling_nano < 0:
            raise BadInput(f"budget ceiling for task {task_id} is negative: {ceiling_nano}")
        async with self._write() as conn:
            try:
                cur = await conn.execute(
                    "INSERT INTO budgets (task_id, ceiling_nano, updated_at) VALUES (%s, %s, %s)"
                    " ON CONFLICT (task_id) DO UPDATE SET ceiling_nano = excluded.ceiling_nano,"
                    " updated_at = excluded.updated_at"
                    " RETURNING task_id, ceiling_nano, spent_nano, reserved_nano",
                    (task_id, ceiling_nano, utcnow()),
                )
            except pg_errors.ForeignKeyViolation as err:
                raise _no_task(task_id) from err
            row = await cur.fetchone()
            await conn.execute(
                "UPDATE tasks SET budget_nano = %s WHERE id = %s", (ceiling_nano, task_id)
            )
        log.info("budget.set", task_id=task_id, ceiling_nano=ceiling_nano)
        return Budget.model_validate(row)

    async def get_budget(self, task_id: str) -> Budget:
        rows = await self._fetch(_BUDGET_SQL, (task_id,))
        if not rows:
            raise _no_budget(task_id)
        return Budget.model_validate(rows[0])

    async def reserve(self, task_id: str, call_id: str, amount_nano: int) -> bool:
        if amount_nano < 0:
            raise BadInput(f"reservation for call {call_id} is negative: {amount_nano}")
        now = utcnow()
        async with self._write() as conn:
            # One conditional UPDATE: the check and the increment cannot be separated by another
            # writer on any connection of any process. The reservation row is inserted by the
            # same statement, only when the UPDATE matched.
            try:
                cur = await conn.execute(
                    "WITH held AS (UPDATE budgets SET reserved_nano = reserved_nano + %(amount)s,"
                    " updated_at = %(now)s WHERE task_id = %(task_id)s"
                    " AND spent_nano + reserved_nano + %(amount)s <= ceiling_nano"
                    " RETURNING task_id)"
                    " INSERT INTO reservations (call_id, task_id, amount_nano, created_at)"
                    " SELECT %(call_id)s, task_id, %(amount)s, %(now)s FROM held",
                    {"amount": amount_nano, "now": now, "task_id": task_id, "call_id": call_id},
                )
            except pg_errors.UniqueViolation as err:
                raise BadInput(f"call {call_id} already holds a reservation") from err
            if cur.rowcount == 1:
                return True
            cur = await conn.execute("SELECT 1 FROM budgets WHERE task_id = %s", (task_id,))
            if await cur.fetchone() is None:
                raise _no_budget(task_id)
        log.info("budget.refused", task_id=task_id, call_id=call_id, nano=amount_nano)
        return False

    async def settle(self, call_id: str, entry: LedgerEntry) -> None:
        await self._book(call_id, entry, settling=True)

    async def record_call(self, entry: LedgerEntry) -> None:
        await self._book(entry.call_id, entry, settling=False)

    async def _book(self, call_id: str, entry: LedgerEntry, *, settling: bool) -> None:
        """Release ``call_id``'s reservation (if any), add the cost — clamped to what was
        reserved, so spend cannot pass the ceiling; nothing reserved any more: the actual cost,
        see ``Store.settle`` — to spent, and insert the ledger row with the same cost, so the
        ledger always sums to spent."""
        if entry.cost_nano < 0:
            raise BadInput(f"call {entry.call_id} has a negative cost: {entry.cost_nano}")
        async with self._write() as conn:
            # Deleting first locks the reservation; a refusal below rolls the delete back.
            cur = await conn.execute(
                "DELETE FROM reservations WHERE call_id = %s RETURNING task_id, amount_nano",
                (call_id,),
            )
            held = await cur.fetchone()
            reserved = held["amount_nano"] if held else 0
            if held and held["task_id"] != entry.task_id:
                raise BadInput(
                    f"call {call_id} reserved budget of task {held['task_id']},"
                    f" not of task {entry.task_id}"
                )
            cost = min(entry.cost_nano, reserved) if held else entry.cost_nano
            if settling and not held:
                log.warning(
                    "ledger.settle_without_reservation",
                    task_id=entry.task_id,
                    call_id=call_id,
                    cost_nano=cost,
                )
            if cost < entry.cost_nano:
                log.warning(
                    "ledger.cost_clamped",
                    task_id=entry.task_id,
                    call_id=call_id,
                    cost_nano=entry.cost_nano,
                    reserved_nano=reserved,
                )
            if held or cost:
                await conn.execute(
                    "UPDATE budgets SET reserved_nano = reserved_nano - %s,"
                    " spent_nano = spent_nano + %s, updated_at = %s WHERE task_id = %s",
                    (reserved, cost, utcnow(), entry.task_id),
                )
            await _insert_ledger(conn, entry, cost)

    async def release_reservations(
        self, task_id: str, *, older_than: timedelta | None = None
    ) -> int:
        cutoff = utcnow() - older_than if older_than is not None else None
        async with self._write() as conn:
            cur = await conn.execute(
                "WITH gone AS (DELETE FROM reservations WHERE task_id = %s"
                " AND created_at <= COALESCE(%s::timestamptz, created_at) RETURNING amount_nano)"
                " SELECT COUNT(*) AS n, COALESCE(SUM(amount_nano), 0)::BIGINT AS total FROM gone",
                (task_id, cutoff),
            )
            row = await cur.fetchone()
            count, total = (row["n"], row["total"]) if row else (0, 0)
            if count:
                await conn.execute(
                    "UPDATE budgets SET reserved_nano = reserved_nano - %s, updated_at = %s"
                    " WHERE task_id = %s",
                    (total, utcnow(), task_id),
                )
        return int(count)

    async def list_ledger(self, task_id: str) -> list[LedgerEntry]:
        rows = await self._fetch(
            f"SELECT {LEDGER_COLUMNS} FROM ledger WHERE task_id = %s ORDER BY at, seq",
            (task_id,),
        )
        return [LedgerEntry.model_validate(row) for row in rows]

    async def summarize_costs(self, task_id: str) -> dict[str, Any]:
        """Extra, not in the ``Store`` protocol: the task's running totals (kept by triggers in
        the ledger's own transactions) instead of reading every ledger row.
        ``{total_nano, calls, simulated, by_module, by_tier, by_provider}``, sums in
        nano-dollars, each ``by_*`` in order of first appearance on the ledger (a ``None``
        module is ``"_task"``, as in ``agentfirm.costs.summarize``)."""
        rows = await self._fetch(_SUMMARY_SQL, (task_id,))
        return fold_cost_groups(rows)

    async def summarize_all_costs(self) -> dict[str, Any]:
        """Extra: ``summarize_costs`` over every task of the firm (groups across tasks merged,
        in order of first appearance), from the firm-wide running totals."""
        return fold_cost_groups(await self._fetch(_SUMMARY_ALL_SQL))

    # approvals

    async def create_approval(self, approval: Approval) -> None:
        async with self._write() as conn:
            try:
                await conn.execute(
                    "INSERT INTO approvals (id, task_id, kind, decision, actor, notes, payload,"
                    " created_at, decided_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        approval.id,
                        approval.task_id,
                        approval.kind,
                        approval.decision,
                        approval.actor,
                        approval.notes,
                        Jsonb(approval.payload),
                        utc(approval.created_at),
                        opt_utc(approval.decided_at),
                    ),
                )
            except pg_errors.ForeignKeyViolation as err:
                raise _no_task(approval.task_id) from err
            except pg_errors.UniqueViolation as err:
                raise BadInput(f"approval {approval.id} already exists") from err

    async def decide_approval(
        self, approval_id: str, decision: ApprovalDecision, *, actor: str, notes: str = ""
    ) -> Approval:
        if decision == "pending":
            raise BadInput(f"approval {approval_id}: 'pending' is not a decision")
        async with self._write() as conn:
            cur = await conn.execute(
                "SELECT * FROM approvals WHERE id = %s FOR UPDATE", (approval_id,)
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"approval {approval_id} not found", hint=_TASKS_HINT)
            current = Approval.model_validate(row)
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
            await conn.execute(
                "UPDATE approvals SET decision = %s, actor = %s, notes = %s, decided_at = %s"
                " WHERE id = %s",
                (decision, actor, notes, decided.decided_at, approval_id),
            )
        return decided

    async def list_approvals(self, task_id: str) -> list[Approval]:
        rows = await self._fetch(
            "SELECT * FROM approvals WHERE task_id = %s ORDER BY created_at, id", (task_id,)
        )
        return [Approval.model_validate(row) for row in rows]

    async def list_pending_approvals(self, task_ids: Sequence[str]) -> list[Approval]:
        if not task_ids:
            return []
        rows = await self._fetch(
            "SELECT * FROM approvals WHERE decision = 'pending' AND task_id = ANY(%s)"
            " ORDER BY task_id, created_at, id",
            (list(task_ids),),
        )
        return [Approval.model_validate(row) for row in rows]

    # events

    async def record_event(self, event: Event) -> bool:
        async with self._write() as conn:
            try:
                cur = await conn.execute(
                    "INSERT INTO events (task_id, stream, seq, id, type, module_id, ts, payload)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (task_id, stream, seq) DO NOTHING",
                    (
                        event.task_id,
                        event.stream,
                        event.seq,
                        event.id,
                        event.type,
                        event.module_id,
                        utc(event.ts),
                        Jsonb(event.payload),
                    ),
                )
            except pg_errors.ForeignKeyViolation as err:
                raise _no_task(event.task_id) from err
        return cur.rowcount == 1

    async def list_events(self, task_id: str, *, after_seq: int = 0) -> list[Event]:
        rows = await self._fetch(
            "SELECT * FROM events WHERE task_id = %s AND stream = 'events' AND seq > %s"
            " ORDER BY seq",
            (task_id, after_seq),
        )
        return [Event.model_validate(row) for row in rows]

    # run leases: one statement each, times by the database's clock (workers' clocks may differ)

    async def acquire_lease(self, task_id: str, holder: str, *, ttl: timedelta) -> bool:
        check_lease_terms(task_id, holder, ttl)
        async with self._write() as conn:
            try:
                cur = await conn.execute(
                    _ACQUIRE_LEASE_SQL, {"task_id": task_id, "holder": holder, "ttl": ttl}
                )
            except pg_errors.ForeignKeyViolation as err:
                raise _no_task(task_id) from err
            return await cur.fetchone() is not None

    async def renew_lease(self, task_id: str, holder: str, *, ttl: timedelta) -> bool:
        check_lease_terms(task_id, holder, ttl)
        async with self._write() as conn:
            cur = await conn.execute(
                "UPDATE run_leases SET expires_at = now() + %s WHERE task_id = %s AND holder = %s",
                (ttl, task_id, holder),
            )
        return cur.rowcount == 1

    async def release_lease(self, task_id: str, holder: str) -> bool:
        async with self._write() as conn:
            cur = await conn.execute(
                "DELETE FROM run_leases WHERE task_id = %s AND holder = %s", (task_id, holder)
            )
        return cur.rowcount == 1

    async def get_lease(self, task_id: str) -> Lease | None:
        rows = await self._fetch(
            "SELECT task_id, holder, acquired_at, expires_at, expires_at > now() AS live"
            " FROM run_leases WHERE task_id = %s",
            (task_id,),
        )
        return Lease.model_validate(rows[0]) if rows else None


def _task_fields(task: Task) -> tuple[Any, ...]:
    spec = None if task.spec is None else Jsonb(task.spec.model_dump(mode="json"))
    return (
        task.persona,
        task.budget_nano,
        spec,
        task.repo_path,
        task.deliverable_path,
        utc(task.created_at),
        utc(task.updated_at),
    )


async def _insert_transition(
    conn: PgConnection,
    task_id: str,
    from_status: TaskStatus | None,
    to: TaskStatus,
    actor: str,
    reason: str,
) -> Transition:
    """Caller holds the task's row lock (or has just inserted the task) in this transaction."""
    done = Transition(
        task_id=task_id, from_status=from_status, to_status=to, actor=actor, reason=reason
    )
    await conn.execute(
        "INSERT INTO transitions (task_id, seq, from_status, to_status, actor, reason, at)"
        " SELECT %s, COALESCE(MAX(seq), 0) + 1, %s, %s, %s, %s, %s"
        " FROM transitions WHERE task_id = %s",
        (
            task_id,
            None if from_status is None else from_status.value,
            to.value,
            actor,
            reason,
            done.at,
            task_id,
        ),
    )
    return done


async def _insert_ledger(conn: PgConnection, entry: LedgerEntry, cost_nano: int) -> None:
    # The ledger has no parent row to lock (a row may outlive its task), so numbering a task's
    # rows is serialised by a transaction-scoped advisory lock on the task id.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('agentfirm.ledger:' || %s, 0))",
        (entry.task_id,),
    )
    await conn.execute(
        f"INSERT INTO ledger (task_id, seq, {LEDGER_COLUMNS.removeprefix('task_id, ')})"
        " SELECT %s, COALESCE(MAX(seq), 0) + 1, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " %s, %s FROM ledger WHERE task_id = %s",
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
            entry.simulated,
            entry.error,
            utc(entry.at),
            entry.task_id,
        ),
    )


def fold_cost_groups(rows: Sequence[DictRow]) -> dict[str, Any]:
    """Fold ``_SUMMARY_SQL`` groups (first-appearance order) into per-module/tier/provider sums."""
    summary: dict[str, Any] = {
        "total_nano": 0,
        "calls": 0,
        "simulated": False,
        "by_module": {},
        "by_tier": {},
        "by_provider": {},
    }
    for row in rows:
        summary["total_nano"] += row["cost_nano"]
        summary["calls"] += row["calls"]
        summary["simulated"] = summary["simulated"] or bool(row["simulated"])
        for key, name in (
            ("by_module", row["module_id"] or "_task"),
            ("by_tier", row["tier"]),
            ("by_provider", row["provider"]),
        ):
            summary[key][name] = summary[key].get(name, 0) + row["cost_nano"]
    return summary


LEDGER_COLUMNS = (
    "task_id, call_id, module_id, tier, provider, model, input_tokens, cached_input_tokens,"
    " output_tokens, cost_nano, latency_ms, outcome, simulated, error, at"
)
# The running totals of migration 0002 (one row per task x module x tier x provider).
_SUMMARY_SQL = (
    "SELECT module_id, tier, provider, cost_nano, calls, simulated FROM cost_totals"
    " WHERE task_id = %s ORDER BY first_at, first_seq"
)
# The firm-wide totals of migration 0004 (one row per module x tier x provider).
_SUMMARY_ALL_SQL = (
    "SELECT module_id, tier, provider, cost_nano, calls, simulated FROM cost_rollup"
    " ORDER BY first_at, first_seq"
)
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
    f" VALUES ({', '.join(['%s'] * (len(_MODULE_RUN_COLUMNS) + 2))})"
    " ON CONFLICT (task_id, module_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _MODULE_RUN_COLUMNS)
)
_BUDGET_SQL = (
    "SELECT task_id, ceiling_nano, spent_nano, reserved_nano FROM budgets WHERE task_id = %s"
)
# Taken when free, when expired, or renewed by its own holder (who keeps its acquired_at). The
# conflicting row is locked and its WHERE judged on its latest version, so of several takers at
# once one gets it; a WHERE that fails changes nothing and returns no row.
_ACQUIRE_LEASE_SQL = (
    "INSERT INTO run_leases AS l (task_id, holder, acquired_at, expires_at)"
    " VALUES (%(task_id)s, %(holder)s, now(), now() + %(ttl)s)"
    " ON CONFLICT (task_id) DO UPDATE SET holder = excluded.holder,"
    " acquired_at = CASE WHEN l.holder = excluded.holder THEN l.acquired_at"
    " ELSE excluded.acquired_at END,"
    " expires_at = excluded.expires_at"
    " WHERE l.holder = excluded.holder OR l.expires_at <= now()"
    " RETURNING holder"
)


def _module_run_params(run: ModuleRun) -> tuple[Any, ...]:
    return (
        run.task_id,
        run.module_id,
        run.wave,
        run.tier,
        Jsonb(run.depends_on),
        run.status.value,
        run.attempts,
        run.provider,
        run.model,
        opt_utc(run.started_at),
        opt_utc(run.finished_at),
        run.cost_nano,
    )
