"""Opening a SQLite file another process is writing waits for it, including the one-time switch
of a new file to WAL, where SQLite answers "database is locked" at once instead of waiting."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from agentfirm.store.sqlite.conn import open_sqlite


async def test_switching_a_file_to_wal_waits_for_another_connections_write(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new.sqlite3"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        writer.execute("CREATE TABLE t (x)")  # a file still in rollback-journal mode
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO t VALUES (1)")
        asyncio.get_running_loop().call_later(0.3, writer.execute, "COMMIT")

        db = await open_sqlite(path)
        try:
            rows = await db.execute_fetchall("PRAGMA journal_mode")
            seen = await db.execute_fetchall("SELECT x FROM t")
        finally:
            await db.close()
    finally:
        writer.close()

    assert [tuple(r) for r in rows] == [("wal",)]
    assert [tuple(r) for r in seen] == [(1,)]
