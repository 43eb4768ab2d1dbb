"""The store conformance suite (``tests/store_conformance.py``) on SQLite, plus what only SQLite
has: reopening a file, and several processes sharing one file."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentfirm.store.base import Store
from agentfirm.store.sqlite import SQLiteStore
from tests.store_conformance import StoreConformance, created, task_with_budget


class TestSQLiteStore(StoreConformance):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[Store]:
        store = SQLiteStore(tmp_path / "agentfirm.sqlite3")
        await store.open()
        yield store
        await store.close()


# --- SQLite only ---------------------------------------------------------------------------------


async def test_reopening_a_sqlite_file_keeps_data_and_migrates_once(tmp_path: Path) -> None:
    path = tmp_path / "agentfirm.sqlite3"
    async with SQLiteStore(path) as first:
        task = await created(first)
    async with SQLiteStore(path) as second:
        assert await second.get_task(task.id) == task


_HAMMER = """
import asyncio, sys
from pathlib import Path
from agentfirm.domain.models import LedgerEntry
from agentfirm.store.sqlite import SQLiteStore

async def main(path: str, task_id: str, who: str, attempts: int, amount: int) -> None:
    async with SQLiteStore(Path(path)) as store:
        print("ready", flush=True)
        sys.stdin.readline()
        won = 0
        for i in range(attempts):
            call_id = f"{who}-{i}"
            if await store.reserve(task_id, call_id, amount):
                won += 1
                await store.settle(call_id, LedgerEntry(
                    call_id=call_id, task_id=task_id, tier="utility", provider="offline",
                    model="m", cost_nano=amount))
    print(f"won={won}", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
"""


async def test_reserve_across_processes_never_overspends(tmp_path: Path) -> None:
    path = tmp_path / "agentfirm.sqlite3"
    async with SQLiteStore(path) as store:
        task_id = await task_with_budget(store, 200 * 7)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _HAMMER,
            str(path),
            task_id,
            who,
            "150",
            "7",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for who in ("p1", "p2")
    ]
    for proc in procs:  # start both together, so they contend for the same rows
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        while line and line.strip() != b"ready":
            line = await proc.stdout.readline()
    outputs = await asyncio.gather(*(proc.communicate(b"go\n") for proc in procs))

    won = [int(out.split(b"won=")[-1]) for out, _ in outputs]
    assert [proc.returncode for proc in procs] == [0, 0]
    async with SQLiteStore(path) as store:
        budget = await store.get_budget(task_id)
        ledger = await store.list_ledger(task_id)
    assert sum(won) == 200
    assert budget.spent_nano == sum(e.cost_nano for e in ledger) == budget.ceiling_nano


async def test_two_stores_opening_a_new_sqlite_file_at_once_migrate_it_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agentfirm.sqlite3"
    daemon, runner = SQLiteStore(path), SQLiteStore(path)
    try:
        await asyncio.gather(daemon.open(), runner.open())
        task = await created(daemon)

        assert await runner.get_task(task.id) == task
    finally:
        await daemon.close()
        await runner.close()
