"""Every SQLite file agentfirm keeps is checked when it is opened: a damaged one raises
``DamagedFile`` naming it, and nothing is written over it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentfirm.bus.outbox import Outbox
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.errors import DamagedFile
from agentfirm.store.sqlite import SQLiteStore
from agentfirm.store.sqlite.inline import CHECKPOINT_EVERY
from tests.sqlite_checks import tear

GARBAGE = b"SQLite format 3\x00" + bytes(range(256)) * 64


@pytest.mark.parametrize(
    ("make", "then"),
    [
        (SQLiteStore, "empty store"),
        (SQLiteLogBus, "event log starts empty"),
        (Outbox, "Redis"),
    ],
    ids=["store", "bus", "outbox"],
)
async def test_a_damaged_file_is_named_with_its_way_out_and_left_alone(
    tmp_path: Path, make: Callable[[Path], Any], then: str
) -> None:
    path = tmp_path / "damaged.db"
    path.write_bytes(GARBAGE)

    with pytest.raises(DamagedFile) as raised:
        await make(path).open()

    assert str(path) in raised.value.message
    assert raised.value.hint is not None
    assert "aside" in raised.value.hint
    assert then in raised.value.hint
    assert path.read_bytes() == GARBAGE


async def test_a_file_found_whole_is_checked_again_only_once_it_changed(
    tmp_path: Path, quick_checks: list[str]
) -> None:
    # quick_check reads every page: seconds for a big ledger, on every command that opens it.
    checks = quick_checks
    path = tmp_path / "agentfirm.db"
    async with SQLiteStore(path):  # created and migrated after its check: changed since
        pass
    checks.clear()
    for _ in range(3):
        async with SQLiteStore(path):
            pass
    assert len(checks) == 1

    with sqlite3.connect(path) as db:
        page = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'ledger'").fetchone()[0]
    at = (root - 1) * page
    with path.open("r+b") as f:  # a torn write: same size, a table's page header overwritten
        f.seek(at)
        f.write(b"\x07" * 16)
    with pytest.raises(DamagedFile):
        await SQLiteStore(path).open()
    assert len(checks) == 2
    assert path.read_bytes()[at : at + 16] == b"\x07" * 16  # left as it was


@pytest.mark.parametrize("found_by", ["verify", "a read"])
async def test_a_store_damaged_while_open_is_named_and_then_refused_for_good(
    tmp_path: Path, found_by: str
) -> None:
    path = tmp_path / "agentfirm.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        tear(path, "events")
        # a read that meets the damaged page (a scan: an empty table's indexes would not)
        find = store.verify() if found_by == "verify" else store._fetch("SELECT * FROM events")
        with pytest.raises(DamagedFile) as raised:
            await find
        assert str(path) in raised.value.message
        assert "aside" in (raised.value.hint or "")
        with pytest.raises(DamagedFile):  # a healthy page is not written or read any more
            await store.list_tasks()
    finally:
        await store.close()


async def test_verify_checks_again_only_after_a_change_that_was_not_the_stores_own(
    tmp_path: Path, quick_checks: list[str]
) -> None:
    # The daemon verifies before every request that writes, and its own writes change the file
    # between any two: checking after each cost about a second a request on a year's ledger.
    from tests.store_conformance import created

    checks = quick_checks
    path = tmp_path / "agentfirm.db"
    store = SQLiteStore(path)
    await store.open()  # checked as it opens
    try:
        # the shared connection's commits checkpoint: they write the main file
        await store._conn().execute("PRAGMA wal_autocheckpoint = 1")
        checks.clear()
        for n in range(3):  # requests that write every way the store writes
            await store.verify()
            task = await created(store)  # inline, as most writes
            await store.set_budget(task.id, 1_000)
            assert store.reserve_now(task.id, f"now{n}", 10)
            slow_ways = (
                store.set_budget(task.id, 2_000),
                store.reserve(task.id, f"wait{n}", 10),
                store._write_one("UPDATE tasks SET request = 'x' WHERE id = ?", (task.id,)),
            )
            for write in slow_ways:  # the shared connection's turn (see ``inline``)
                store._inline._writes = CHECKPOINT_EVERY - 1
                await write
        await store.verify()
        assert checks == []

        other = sqlite3.connect(path, isolation_level=None)  # another process writes: checked again
        try:
            other.execute("UPDATE tasks SET request = 'y'")
            other.execute("PRAGMA wal_checkpoint")
        finally:
            other.close()
        await store.verify()
        await created(store)  # the check's own connection changed nothing we look at
        await store.verify()
        assert len(checks) == 1

        tear(path, "events")  # damaged by something else: found before the next write
        with pytest.raises(DamagedFile):
            await store.verify()
    finally:
        await store.close()
