"""The store conformance suite (``tests/store_conformance.py``) on a real PostgreSQL, plus what only
a shared server has: several pools and processes spending one budget, concurrent migrations, server
settings (time zone, collation) that must not change what the store returns."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import timedelta

import psycopg
import pytest

from agentfirm.domain.costs import summarize
from agentfirm.domain.models import ModuleRun
from agentfirm.errors import AgentfirmError
from agentfirm.money import nano_to_float
from agentfirm.router.base import Message
from agentfirm.router.providers.offline import OfflineProvider
from agentfirm.store import db_admin
from agentfirm.store.base import Store
from agentfirm.store.postgres import PostgresStore
from agentfirm.store.postgres.conn import apply_migrations, connect, postgres_migrations
from tests.fakes.pg_proxy import RoundTripCounter
from tests.fakes.routing import funded_task, router_for
from tests.integration.pg_server import PgServer
from tests.store_conformance import StoreConformance, created, entry, task_with_budget

pytestmark = pytest.mark.integration

_KNOWN_VERSIONS = [m.version for m in postgres_migrations()]


class TestPostgresStore(StoreConformance):
    @pytest.fixture
    async def store(self, pg_url: str) -> AsyncIterator[Store]:
        store = PostgresStore(pg_url, max_size=10)
        await store.open()
        yield store
        await store.close()


# --- several pools, several processes ------------------------------------------------------------


async def test_reserves_through_separate_pools_fill_the_ceiling_exactly(
    pg_url: str,
) -> None:
    async with PostgresStore(pg_url) as daemon, PostgresStore(pg_url) as worker:
        task_id = await task_with_budget(daemon, 20 * 7)

        results = await asyncio.gather(
            *((daemon if i % 2 else worker).reserve(task_id, f"c{i}", 7) for i in range(60))
        )

        budget = await daemon.get_budget(task_id)
    assert sum(results) == 20
    assert budget.reserved_nano == budget.ceiling_nano


_HAMMER = """
import asyncio, sys
from agentfirm.domain.models import LedgerEntry
from agentfirm.store.postgres import PostgresStore

async def main(url: str, task_id: str, who: str, attempts: int, amount: int) -> None:
    async with PostgresStore(url, max_size=4) as store:
        print("ready", flush=True)
        sys.stdin.readline()

        async def spend(i: int) -> bool:
            call_id = f"{who}-{i}"
            if not await store.reserve(task_id, call_id, amount):
                return False
            await store.settle(call_id, LedgerEntry(
                call_id=call_id, task_id=task_id, tier="utility", provider="offline",
                model="m", cost_nano=amount))
            return True

        won = sum(await asyncio.gather(*(spend(i) for i in range(attempts))))
    print(f"won={won}", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
"""


async def test_reserve_across_processes_never_overspends(pg_url: str) -> None:
    async with PostgresStore(pg_url) as store:
        task_id = await task_with_budget(store, 100 * 7)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _HAMMER,
            pg_url,
            task_id,
            who,
            "60",
            "7",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for who in ("p1", "p2", "p3")
    ]
    for proc in procs:  # start them together, so they contend for the same budget row
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        while line and line.strip() != b"ready":
            line = await proc.stdout.readline()
    outputs = await asyncio.gather(*(proc.communicate(b"go\n") for proc in procs))

    won = [int(out.split(b"won=")[-1]) for out, _ in outputs]
    assert [proc.returncode for proc in procs] == [0, 0, 0]
    async with PostgresStore(pg_url) as store:
        budget = await store.get_budget(task_id)
        ledger = await store.list_ledger(task_id)
    assert sum(won) == 100
    assert budget.spent_nano == sum(e.cost_nano for e in ledger) == budget.ceiling_nano


async def test_concurrent_settles_number_the_ledger_without_gaps(pg_url: str) -> None:
    async with PostgresStore(pg_url) as daemon, PostgresStore(pg_url) as worker:
        task_id = await task_with_budget(daemon, 1_000)
        await asyncio.gather(*(daemon.reserve(task_id, f"c{i}", 10) for i in range(30)))

        await asyncio.gather(
            *(
                (daemon if i % 2 else worker).settle(f"c{i}", entry(task_id, f"c{i}", 10))
                for i in range(30)
            )
        )

    with psycopg.connect(pg_url) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM ledger ORDER BY seq").fetchall()]
    assert seqs == list(range(1, 31))


async def test_a_slow_holder_s_settle_frees_a_new_hold_of_its_dead_booked_call(
    pg_url: str,
) -> None:
    # A call booked at its reservation for a holder presumed dead, then reserved again under its
    # id: the late settle books nothing more and frees the new hold instead of keeping it reserved
    # for ever.
    async with PostgresStore(pg_url) as store:
        task_id = await task_with_budget(store, 100)
        row = entry(task_id, "c1", 3)
        assert await store.reserve(task_id, "c1", 7, for_call=row)
        assert await store.release_reservations(task_id) == 1
        assert await store.reserve(task_id, "c1", 7, for_call=row)

        await store.settle("c1", row)

        budget = await store.get_budget(task_id)
        ledger = await store.list_ledger(task_id)
    assert (budget.spent_nano, budget.reserved_nano) == (7, 0)
    assert [(e.call_id, e.cost_nano, e.outcome) for e in ledger] == [("c1", 7, "cancelled")]


# --- extras ---------------------------------------------------------------------------------------


async def test_summarize_costs_agrees_with_summarizing_the_ledger(pg_url: str) -> None:
    async with PostgresStore(pg_url) as store:
        task_id = await task_with_budget(store, 10_000)
        calls = [
            ("b", "execution", "openai"),
            (None, "reasoning", "anthropic"),
            ("a", "utility", "openai"),
            ("b", "utility", "anthropic"),
        ]
        for i, (module_id, tier, provider) in enumerate(calls):
            await store.reserve(task_id, f"c{i}", 100)
            row = entry(task_id, f"c{i}", 10 * (i + 1)).model_copy(
                update={
                    "module_id": module_id,
                    "tier": tier,
                    "provider": provider,
                    "simulated": i == 2,
                }
            )
            await store.settle(f"c{i}", row)

        got = await store.summarize_costs(task_id)
        expected = summarize(await store.list_ledger(task_id))

    as_usd = {
        key: [(k, nano_to_float(v)) for k, v in got[key].items()]
        for key in ("by_module", "by_tier", "by_provider")
    }
    assert as_usd == {key: list(expected[key].items()) for key in as_usd}
    assert (nano_to_float(got["total_nano"]), got["simulated"], got["calls"]) == (
        expected["total_usd"],
        True,
        4,
    )


_LEDGER_AGGREGATE = (
    "SELECT task_id, module_id, tier, provider, SUM(cost_nano)::BIGINT, COUNT(*),"
    " BOOL_OR(simulated), MIN(at), MIN(seq) FROM ledger"
    " GROUP BY task_id, module_id, tier, provider ORDER BY 1, 2 NULLS FIRST, 3, 4"
)
_TOTALS = (
    "SELECT task_id, module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq"
    " FROM cost_totals ORDER BY 1, 2 NULLS FIRST, 3, 4"
)


def _totals_and_ledger(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        return conn.execute(_TOTALS).fetchall(), conn.execute(_LEDGER_AGGREGATE).fetchall()


_LEDGER_FIRM_AGGREGATE = (
    "SELECT module_id, tier, provider, SUM(cost_nano)::BIGINT, COUNT(*), BOOL_OR(simulated),"
    " MIN(at), MIN(seq) FROM ledger GROUP BY module_id, tier, provider ORDER BY 1 NULLS FIRST, 2, 3"
)
_ROLLUP = (
    "SELECT module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq"
    " FROM cost_rollup ORDER BY 1 NULLS FIRST, 2, 3"
)


def _rollup_and_ledger(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The firm-wide totals of migration 0004 next to the same aggregate of the ledger."""
    with psycopg.connect(url) as conn:
        return conn.execute(_ROLLUP).fetchall(), conn.execute(_LEDGER_FIRM_AGGREGATE).fetchall()


async def test_running_totals_count_repeated_groups_and_the_task_level_module(
    pg_url: str,
) -> None:
    async with PostgresStore(pg_url) as store:
        task_id = await task_with_budget(store, 10_000)
        for i, module_id in enumerate(["a", None, "a", None, "a"]):
            row = entry(task_id, f"c{i}", 7 * (i + 1)).model_copy(
                update={"module_id": module_id, "simulated": i == 3}
            )
            await store.reserve(task_id, row.call_id, 100)
            await store.settle(row.call_id, row)
        await store.record_call(entry(task_id, "refused", 0, outcome="budget_refused"))

        got = await store.summarize_costs(task_id)

    totals, ledger = _totals_and_ledger(pg_url)
    assert totals == ledger
    assert (got["by_module"], got["calls"], got["simulated"]) == (
        {"a": 7 + 21 + 35, "_task": 14 + 28},
        6,
        True,
    )


async def test_running_totals_and_cache_revs_follow_lone_and_batched_settles(
    pg_url: str,
) -> None:
    # A lone settle moves the totals and the cache rev itself; a batch through the triggers.
    async with PostgresStore(pg_url) as store:
        tasks = [await task_with_budget(store, 10_000) for _ in range(2)]
        rows = [
            entry(task_id, f"c{t}-{i}", 3 * i + t).model_copy(
                update={"module_id": ("a", None, "b")[i % 3], "simulated": i == 4}
            )
            for t, task_id in enumerate(tasks)
            for i in range(6)
        ]
        revs = []
        for row in rows[:4]:
            await store.reserve(row.task_id, row.call_id, 100)
            await store.settle(row.call_id, row)
            revs.append(await store.query("SELECT MAX(rev) AS rev FROM cache_revs"))
        await asyncio.gather(*(store.reserve(r.task_id, r.call_id, 100) for r in rows[4:]))
        await asyncio.gather(*(store.settle(r.call_id, r) for r in rows[4:]))
        ledger_revs = await store.query(
            "SELECT task_id FROM cache_revs WHERE kind = 'ledger' ORDER BY task_id"
        )

    totals, ledger = _totals_and_ledger(pg_url)
    rollup, firm = _rollup_and_ledger(pg_url)
    assert totals == ledger
    assert rollup == firm
    assert [r[0]["rev"] for r in revs] == sorted({r[0]["rev"] for r in revs})  # each settle bumps
    assert [r["task_id"] for r in ledger_revs] == sorted(tasks)


async def test_running_totals_follow_bulk_inserts_updates_and_deletes(
    pg_url: str,
) -> None:
    async with PostgresStore(pg_url) as store:
        task_id = await task_with_budget(store, 10_000)
        await store.record_call(entry(task_id, "first", 0, outcome="error"))
    columns = "task_id, seq, call_id, module_id, tier, provider, model, cost_nano, outcome, at"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        with conn.cursor().copy(f"COPY ledger ({columns}) FROM STDIN") as copy:
            for seq in range(2, 50):
                copy.write_row(
                    (
                        task_id,
                        seq,
                        f"c{seq}",
                        f"m{seq % 3}",
                        "execution",
                        "offline",
                        "m",
                        seq,
                        "ok",
                        "2030-01-01T00:00:00Z",
                    )
                )
        conn.execute("UPDATE ledger SET module_id = 'moved' WHERE seq = 5")
        conn.execute("UPDATE ledger SET cost_nano = 1000 WHERE seq = 6")
        conn.execute("DELETE FROM ledger WHERE seq IN (7, 8, 2)")

    totals, ledger = _totals_and_ledger(pg_url)
    assert totals == ledger
    assert len(totals) == 5  # m0..m2, "moved" and the task-level error
    rollup, firm_ledger = _rollup_and_ledger(pg_url)
    assert rollup == firm_ledger
    assert len(rollup) == 5

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM ledger WHERE module_id IN ('m1', 'moved')")
        conn.execute("UPDATE ledger SET simulated = true WHERE seq = 9")
    rollup, firm_ledger = _rollup_and_ledger(pg_url)
    assert rollup == firm_ledger
    assert [row[0] for row in rollup] == [None, "m0", "m2"]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("TRUNCATE ledger")
    assert _rollup_and_ledger(pg_url) == ([], [])


async def test_migrating_a_database_with_a_ledger_counts_it_into_the_totals(
    pg_empty_url: str,
) -> None:
    first, *later = postgres_migrations()
    conn = await connect(pg_empty_url)
    try:
        await apply_migrations(conn, [first])
        await conn.execute(
            "INSERT INTO ledger (task_id, seq, call_id, module_id, tier, provider, model,"
            " cost_nano, outcome, at) SELECT 't1', n, 'c' || n, 'm' || (n % 4), 'utility',"
            " 'offline', 'm', n, 'ok', now() FROM generate_series(1, 40) AS n"
        )
        await apply_migrations(conn, later)
    finally:
        await conn.close()

    totals, ledger = _totals_and_ledger(pg_empty_url)
    assert totals == ledger
    assert len(totals) == 4
    rollup, firm_ledger = _rollup_and_ledger(pg_empty_url)
    assert rollup == firm_ledger
    assert len(rollup) == 4


async def test_migrating_a_database_with_totals_counts_them_into_the_firm_rollup(
    pg_empty_url: str,
) -> None:
    migrations = postgres_migrations()
    conn = await connect(pg_empty_url)
    try:
        await apply_migrations(conn, [m for m in migrations if m.version < 4])
        await conn.execute(
            "INSERT INTO ledger (task_id, seq, call_id, module_id, tier, provider, model,"
            " cost_nano, outcome, simulated, at) SELECT 't' || (n % 3), n, 'c' || n,"
            " 'm' || (n % 4), 'utility', 'offline', 'm', n, 'ok', n = 7,"
            " now() + n * interval '1 second' FROM generate_series(1, 40) AS n"
        )
        await apply_migrations(conn, [m for m in migrations if m.version >= 4])
    finally:
        await conn.close()

    rollup, firm_ledger = _rollup_and_ledger(pg_empty_url)
    assert rollup == firm_ledger
    assert len(rollup) == 4


async def test_firm_summary_agrees_with_summarizing_every_task_s_ledger(
    pg_url: str,
) -> None:
    async with PostgresStore(pg_url) as store:
        ledger = []
        for t in range(3):
            task_id = await task_with_budget(store, 10_000)
            for i, (module_id, provider) in enumerate(
                [("b", "openai"), (None, "anthropic"), ("a", "openai"), ("b", "openai")]
            ):
                await store.reserve(task_id, f"c{i}", 100)
                row = entry(task_id, f"c{i}", 10 * (i + 1) + t).model_copy(
                    update={"module_id": module_id, "provider": provider, "simulated": t == 2}
                )
                await store.settle(f"c{i}", row)
            ledger += await store.list_ledger(task_id)

        got = await store.summarize_all_costs()
    expected = summarize(ledger)

    as_usd = {
        key: [(k, nano_to_float(v)) for k, v in got[key].items()]
        for key in ("by_module", "by_tier", "by_provider")
    }
    assert as_usd == {key: list(expected[key].items()) for key in as_usd}
    assert (nano_to_float(got["total_nano"]), got["simulated"], got["calls"]) == (
        expected["total_usd"],
        True,
        12,
    )
    rollup, firm_ledger = _rollup_and_ledger(pg_url)
    assert rollup == firm_ledger


# --- migrations ----------------------------------------------------------------------------------


async def test_stores_opening_a_new_database_at_once_migrate_it_once(
    pg_empty_url: str,
) -> None:
    stores = [PostgresStore(pg_empty_url, max_size=2) for _ in range(3)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        task = await created(stores[0])

        assert await stores[2].get_task(task.id) == task
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    with psycopg.connect(pg_empty_url) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
    assert versions == [(v,) for v in _KNOWN_VERSIONS]


async def test_db_migrate_applies_pending_versions_once(pg_empty_url: str) -> None:
    first = await db_admin.migrate(pg_empty_url)
    again = await db_admin.migrate(pg_empty_url)

    assert (first, again) == (_KNOWN_VERSIONS, [])


async def test_db_status_lists_pending_versions_of_a_new_database(
    pg_empty_url: str,
) -> None:
    status = await db_admin.status(pg_empty_url)

    assert (status["backend"], status["current_version"], status["up_to_date"]) == (
        "postgresql",
        0,
        False,
    )
    assert [m["version"] for m in status["pending"]] == _KNOWN_VERSIONS


async def test_db_status_of_a_migrated_database_is_up_to_date(pg_url: str) -> None:
    status = await db_admin.status(pg_url)

    assert (status["current_version"], status["pending"]) == (_KNOWN_VERSIONS[-1], [])
    assert [m["name"] for m in status["applied"]] == [m.name for m in postgres_migrations()]


async def test_unreachable_server_fails_with_the_password_masked(
    pg_server: PgServer,
) -> None:
    url = f"postgresql://agentfirm:s3cret@127.0.0.1:{pg_server.port}/no_such_database"

    with pytest.raises(AgentfirmError) as caught:
        await PostgresStore(url).open()

    assert "s3cret" not in str(caught.value)
    assert "no_such_database" in str(caught.value)


# --- server settings the store must not depend on ------------------------------------------------


async def test_times_read_back_in_utc_whatever_the_server_time_zone(
    pg_server: PgServer,
) -> None:
    url = pg_server.create_database()
    try:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE \"{name}\" SET timezone = 'Asia/Kolkata'".encode())
        async with PostgresStore(url) as store:
            task = await created(store)

            got = await store.get_task(task.id)
    finally:
        pg_server.drop_database(url)

    assert got == task
    assert got.created_at.utcoffset() == timedelta(0)


async def test_ids_sort_bytewise_under_a_linguistic_collation(
    pg_server: PgServer,
) -> None:
    url = pg_server.create_database("LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
    try:
        async with PostgresStore(url) as store:
            task = await created(store)
            for module_id in ("b", "B", "a"):
                await store.upsert_module_run(ModuleRun(task_id=task.id, module_id=module_id))

            runs = await store.list_module_runs(task.id)
    finally:
        pg_server.drop_database(url)

    assert [r.module_id for r in runs] == ["B", "a", "b"]


# --- round trips ----------------------------------------------------------------------------------


async def test_a_router_call_takes_at_most_three_round_trips(pg_url: str) -> None:
    calls = 10
    async with RoundTripCounter(pg_url) as proxy, PostgresStore(proxy.url, max_size=1) as store:
        task_id = await funded_task(store)
        router = router_for(store, {"offline": OfflineProvider()}, ["offline:gpt-5"])
        await router.call(tier="execution", messages=_MESSAGES, task_id=task_id)  # connected
        proxy.trips = 0

        for _ in range(calls):
            await router.call(tier="execution", messages=_MESSAGES, task_id=task_id)

        trips = proxy.trips
        ledger = await store.list_ledger(task_id)
    assert len(ledger) == calls + 1  # each call booked its row
    # A reserve (marked sent in the same trip) and a settle; the bound is three.
    assert trips == 2 * calls


_MESSAGES = [Message("system", "You are terse."), Message("user", "Summarise the quarter.")]


async def test_concurrent_calls_on_one_task_share_round_trips(pg_url: str) -> None:
    calls = 32
    async with RoundTripCounter(pg_url) as proxy, PostgresStore(proxy.url, max_size=4) as store:
        task_id = await funded_task(store)
        router = router_for(store, {"offline": OfflineProvider()}, ["offline:gpt-5"])
        await router.call(tier="execution", messages=_MESSAGES, task_id=task_id)  # connected
        proxy.trips = 0

        await asyncio.gather(
            *(
                router.call(tier="execution", messages=_MESSAGES, task_id=task_id)
                for _ in range(calls)
            )
        )

        trips = proxy.trips
        ledger = await store.list_ledger(task_id)
        budget = await store.get_budget(task_id)
    # Reserves and settles issued while one is on its way go together in the next.
    assert trips <= calls
    assert [e.call_id for e in ledger].count(ledger[0].call_id) == 1
    assert len(ledger) == calls + 1
    assert (budget.spent_nano, budget.reserved_nano) == (sum(e.cost_nano for e in ledger), 0)


async def test_a_settle_the_server_refuses_fails_alone_among_concurrent_ones(
    pg_url: str,
) -> None:
    async with PostgresStore(pg_url) as store:
        task_id = await task_with_budget(store, 1_000)
        rows = [entry(task_id, f"c{i}", 10) for i in range(6)]
        rows[3] = rows[3].model_copy(update={"model": "bad\x00model"})  # no NUL in Postgres text
        await asyncio.gather(*(store.reserve(task_id, row.call_id, 10) for row in rows))

        settled = await asyncio.gather(
            *(store.settle(row.call_id, row) for row in rows), return_exceptions=True
        )

        ledger = await store.list_ledger(task_id)
        budget = await store.get_budget(task_id)
    assert [isinstance(result, Exception) for result in settled] == [False] * 3 + [
        True,
        False,
        False,
    ]
    assert sorted(e.call_id for e in ledger) == ["c0", "c1", "c2", "c4", "c5"]
    assert (budget.spent_nano, budget.reserved_nano) == (50, 10)


async def test_a_reserve_cancelled_while_waiting_for_its_batch_holds_nothing(pg_url: str) -> None:
    async with PostgresStore(pg_url) as store:
        task_id = await task_with_budget(store, 1_000)
        first = asyncio.create_task(store.reserve(task_id, "c0", 10))
        await asyncio.sleep(0)  # on its way, alone
        queued = [asyncio.create_task(store.reserve(task_id, f"c{i}", 10)) for i in (1, 2)]
        await asyncio.sleep(0)  # both wait for the next batch
        queued[0].cancel()

        with pytest.raises(asyncio.CancelledError):
            await queued[0]

        assert await first
        assert await queued[1]
        budget = await store.get_budget(task_id)
        held = await store.query("SELECT call_id FROM reservations ORDER BY call_id")
    assert budget.reserved_nano == 20
    assert [row["call_id"] for row in held] == ["c0", "c2"]


async def test_a_booking_never_waits_behind_another_task_s(pg_url: str) -> None:
    async with PostgresStore(pg_url) as store:
        stuck = await task_with_budget(store, 1_000)
        free = await task_with_budget(store, 1_000)
        async with await psycopg.AsyncConnection.connect(pg_url) as admin:
            # Someone holds the first task's budget row in an open transaction.
            await admin.execute("SELECT 1 FROM budgets WHERE task_id = %s FOR UPDATE", (stuck,))
            waiting = asyncio.create_task(store.reserve(stuck, "c-stuck", 10))
            await asyncio.sleep(0.1)  # on its way, waiting for the row
            other = asyncio.create_task(store.reserve(free, "c-free", 10))

            done, _ = await asyncio.wait({other}, timeout=30)

            stuck_meanwhile = not waiting.done()
            await admin.rollback()
        assert await waiting
        assert await other
    assert done == {other}
    assert stuck_meanwhile
