"""The team system of record: PostgreSQL (Supabase included), shared by the daemon and any number of
workers on other machines.

Same semantics as ``SQLiteStore``. Every write is one explicit transaction on a pooled connection
but for the budget bookings, each one statement committed on its own (``booking``); concurrent
writers serialise on row locks (the task row for transitions, the budget and ledger counter rows
for money). Nothing relies on session state, so the store is safe behind a transaction pooler (see
``conn``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from agentfirm.settings import mask_url
from agentfirm.store.postgres.booking import PostgresBooking
from agentfirm.store.postgres.conn import (
    IdleCheck,
    Params,
    PgConnection,
    apply_migrations,
    configure,
    connect,
    connection_kwargs,
    postgres_migrations,
    unreachable,
)
from agentfirm.store.postgres.costs import SUMMARY_ALL_SQL, SUMMARY_SQL, fold_cost_groups
from agentfirm.store.postgres.dialect import POSTGRES
from agentfirm.store.sql.access import Dialect
from agentfirm.store.sql.store import SqlStore

_POOL_OPEN_TIMEOUT_S = 10.0


class PostgresStore(PostgresBooking, SqlStore):
    """``Store`` on PostgreSQL (see ``agentfirm.store.base.Store`` for each method's contract).

    Beyond the protocol, exactly as ``SQLiteStore``: ``set_budget`` also sets the task's
    ``budget_nano``; ``reserve`` and ``get_budget`` raise ``NotFound`` when the task has no
    budget; a negative amount of money is ``BadInput``; writes that name a missing task raise
    ``NotFound``. Extra (not in the protocol): ``summarize_costs``, ``summarize_all_costs``,
    ``query``. Text may not contain NUL characters (a Postgres limit SQLite does not have).
    """

    dialect: ClassVar[Dialect] = POSTGRES

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        super().__init__()
        self.url = url
        self._min_size = min_size
        self._max_size = max_size
        self._pool: AsyncConnectionPool[PgConnection] | None = None
        self._idle = IdleCheck()
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
                # A pooler or a firewall may drop idle connections: test one idle a while on
                # checkout rather than fail a ledger write on a dead one.
                check=self._idle.check,
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

    def _pool_or_raise(self) -> AsyncConnectionPool[PgConnection]:
        if self._pool is None:
            raise RuntimeError(f"store {mask_url(self.url)} is not open: call open() first")
        return self._pool

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[PgConnection]:
        """A pooled connection, marked as just used when given back (``IdleCheck``)."""
        async with self._pool_or_raise().connection() as conn:
            try:
                yield conn
            finally:
                self._idle.returned(conn)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[PgConnection]:
        """A pooled connection inside one transaction, rolled back on any exception (a cancelled
        statement is cancelled on the server first, by psycopg)."""
        async with self._connection() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[_PgTx]:
        async with self._transaction() as conn:
            yield _PgTx(conn)

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[DictRow]:
        async with self._connection() as conn:
            cur = await conn.execute(_placeholders(sql), params)
            return await cur.fetchall()

    async def query(self, sql: str, params: Params = ()) -> list[DictRow]:
        """Extra, for companions using this database through the store's pool (the local
        cache): the rows of one statement (committed on its own), as dicts. ``%s``
        placeholders."""
        async with self._connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def summarize_costs(self, task_id: str) -> dict[str, Any]:
        """Extra, not in the ``Store`` protocol: the task's running totals (kept by triggers in
        the ledger's own transactions) instead of reading every ledger row.
        ``{total_nano, calls, simulated, by_module, by_tier, by_provider}``, sums in
        nano-dollars, each ``by_*`` in order of first appearance on the ledger (a ``None``
        module is ``"_task"``, as in ``agentfirm.domain.costs.summarize``)."""
        return fold_cost_groups(await self.query(SUMMARY_SQL, (task_id,)))

    async def summarize_all_costs(self) -> dict[str, Any]:
        """Extra: ``summarize_costs`` over every task of the firm (groups across tasks merged,
        in order of first appearance), from the firm-wide running totals."""
        return fold_cost_groups(await self.query(SUMMARY_ALL_SQL))


def _placeholders(sql: str) -> str:
    """The shared body's ``?`` placeholders as psycopg's ``%s`` (its statements hold no other
    ``?`` and no ``%``)."""
    return sql.replace("?", "%s")


class _PgTx:
    """``Tx`` on a pooled connection inside its transaction."""

    def __init__(self, conn: PgConnection) -> None:
        self._conn = conn

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = await self._conn.execute(_placeholders(sql), params)
        return cur.rowcount

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[DictRow]:
        cur = await self._conn.execute(_placeholders(sql), params)
        return await cur.fetchall()
