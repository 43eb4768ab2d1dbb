"""The core of ``agentfirm db migrate|status``, for both stores: ``sqlite:///PATH`` and
``postgresql://…`` (``postgres://`` too). The CLI parses, calls these, renders."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite

from agentfirm.errors import BadInput
from agentfirm.settings import mask_url
from agentfirm.store.migrate import Migration, load_migrations
from agentfirm.store.migrate import migrate as run_migrations
from agentfirm.store.postgres.conn import (
    applied_migrations,
    apply_migrations,
    connect,
    postgres_migrations,
)
from agentfirm.store.sqlite.conn import (
    SQLiteMigrationTarget,
    check_integrity,
    immediate_transaction,
    open_sqlite,
)
from agentfirm.store.sqlite.store import store_way_out

_SQLITE = "sqlite:///"
_POSTGRES = ("postgresql://", "postgres://")


def _backend(url: str) -> str:
    if url.startswith(_SQLITE):
        return "sqlite"
    if url.startswith(_POSTGRES):
        return "postgresql"
    raise BadInput(
        f"database URL {mask_url(url)} is neither sqlite:/// nor postgresql://",
        hint="use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB",
    )


def _sqlite_path(url: str) -> Path:
    # Same reading as the app's: what follows ``sqlite:///`` is the path.
    return Path(url.removeprefix(_SQLITE))


async def migrate(url: str) -> list[int]:
    """Apply pending migrations to the database at ``url`` (creating a SQLite file if needed);
    return the versions applied now, oldest first (empty when already up to date). Safe to run
    while other processes use or migrate the same database."""
    if _backend(url) == "postgresql":
        migrations = await asyncio.to_thread(postgres_migrations)
        conn = await connect(url)
        try:
            applied = await apply_migrations(conn, migrations)
        finally:
            await conn.close()
    else:
        migrations = await asyncio.to_thread(load_migrations)
        path = _sqlite_path(url)
        db = await open_sqlite(path, way_out=store_way_out(path))
        try:
            async with immediate_transaction(db, asyncio.Lock()) as tx:
                applied = await run_migrations(SQLiteMigrationTarget(tx), migrations)
        finally:
            await db.close()
    return [m.version for m in applied]


async def status(url: str) -> dict[str, Any]:
    """Read-only: ``{backend, database (password masked), current_version, latest_version,
    up_to_date, applied: [{version, name, applied_at}], pending: [{version, name}]}``. A missing
    SQLite file reads as an empty database (it is not created)."""
    backend = _backend(url)
    if backend == "postgresql":
        known = await asyncio.to_thread(postgres_migrations)
        conn = await connect(url)
        try:
            applied = await applied_migrations(conn)
        finally:
            await conn.close()
    else:
        known = await asyncio.to_thread(load_migrations)
        applied = await _sqlite_applied(_sqlite_path(url))
    return _report(backend, url, known, applied)


async def _sqlite_applied(path: Path) -> list[dict[str, Any]]:
    if not await asyncio.to_thread(path.exists):
        return []
    async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        # A status that says "up to date" of a damaged file would send the user the wrong way.
        await check_integrity(db, path, store_way_out(path), again=True)
        present = await db.execute_fetchall(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        )
        if not list(present):
            return []
        rows = await db.execute_fetchall(
            "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
        )
        return [dict(row) for row in rows]


def _report(
    backend: str, url: str, known: list[Migration], applied: list[dict[str, Any]]
) -> dict[str, Any]:
    done = {int(row["version"]) for row in applied}
    pending = [{"version": m.version, "name": m.name} for m in known if m.version not in done]
    return {
        "backend": backend,
        "database": mask_url(url),
        "current_version": max(done, default=0),
        "latest_version": max((m.version for m in known), default=0),
        "up_to_date": not pending,
        "applied": applied,
        "pending": pending,
    }
