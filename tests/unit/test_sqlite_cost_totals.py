"""The SQLite schema's running cost totals (per task: migration 0002; firm-wide: 0004) agree with
the ledger they count, whatever writes it (the Postgres side is in
``tests/integration/test_postgres_store.py``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agentfirm.store.migrate import load_migrations
from agentfirm.store.sqlite import SQLiteStore
from tests.store_conformance import entry, task_with_budget

_LEDGER_AGGREGATE = (
    "SELECT task_id, module_id, tier, provider, SUM(cost_nano), COUNT(*), MAX(simulated),"
    " MIN(at), MIN(seq) FROM ledger GROUP BY task_id, module_id, tier, provider ORDER BY 1, 2, 3, 4"
)
_TOTALS = (
    "SELECT task_id, module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq"
    " FROM cost_totals ORDER BY 1, 2, 3, 4"
)


def _totals_and_ledger(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with sqlite3.connect(path) as db:
        return db.execute(_TOTALS).fetchall(), db.execute(_LEDGER_AGGREGATE).fetchall()


async def test_running_totals_agree_with_the_ledger_after_settles_and_edits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agentfirm.sqlite3"
    async with SQLiteStore(path) as store:
        task_id = await task_with_budget(store, 10_000)
        for i, module_id in enumerate(["a", None, "a", "", None, "b"]):
            row = entry(task_id, f"c{i}", 7 * (i + 1)).model_copy(
                update={"module_id": module_id, "simulated": i == 3}
            )
            await store.reserve(task_id, row.call_id, 100)
            await store.settle(row.call_id, row)
        await store.record_call(entry(task_id, "refused", 0, outcome="budget_refused"))
    settled, ledger = _totals_and_ledger(path)
    assert settled == ledger
    assert len(settled) == 4  # "a", "", "b" and the task level (None, the refused call too)

    with sqlite3.connect(path) as db:
        db.execute("UPDATE ledger SET module_id = 'moved' WHERE seq = 1")
        db.execute("UPDATE ledger SET cost_nano = 1000 WHERE seq = 3")
        db.execute("DELETE FROM ledger WHERE seq IN (2, 6)")
    edited, ledger = _totals_and_ledger(path)
    assert edited == ledger


# --- firm-wide rollup (migration 0004) ------------------------------------------------------------

_LEDGER_FIRM_AGGREGATE = (
    "SELECT module_id, tier, provider, SUM(cost_nano), COUNT(*), MAX(simulated), MIN(at),"
    " MIN(seq) FROM ledger GROUP BY module_id, tier, provider ORDER BY 1, 2, 3"
)
_ROLLUP = (
    "SELECT module_id, tier, provider, cost_nano, calls, simulated, first_at, first_seq"
    " FROM cost_rollup ORDER BY 1, 2, 3"
)


def _rollup_and_ledger(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with sqlite3.connect(path) as db:
        return db.execute(_ROLLUP).fetchall(), db.execute(_LEDGER_FIRM_AGGREGATE).fetchall()


async def test_firm_rollup_agrees_with_the_ledger_after_settles_updates_and_deletes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agentfirm.sqlite3"
    async with SQLiteStore(path) as store:
        for t in range(2):
            task_id = await task_with_budget(store, 10_000)
            for i, (module_id, tier) in enumerate(
                [("a", "execution"), (None, "utility"), ("a", "execution"), ("b", "execution")]
            ):
                row = entry(task_id, f"c{t}{i}", 5 * (i + 1) + t).model_copy(
                    update={"module_id": module_id, "tier": tier, "simulated": (t, i) == (1, 3)}
                )
                await store.reserve(task_id, row.call_id, 100)
                await store.settle(row.call_id, row)
            await store.record_call(entry(task_id, f"refused{t}", 0, outcome="budget_refused"))
    settled, ledger = _rollup_and_ledger(path)
    assert settled == ledger
    assert len(settled) == 4  # ("a", execution), ("b", execution), task level utility and refused

    with sqlite3.connect(path) as db:
        db.execute("UPDATE ledger SET module_id = 'moved' WHERE seq = 1")
        db.execute("UPDATE ledger SET cost_nano = 1000, simulated = 1 WHERE seq = 3")
        db.execute("UPDATE ledger SET simulated = 0 WHERE module_id = 'b'")
        db.execute("DELETE FROM ledger WHERE seq = 2")
    edited, ledger = _rollup_and_ledger(path)
    assert edited == ledger
    assert {row[0] for row in edited} == {None, "a", "b", "moved"}

    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM ledger WHERE module_id IN ('a', 'moved')")
    emptied, ledger = _rollup_and_ledger(path)
    assert emptied == ledger
    assert {row[0] for row in emptied} == {None, "b"}


def test_migrating_a_store_with_a_ledger_backfills_the_rollup(tmp_path: Path) -> None:
    path = tmp_path / "agentfirm.sqlite3"
    before = [m for m in load_migrations() if m.version < 4]
    later = [m for m in load_migrations() if m.version >= 4]
    with sqlite3.connect(path) as db:
        for migration in before:
            db.executescript(migration.sql)
        db.executemany(
            "INSERT INTO ledger (task_id, seq, call_id, module_id, tier, provider, model,"
            " cost_nano, outcome, simulated, at) VALUES (?, ?, ?, ?, 'utility', 'offline', 'm',"
            " ?, 'ok', ?, ?)",
            [
                (f"t{n % 3}", n, f"c{n}", f"m{n % 4}", n, int(n == 7), f"2030-01-01T00:00:{n:02d}")
                for n in range(1, 41)
            ],
        )
        for migration in later:
            db.executescript(migration.sql)

    rollup, ledger = _rollup_and_ledger(path)
    assert rollup == ledger
    assert len(rollup) == 4


# --- what `costs` reads from the ledger (migration 0008) -----------------------------------------


async def test_costs_reads_its_ledger_sums_from_a_covering_index(tmp_path: Path) -> None:
    """The upper-bound part of ``costs`` seeks the task's "≤" rows in their own partial index
    (migration 0009) and a task's sum reads its index alone: neither visits the ledger's rows,
    however many calls the task made."""
    from agentfirm.store.sql.reads import UPPER_BOUND_SQL

    path = tmp_path / "agentfirm.sqlite3"
    async with SQLiteStore(path):
        pass
    with sqlite3.connect(path) as db:
        for sql, index in (
            (UPPER_BOUND_SQL, "ledger_estimates"),
            ("SELECT SUM(cost_nano) FROM ledger WHERE task_id = ?", "ledger_cost_by_task"),
        ):
            plan = " ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", ("t",)))
            assert f"USING COVERING INDEX {index}" in plan, (sql, plan)
