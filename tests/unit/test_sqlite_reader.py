"""The plain reader of the SQLite store (``tasks list`` and ``costs ID`` in-process): the same
views as the store's, and no answer — the store then opens — wherever the store would create,
migrate or report something first."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from agentfirm.api.views import task_costs, task_rows
from agentfirm.domain.models import Approval, TaskStatus
from agentfirm.errors import NotFound
from agentfirm.store.sqlite import SQLiteStore
from agentfirm.store.sqlite.reader import SQLiteReader, run_now
from tests.store_conformance import created, entry, walk


async def _filled(path: Path) -> tuple[str, str]:
    store = SQLiteStore(path)
    await store.open()
    try:
        quiet = await created(store)
        busy = await created(store, persona="analyst")
        await walk(store, busy.id, TaskStatus.CLASSIFIED)
        await store.set_budget(busy.id, 10_000)
        await store.create_approval(Approval(id="a1", task_id=busy.id, kind="clarify"))
        for n, outcome in enumerate(("ok", "cancelled", "error")):
            await store.record_call(entry(busy.id, f"c{n}", 10 * n, outcome=outcome))
        return quiet.id, busy.id
    finally:
        await store.close()


async def test_the_reader_shows_what_the_store_shows(tmp_path: Path) -> None:
    path = tmp_path / "agentfirm.db"
    _, busy = await _filled(path)
    store = SQLiteStore(path, reads_only=True)
    await store.open()
    try:
        expected = (
            await task_rows(store, driven=lambda _: False),
            await task_costs(store, busy, calls=2),
            await task_costs(store, busy, calls=2, after_seq=2),
        )
    finally:
        await store.close()

    reader = SQLiteReader.open(path)
    assert reader is not None
    with reader:
        assert (
            run_now(task_rows(reader, driven=lambda _: False)),
            run_now(task_costs(reader, busy, calls=2)),
            run_now(task_costs(reader, busy, calls=2, after_seq=2)),
        ) == expected
        with pytest.raises(NotFound, match="task t_missing not found"):
            run_now(task_costs(reader, "t_missing"))
    assert expected[0][0]["waiting_on"] == "clarify"


async def test_no_reader_where_the_store_must_open_first(tmp_path: Path) -> None:
    assert SQLiteReader.open(tmp_path / "missing.db") is None  # the store creates it
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    assert SQLiteReader.open(tmp_path / "junk.db") is None  # the store names the damage
    path = tmp_path / "agentfirm.db"
    await _filled(path)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM schema_migrations WHERE version = 1")
    db.close()
    assert SQLiteReader.open(path) is None  # a migration is pending: the store applies it


def test_a_read_that_suspends_is_refused() -> None:
    async def suspends() -> int:
        await asyncio.sleep(0)
        return 1

    with pytest.raises(RuntimeError, match="suspended"):
        run_now(suspends())
