"""``tasks list`` and ``tasks show`` (in-process and through the daemon: one builder) say what a
task spent from the store's running totals, never by reading its ledger's rows: a task of 100k
calls would load 100k rows, for every task listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfirm.api.views import task_detail, task_rows
from agentfirm.domain.models import LedgerEntry
from agentfirm.money import nano_to_float
from agentfirm.store.sqlite import SQLiteStore
from tests.store_conformance import entry, task_with_budget


async def test_what_a_task_spent_comes_from_the_running_totals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SQLiteStore(tmp_path / "agentfirm.db") as store:
        task_id = await task_with_budget(store, 10_000_000)
        for i, cost in enumerate([1_200, 3_400, 0, 5_600]):
            row = entry(task_id, f"c{i}", cost, outcome="budget_refused" if cost == 0 else "ok")
            await store.record_call(row)

        async def rows_read(task_id: str) -> list[LedgerEntry]:
            raise AssertionError("the ledger's rows were read")

        monkeypatch.setattr(store, "list_ledger", rows_read)
        listed = await task_rows(store)
        shown = await task_detail(store, task_id)

    assert [r["cost_usd"] for r in listed] == [nano_to_float(10_200)]
    assert shown["cost_usd"] == nano_to_float(10_200)
