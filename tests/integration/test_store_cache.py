"""The SQLite cache in front of Postgres (``agentfirm.store.cache``): the store conformance suite,
and what only a cache has — a copy that must never be served stale, rebuilt when it is wiped,
damaged or filled from another database."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import DictRow

from agentfirm.api import views
from agentfirm.domain.models import Approval, TaskStatus
from agentfirm.errors import NotFound
from agentfirm.settings import load_settings
from agentfirm.store.base import Store
from agentfirm.store.cache import CachedStore
from agentfirm.store.choice import store_for as _store_for
from agentfirm.store.postgres import PostgresStore
from tests.store_conformance import StoreConformance, entry, event, task_with_budget, walk

S = TaskStatus

pytestmark = pytest.mark.integration


class TestCachedStore(StoreConformance):
    @pytest.fixture
    async def store(self, pg_url: str, tmp_path: Path) -> AsyncIterator[Store]:
        store = CachedStore(pg_url, tmp_path / "cache.sqlite3", max_size=10)
        await store.open()
        yield store
        await store.close()


# --- what only a cache has ----------------------------------------------------------------------


async def _fill(store: Store) -> str:
    """A task with every kind of data the cache keeps."""
    task_id = await task_with_budget(store, 10_000)
    await walk(store, task_id, S.CLASSIFIED, S.PLANNED)
    for i in range(3):
        await store.reserve(task_id, f"{task_id}-c{i}", 100)
        await store.settle(f"{task_id}-c{i}", entry(task_id, f"{task_id}-c{i}", 10 * (i + 1)))
    await store.create_approval(Approval(id=f"{task_id}-a1", task_id=task_id, kind="plan"))
    await store.decide_approval(f"{task_id}-a1", "approved", actor="ana", notes="go")
    await store.create_approval(Approval(id=f"{task_id}-a2", task_id=task_id, kind="review"))
    for seq in (1, 2, 3):
        await store.record_event(event(task_id, seq))
    await store.record_event(event(task_id, 1, stream="control"))
    return task_id


async def _views(store: Store, task_ids: list[str]) -> dict[str, Any]:
    """Everything a front end reads of these tasks, as JSON-ready data."""
    return {
        "list": await views.task_rows(store, limit=-1),
        "tasks": [(await store.get_task(t)).model_dump(mode="json") for t in task_ids],
        "detail": [await views.task_detail(store, t) for t in task_ids],
        "costs": [await views.task_costs(store, t) for t in task_ids],
        "ledger": [
            [e.model_dump(mode="json") for e in await store.list_ledger(t)] for t in task_ids
        ],
        "approvals": [
            [a.model_dump(mode="json") for a in await store.list_approvals(t)] for t in task_ids
        ],
        "events": [
            [e.model_dump(mode="json") for e in await store.list_events(t)] for t in task_ids
        ],
    }


def _delete_files(path: Path) -> None:
    for stale in path.parent.glob(path.name + "*"):  # the -wal and -shm files too
        stale.unlink()


def _cached_task_ids(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {task_id for (task_id,) in db.execute("SELECT id FROM tasks")}


class _Counting(CachedStore):
    """Counts the statements sent to Postgres for the cache."""

    def __init__(self, url: str, path: Path) -> None:
        super().__init__(url, path)
        self.sent: list[str] = []

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[DictRow]:
        self.sent.append(sql)
        return await super().query(sql, params)


async def test_a_deleted_cache_is_rebuilt_on_open_and_reads_back_identical(
    pg_url: str,
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache.sqlite3"
    async with CachedStore(pg_url, path) as first:
        task_ids = [await _fill(first) for _ in range(3)]
        before = await _views(first, task_ids)
    await asyncio.to_thread(_delete_files, path)

    async with CachedStore(pg_url, path) as store:
        await store.wait_warm()
        rebuilt = _cached_task_ids(path)
        after = await _views(store, task_ids)
    async with PostgresStore(pg_url) as plain:
        direct = await _views(plain, task_ids)

    assert rebuilt == set(task_ids)
    assert after == before == direct


async def test_changes_made_while_it_was_closed_are_read_on_open(
    pg_url: str,
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache.sqlite3"
    async with CachedStore(pg_url, path) as first:
        task_id = await _fill(first)
        await _views(first, [task_id])
    async with PostgresStore(pg_url) as elsewhere:  # another machine, while the daemon is down
        await elsewhere.settle(f"{task_id}-late", entry(task_id, f"{task_id}-late", 0))
        await elsewhere.decide_approval(f"{task_id}-a2", "revise", actor="bob", notes="more")
        await walk(elsewhere, task_id, S.AWAITING_PLAN_APPROVAL)
        await elsewhere.record_event(event(task_id, 4))
        other = await _fill(elsewhere)
        direct = await _views(elsewhere, [task_id, other])

    async with CachedStore(pg_url, path) as store:
        await store.wait_warm()
        rebuilt = _cached_task_ids(path)
        after = await _views(store, [task_id, other])

    assert rebuilt == {task_id, other}
    assert after == direct


async def test_changes_made_by_another_process_are_read_at_once(
    pg_url: str,
    tmp_path: Path,
) -> None:
    async with CachedStore(pg_url, tmp_path / "cache.sqlite3") as store:
        task_id = await _fill(store)
        await _views(store, [task_id])  # every copy current
        async with PostgresStore(pg_url) as worker:
            await worker.reserve(task_id, "w1", 100)
            await worker.settle("w1", entry(task_id, "w1", 99))
            await worker.decide_approval(f"{task_id}-a2", "approved", actor="bob")
            await walk(worker, task_id, S.AWAITING_PLAN_APPROVAL)
            await worker.record_event(event(task_id, 4))
            other = await _fill(worker)
            direct = await _views(worker, [task_id, other])

            assert await _views(store, [task_id, other]) == direct


async def test_a_change_that_waited_for_another_gets_the_higher_rev(pg_url: str) -> None:
    # Ledger writers of one task no longer queue on a lock before their insert (one statement
    # each), so two may reach the task's rev row at once. The one that waited for the row must
    # end with a rev above the one it waited for, or caches would keep the older copy for good.
    async with PostgresStore(pg_url) as store:
        task_id = await task_with_budget(store, 10_000)
        await store.record_call(entry(task_id, "c0", 0))
        async with await psycopg.AsyncConnection.connect(pg_url) as first:
            async with first.transaction():
                await first.execute(
                    "SELECT rev FROM cache_revs WHERE task_id = %s AND kind = 'ledger' FOR UPDATE",
                    (task_id,),
                )
                waiting = asyncio.create_task(store.record_call(entry(task_id, "c1", 0)))
                # The server is the only one who knows: ask it until the writer waits.
                while not await _waits_for_a_lock(first):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                cur = await first.execute(
                    "UPDATE cache_revs SET rev = nextval('cache_rev_seq')"
                    " WHERE task_id = %s AND kind = 'ledger' RETURNING rev",
                    (task_id,),
                )
                row = await cur.fetchone()
                assert row is not None
                rev_waited_for = row[0]
            await waiting
        rows = await store.query(
            "SELECT rev FROM cache_revs WHERE task_id = %s AND kind = 'ledger'", (task_id,)
        )
    assert rows[0]["rev"] > rev_waited_for


async def _waits_for_a_lock(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND datname = current_database())"
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def test_a_current_copy_is_served_without_fetching_its_rows_again(
    pg_url: str,
    tmp_path: Path,
) -> None:
    async with _Counting(pg_url, tmp_path / "cache.sqlite3") as store:
        await store.wait_warm()
        task_id = await _fill(store)
        first = await store.list_ledger(task_id)
        store.sent = []

        again = await store.list_ledger(task_id)

    assert again == first
    assert len(store.sent) == 1
    assert "cache_revs" in store.sent[0]


async def test_a_damaged_cache_file_is_rebuilt(pg_url: str, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    async with PostgresStore(pg_url) as plain:
        task_id = await _fill(plain)
        direct = await _views(plain, [task_id])
    path.write_bytes(b"this is not a SQLite file" * 100)

    async with CachedStore(pg_url, path) as store:
        await store.wait_warm()

        assert await _views(store, [task_id]) == direct


async def test_a_cache_filled_from_another_database_is_not_served(
    pg_url: str,
    pg_empty_url: str,
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache.sqlite3"
    async with CachedStore(pg_url, path) as first:
        task_id = await _fill(first)
        await _views(first, [task_id])

    async with CachedStore(pg_empty_url, path) as other:
        await other.wait_warm()

        assert await other.list_tasks() == []
        assert await other.list_ledger(task_id) == []
        with pytest.raises(NotFound):
            await other.get_task(task_id)
    assert _cached_task_ids(path) == set()


def test_the_cache_can_be_turned_off(pg_url: str, tmp_path: Path) -> None:
    env = {"AGENTFIRM_HOME": str(tmp_path), "AGENTFIRM_DATABASE_URL": pg_url}

    cached = _store_for(load_settings(env))
    plain = _store_for(load_settings({**env, "AGENTFIRM_STORE_CACHE": "false"}))

    assert isinstance(cached, CachedStore)
    assert type(plain) is PostgresStore


async def test_a_cache_that_cannot_be_kept_costs_speed_only(
    pg_url: str,
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-directory"
    await asyncio.to_thread(blocker.write_text, "a file where the cache directory should be")

    async with CachedStore(pg_url, blocker / "cache.sqlite3") as store:
        task_id = await _fill(store)
        got = await _views(store, [task_id])
    async with PostgresStore(pg_url) as plain:
        direct = await _views(plain, [task_id])

    assert got == direct
    assert len(got["ledger"][0]) == 3
