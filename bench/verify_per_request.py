"""What the daemon's store check costs a request that writes (issue 21 item 6), on a year's ledger.

The daemon runs ``SQLiteStore.verify`` (``PRAGMA quick_check``, every page read) before each request
that writes, unless nothing but its own writes changed the file since it was last found whole.
This fills a store with ``--tasks`` x ``--calls`` ledger rows (1,000,000 by default: about 190 MB),
opens it as the daemon does, then times ``--rounds`` requests: ``verify`` then what a submit writes
(a task and its first event). Then the same once after another process wrote a row into the file
(checked again: what a change from outside costs), the time of one inline budget booking (only
writes on the shared connection look at the file's status, before and after), and ``verify``
after them.

    .venv/bin/python bench/verify_per_request.py [--tasks 10] [--calls 100000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ledger_query import fill_sqlite

from agentfirm.domain.models import Event, Task
from agentfirm.store import db_admin
from agentfirm.store.sqlite import SQLiteStore


async def requests(store: SQLiteStore, rounds: int, tag: str) -> tuple[list[float], list[float]]:
    waits, totals = [], []
    for n in range(rounds):
        began = time.perf_counter()
        await store.verify()
        checked = time.perf_counter()
        task = Task(id=f"t_{tag}{n:04d}", request="bench")
        await store.create_task(task, actor="bench")
        await store.record_event(Event(id=f"e_{tag}{n}", task_id=task.id, seq=1, type="x"))
        waits.append((checked - began) * 1000)
        totals.append((time.perf_counter() - began) * 1000)
    return waits, totals


async def bench(path: Path, rounds: int) -> None:
    store = SQLiteStore(path)
    began = time.perf_counter()
    await store.open()
    print(f"open (checked): {(time.perf_counter() - began) * 1000:.0f} ms")
    try:
        run = f"{time.time_ns()}"  # a kept store is used again: new task ids
        waits, totals = await requests(store, rounds, f"{run}a")
        print(f"first request: verify {waits[0]:.1f} ms, request {totals[0]:.1f} ms")
        rest_w, rest_t = waits[1:], totals[1:]
        print(
            f"next {len(rest_w)} requests: verify median {statistics.median(rest_w):.2f} ms"
            f" (max {max(rest_w):.2f}), request median {statistics.median(rest_t):.2f} ms"
        )
        other = sqlite3.connect(path, isolation_level=None)
        try:  # written into the file (its checkpoint): the change is someone else's
            other.execute("UPDATE tasks SET request = 'other' WHERE id = ?", (f"t_{run}a0000",))
            other.execute("PRAGMA wal_checkpoint")
        finally:
            other.close()
        waits, _ = await requests(store, 2, f"{run}b")
        print(f"after another process wrote: verify {waits[0]:.0f} ms, then {waits[1]:.2f} ms")
        await store.set_budget(f"t_{run}a0000", 10**15)
        n = 2000
        began = time.perf_counter()
        booked = sum(store.reserve_now(f"t_{run}a0000", f"c{run}_{i}", 1) for i in range(n))
        per = (time.perf_counter() - began) / n * 1e6
        print(f"inline booking: {per:.1f} us each ({booked} of {n} inline)")
        began = time.perf_counter()
        await store.verify()
        print(f"verify after them: {(time.perf_counter() - began) * 1000:.2f} ms")
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="build the store here once, reuse it after")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentfirm-bench-") as tmp:
        path = args.keep or Path(tmp) / "agentfirm.db"
        if not path.exists():
            asyncio.run(db_admin.migrate(f"sqlite:///{path}"))
            fill_sqlite(path, args.tasks, args.calls)
        print(f"{path}: {path.stat().st_size / 1e6:.0f} MB")
        asyncio.run(bench(path, args.rounds))


if __name__ == "__main__":
    main()
