"""The SQLite schema's running cost totals (migration 0002) agree with the ledger they count,
whatever writes it (the Postgres side is in ``tests/integration/test_postgres_store.py``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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
