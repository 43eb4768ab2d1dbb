"""Postgres plumbing shared by the store and ``agentfirm db``: connection settings that are safe
behind a transaction pooler (Supabase's), aware-UTC time loading, and the migration target.

A transaction pooler hands each transaction to any server session, so nothing here relies on
session state: no server-side prepared statements (``prepare_threshold=None``), no ``SET``, no
``LISTEN``, and only transaction-scoped advisory locks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from time import monotonic
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from psycopg import AsyncConnection
from psycopg.abc import Buffer
from psycopg.rows import DictRow, dict_row
from psycopg.types.datetime import TimestamptzBinaryLoader, TimestamptzLoader
from psycopg_pool import AsyncConnectionPool

from agentfirm.errors import AgentfirmError
from agentfirm.settings import mask_url
from agentfirm.store.migrate import Migration, load_migrations, migrate

MIGRATIONS_DIRECTORY = "migrations/postgres"
CONNECT_TIMEOUT_S = 10

PgConnection = AsyncConnection[DictRow]
Params = Sequence[Any] | Mapping[str, Any]
"""A statement's parameters: by position (``%s``) or by name (``%(name)s``)."""

# Every process applying migrations takes this lock for the migration transaction.
_MIGRATION_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('agentfirm.migrate', 0))"


class _UtcTimestamptzLoader(TimestamptzLoader):
    def load(self, data: Buffer) -> datetime:
        return super().load(data).astimezone(UTC)


class _UtcTimestamptzBinaryLoader(TimestamptzBinaryLoader):
    def load(self, data: Buffer) -> datetime:
        return super().load(data).astimezone(UTC)


def connection_kwargs() -> dict[str, Any]:
    """Keyword arguments for every connection: autocommit (transactions are explicit), dict rows,
    and no prepared statements, which a transaction pooler cannot keep."""
    return {"autocommit": True, "prepare_threshold": None, "row_factory": dict_row}


async def configure(conn: PgConnection) -> None:
    """Load ``TIMESTAMPTZ`` as aware UTC whatever the server's ``TimeZone`` (client side only)."""
    conn.adapters.register_loader("timestamptz", _UtcTimestamptzLoader)
    conn.adapters.register_loader("timestamptz", _UtcTimestamptzBinaryLoader)


def unreachable(url: str, err: BaseException) -> AgentfirmError:
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return AgentfirmError(
        f"cannot connect to Postgres at {mask_url(url)}: {first_line}",
        hint="check AGENTFIRM_DATABASE_URL and that the server accepts connections",
    )


async def connect(url: str) -> PgConnection:
    """One configured connection; ``AgentfirmError`` (URL password masked) when it fails."""
    try:
        conn = await AsyncConnection.connect(
            url, connect_timeout=CONNECT_TIMEOUT_S, **connection_kwargs()
        )
    except psycopg.OperationalError as err:
        raise unreachable(url, err) from err
    await configure(conn)
    return conn


class IdleCheck:
    """The pool's ``check``: a connection back from use less than ``after_s`` ago goes out again
    untested; one idle longer is tested first (one empty round trip), since a pooler or a firewall
    may have dropped it. Testing every checkout would add a round trip to every statement of a
    busy store — a third of a router call's. The store calls ``returned`` as it gives a
    connection back (not the pool's ``reset`` hook, with which the pool hands every connection
    back through a worker task: a task switch and a delay in every statement)."""

    def __init__(self, after_s: float = 5.0) -> None:
        self._after_s = after_s
        self._returned: WeakKeyDictionary[PgConnection, float] = WeakKeyDictionary()

    async def check(self, conn: PgConnection) -> None:
        returned = self._returned.pop(conn, None)
        if returned is None or monotonic() - returned >= self._after_s:
            await AsyncConnectionPool.check_connection(conn)

    def returned(self, conn: PgConnection) -> None:
        self._returned[conn] = monotonic()


def utc(at: datetime) -> datetime:
    """Naive times are taken as UTC (as the SQLite store does), so the session time zone never
    matters."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def opt_utc(at: datetime | None) -> datetime | None:
    return None if at is None else utc(at)


class PostgresMigrationTarget:
    """``MigrationTarget`` over a connection inside a transaction holding the migration lock."""

    def __init__(self, conn: PgConnection) -> None:
        self._conn = conn

    async def run_script(self, sql: str) -> None:
        # Without parameters psycopg sends the script as one simple query: every statement runs.
        await self._conn.execute(sql.encode())

    async def applied_versions(self) -> set[int]:
        cur = await self._conn.execute("SELECT version FROM schema_migrations")
        return {int(row["version"]) for row in await cur.fetchall()}

    async def record_version(self, migration: Migration, applied_at: datetime) -> None:
        await self._conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
            (migration.version, migration.name, utc(applied_at).isoformat()),
        )


def postgres_migrations() -> list[Migration]:
    return load_migrations(directory=MIGRATIONS_DIRECTORY)


async def apply_migrations(conn: PgConnection, migrations: list[Migration]) -> list[Migration]:
    """Apply pending migrations in one transaction under an advisory lock, so concurrent starters
    apply each exactly once and a failure leaves nothing behind. Returns those applied."""
    async with conn.transaction():
        await conn.execute(_MIGRATION_LOCK_SQL)
        return await migrate(PostgresMigrationTarget(conn), migrations)


async def applied_migrations(conn: PgConnection) -> list[dict[str, Any]]:
    """``[{version, name, applied_at}]`` in version order; empty when never migrated."""
    cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
    row = await cur.fetchone()
    if row is None or not row["present"]:
        return []
    cur = await conn.execute(
        "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
    )
    return [dict(r) for r in await cur.fetchall()]
