"""SQLite's one-statement budget bookings (migration 0003): inline on the event loop when the
write lock is free, through the shared connection when it is not — and either way nothing is
held after a cancelled reserve, another task's reservation is never touched, and the WAL stays
bounded."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agentfirm.domain import LedgerEntry
from agentfirm.errors import BadInput
from agentfirm.store import sqlite as sqlite_store
from agentfirm.store.sqlite import SQLiteStore
from tests.store_conformance import task_with_budget


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "agentfirm.sqlite3") as opened:
        yield opened


@contextmanager
def write_locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's view of the file: a connection holding the write lock until the block
    ends (it commits then)."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield other
        other.execute("COMMIT")
    finally:
        other.close()


def row(task_id: str, call_id: str, cost_nano: int, outcome: str = "ok") -> LedgerEntry:
    return LedgerEntry(
        call_id=call_id,
        task_id=task_id,
        tier="execution",
        provider="p",
        model="m",
        cost_nano=cost_nano,
        outcome=outcome,
    )


async def test_a_reserve_waits_for_another_writer_then_books(store: SQLiteStore) -> None:
    task_id = await task_with_budget(store, 100)
    with write_locked(store.path):
        reserving = asyncio.create_task(store.reserve(task_id, "c1", 60))
        await asyncio.sleep(0.05)
        assert not reserving.done()  # the inline attempt found the lock taken and queued

    assert await reserving
    budget = await store.get_budget(task_id)
    assert (budget.reserved_nano, budget.spent_nano) == (60, 0)


async def test_a_reserve_cancelled_while_its_statement_is_queued_holds_nothing(
    store: SQLiteStore,
) -> None:
    task_id = await task_with_budget(store, 100)
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        reserving = asyncio.create_task(store.reserve(task_id, "c1", 60))
        await asyncio.sleep(0.05)  # its INSERT now waits for the lock on the store's thread
        reserving.cancel()
        await asyncio.sleep(0)  # the cancelled reserve queues its undo behind the INSERT
        other.execute("COMMIT")  # both run now, in that order
    finally:
        other.close()
    with pytest.raises(asyncio.CancelledError):
        await reserving

    assert (await store.get_budget(task_id)).reserved_nano == 0
    assert await store.release_reservations(task_id) == 0


async def test_a_row_for_another_tasks_reservation_is_refused_whole(store: SQLiteStore) -> None:
    mine = await task_with_budget(store, 100)
    other = await task_with_budget(store, 100)
    await store.reserve(other, "c1", 40)

    with pytest.raises(BadInput, match="another task"):
        await store.settle("c1", row(mine, "c1", 10))

    assert (await store.get_budget(other)).reserved_nano == 40
    assert (await store.get_budget(mine)).spent_nano == 0
    assert await store.list_ledger(mine) == []


async def test_the_totals_follow_the_rows_whatever_writes_them(store: SQLiteStore) -> None:
    task_id = await task_with_budget(store, 1_000)
    await store.reserve(task_id, "a", 300)
    await store.reserve(task_id, "b", 200)
    # A second connection (another process) settles one call the store reserved.
    with sqlite3.connect(store.path, isolation_level=None) as other:
        other.execute(
            "INSERT INTO ledger (task_id, seq, call_id, tier, provider, model, cost_nano,"
            " outcome, at) VALUES (?, 1, 'a', 'execution', 'p', 'm', 120, 'ok',"
            " '2025-01-01T00:00:00.000000+00:00')",
            (task_id,),
        )
    other.close()

    budget = await store.get_budget(task_id)
    assert (budget.reserved_nano, budget.spent_nano) == (200, 120)


async def test_the_wal_stays_bounded_when_bookings_are_all_that_is_written(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small limits so the test stays quick: a checkpoint past 40 pages, a trip through the
    # shared connection every 10 bookings.
    monkeypatch.setattr(sqlite_store, "_CHECKPOINT_EVERY", 10)
    await store._conn().execute("PRAGMA wal_autocheckpoint = 40")
    task_id = await task_with_budget(store, 10**12)
    wal = store.path.with_name(store.path.name + "-wal")

    for n in range(300):
        await store.reserve(task_id, f"c{n}", 10)
        await store.settle(f"c{n}", row(task_id, f"c{n}", 5))

    page = 4096
    # 600 bookings touch several pages each: thousands of pages if nothing checkpointed.
    assert wal.stat().st_size < 200 * page
    budget = await store.get_budget(task_id)
    assert (budget.spent_nano, budget.reserved_nano) == (1_500, 0)


# The *_now bookings (``BooksInline``): book at once, or write nothing and say so.


async def test_bookings_now_book_exactly_as_their_async_namesakes(store: SQLiteStore) -> None:
    task_id = await task_with_budget(store, 100)

    assert store.reserve_now(task_id, "c1", 60)
    assert store.reserve_now(task_id, "c2", 30)
    assert not store.reserve_now(task_id, "c3", 20)  # 60 + 30 + 20 > 100: nothing held
    assert store.settle_now("c1", row(task_id, "c1", 45))
    assert store.record_call_now(row(task_id, "c2", 0, outcome="error"))

    budget = await store.get_budget(task_id)
    assert (budget.spent_nano, budget.reserved_nano) == (45, 0)
    assert [(e.call_id, e.cost_nano) for e in await store.list_ledger(task_id)] == [
        ("c1", 45),
        ("c2", 0),
    ]


async def test_bookings_now_write_nothing_while_another_writer_holds_the_lock(
    store: SQLiteStore,
) -> None:
    task_id = await task_with_budget(store, 100)
    assert store.reserve_now(task_id, "c1", 60)
    with write_locked(store.path):
        assert not store.reserve_now(task_id, "c2", 10)
        assert not store.settle_now("c1", row(task_id, "c1", 50))
        assert not store.record_call_now(row(task_id, "c2", 0, outcome="budget_refused"))

    budget = await store.get_budget(task_id)
    assert (budget.spent_nano, budget.reserved_nano) == (0, 60)
    assert await store.list_ledger(task_id) == []


async def test_bookings_now_defer_to_our_own_connection_while_it_writes(
    store: SQLiteStore,
) -> None:
    task_id = await task_with_budget(store, 100)
    async with store._lock:  # the shared connection is mid-transaction
        assert not store.reserve_now(task_id, "c1", 10)
        assert not store.settle_now("c1", row(task_id, "c1", 5))
    assert (await store.get_budget(task_id)).reserved_nano == 0


async def test_bookings_now_refuse_bad_input_like_their_async_namesakes(
    store: SQLiteStore,
) -> None:
    mine = await task_with_budget(store, 100)
    other = await task_with_budget(store, 100)
    assert store.reserve_now(other, "c1", 40)

    with pytest.raises(BadInput, match="negative"):
        store.reserve_now(mine, "c2", -1)
    with pytest.raises(BadInput, match="already holds"):
        store.reserve_now(other, "c1", 1)
    with pytest.raises(BadInput, match="another task"):
        store.settle_now("c1", row(mine, "c1", 10))
    with pytest.raises(BadInput, match="negative cost"):
        store.settle_now("c1", row(other, "c1", -5))

    assert (await store.get_budget(other)).reserved_nano == 40
    assert await store.list_ledger(mine) == []
