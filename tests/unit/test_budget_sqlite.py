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

from agentfirm.domain.models import LedgerEntry, ModuleRun
from agentfirm.errors import BadInput
from agentfirm.router.budget import BudgetGuard
from agentfirm.store.sqlite import SQLiteStore, inline
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
    task_id = await _small_wal_limits(store, monkeypatch)

    for n in range(300):
        await store.reserve(task_id, f"c{n}", 10)
        await store.settle(f"c{n}", row(task_id, f"c{n}", 5))

    await _assert_wal_bounded_after_300_calls(store, task_id)


async def _small_wal_limits(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> str:
    """Small limits so the WAL tests stay quick: a checkpoint past 40 pages, a trip through the
    shared connection every 10 bookings. A funded task's id."""
    monkeypatch.setattr(inline, "CHECKPOINT_EVERY", 10)
    await store._conn().execute("PRAGMA wal_autocheckpoint = 40")
    return await task_with_budget(store, 10**12)


async def _assert_wal_bounded_after_300_calls(store: SQLiteStore, task_id: str) -> None:
    """300 calls reserved at 10 and settled at 5: 600 bookings touch several pages each,
    thousands of pages if nothing checkpointed."""
    wal = store.path.with_name(store.path.name + "-wal")
    assert wal.stat().st_size < 200 * 4096
    budget = await store.get_budget(task_id)
    assert (budget.spent_nano, budget.reserved_nano) == (1_500, 0)


async def test_the_wal_stays_bounded_when_bookings_are_made_as_the_router_makes_them(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The router books inline first and, refused, the slow way (``BudgetGuard``): the retry
    # must leave the shared connection its turn, or nothing ever checkpoints.
    task_id = await _small_wal_limits(store, monkeypatch)
    guard = BudgetGuard(store)

    for n in range(300):
        call, booked = f"c{n}", row(task_id, f"c{n}", 5)
        if not guard.reserve_now(task_id, call, 10):
            await guard.reserve(task_id, call, 10)
        if not guard.settle_now(call, booked):
            await guard.settle(call, booked)

    await _assert_wal_bounded_after_300_calls(store, task_id)


async def test_every_kind_of_write_goes_inline_again_once_the_shared_connection_had_its_turn(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A transaction (set_budget), a one-statement write (upsert_module_run) and a booking each
    # take the slow way's turn when it comes: each must say it did, or every later write would
    # go the slow way (the inline turns stop counting).
    monkeypatch.setattr(inline, "CHECKPOINT_EVERY", 5)
    task_id = await task_with_budget(store, 10**12)
    writes = [
        lambda n: store.set_budget(task_id, 10**12 + n),
        lambda n: store.upsert_module_run(ModuleRun(task_id=task_id, module_id=f"m{n}")),
        lambda n: store.record_call(row(task_id, f"c{n}", 0, outcome="error")),
    ]
    for write in writes:
        before = store._inline._writes
        for n in range(20):
            await write(n)
        assert store._inline._writes - before == 20  # one turn each, inline or the slow way


async def test_a_reserve_cancelled_on_the_shared_connection_holds_nothing(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every inline write refused (its turn to checkpoint): the reserve goes to the shared
    # connection's thread, and is cancelled while its INSERT runs there.
    monkeypatch.setattr(inline, "CHECKPOINT_EVERY", 1)
    task_id = await task_with_budget(store, 100)
    cancelled = asyncio.create_task(store.reserve(task_id, "c1", 10))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled

    assert await store.reserve(task_id, "c2", 90)
    assert (await store.get_budget(task_id)).reserved_nano == 90


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


async def test_migration_10_keeps_the_calls_in_flight_and_what_they_hold(tmp_path: Path) -> None:
    """Migration 0010 rebuilds ``reservations`` keyed by call id: a store opened with calls in
    flight keeps them, their rows and the budget they hold, and its bookings still move it."""
    from agentfirm.store.migrate import SCHEMA_MIGRATIONS_DDL, load_migrations
    from tests.store_conformance import entry

    path = tmp_path / "agentfirm.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(SCHEMA_MIGRATIONS_DDL)
        for migration in load_migrations():
            if migration.version < 10:
                db.executescript(migration.sql)
                db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, '2030-01-01T00:00:00')",
                    (migration.version, migration.name),
                )
        db.execute(
            "INSERT INTO tasks (id, request, status, created_at, updated_at)"
            " VALUES ('t1', 'r', 'running', '2030-01-01T00:00:00', '2030-01-01T00:00:00')"
        )
        db.execute(
            "INSERT INTO budgets (task_id, ceiling_nano, updated_at)"
            " VALUES ('t1', 1000, '2030-01-01T00:00:00')"
        )
        db.executemany(
            "INSERT INTO reservations (call_id, task_id, amount_nano, created_at, module_id, tier,"
            " provider, model, simulated) VALUES (?, 't1', ?, '2030-01-01T00:00:01', 'm1',"
            " 'execution', 'offline', 'm', 1)",
            [("c1", 300), ("c2", 200)],
        )

    async with SQLiteStore(path) as store:
        assert (await store.get_budget("t1")).reserved_nano == 500
        await store.settle("c1", entry("t1", "c1", 120))
        assert await store.release_reservations("t1") == 1  # c2, booked at its 200
        budget = await store.get_budget("t1")
        assert (budget.spent_nano, budget.reserved_nano) == (320, 0)
        assert [(e.call_id, e.cost_nano, e.module_id) for e in await store.list_ledger("t1")] == [
            ("c1", 120, None),
            ("c2", 200, "m1"),
        ]
    with sqlite3.connect(path) as db:
        (ddl,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'reservations'").fetchone()
    assert ddl.rstrip().endswith("WITHOUT ROWID")


async def test_a_booking_checks_for_a_dead_holders_row_in_their_own_index(
    store: SQLiteStore,
) -> None:
    """The settle's check that its call was not booked already for a dead holder seeks the
    partial index of migration 0011, whose condition must stay ``BOOKED_DEAD`` term for term:
    otherwise every settle would scan the whole ledger."""
    from agentfirm.store.sqlite.booking import _BOOK_SQL

    params = {name: None for name in ("task_id", "call_id", "module_id", "tier", "provider")}
    params |= {name: None for name in ("model", "input_tokens", "cached_input_tokens")}
    params |= {name: None for name in ("output_tokens", "cost_nano", "latency_ms", "outcome")}
    params |= {"simulated": None, "error": None, "at": None}
    with sqlite3.connect(store.path) as db:
        plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {_BOOK_SQL}", params)]
    assert any("USING INDEX ledger_booked_dead" in step for step in plan), plan
    assert not any(step.startswith("SCAN ledger") for step in plan), plan
