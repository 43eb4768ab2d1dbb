"""What the integrity check at open costs (issue 21 item 9): ``PRAGMA quick_check`` on a store
holding the events of many tasks, against the rest of opening it (connect, WAL, migrations).

The store is filled through the ``Store`` API with ``--tasks`` tasks of ``--events`` events each
(payloads of a typical size); then it is opened ``--rounds`` times with and without the check.

    .venv/bin/python bench/quick_check.py [--tasks 300] [--events 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiosqlite

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentfirm.domain.models import Event, Task
from agentfirm.store.sqlite import SQLiteStore

PAYLOAD = {"module_id": "prior_art_search", "text": "x" * 400, "cost_usd": 0.0123}


async def fill(path: Path, tasks: int, events: int) -> None:
    async with SQLiteStore(path) as store:
        for n in range(tasks):
            task = Task(id=f"t_{n:06d}", request="bench " * 20, persona="patent_research")
            await store.create_task(task, actor="bench")
            for seq in range(1, events + 1):
                await store.record_event(
                    Event(
                        id=f"e_{n}_{seq}",
                        task_id=task.id,
                        seq=seq,
                        type="module.progress",
                        payload=dict(PAYLOAD),
                    )
                )


async def timed_open(path: Path) -> float:
    start = time.perf_counter()
    async with SQLiteStore(path):
        pass
    return time.perf_counter() - start


async def timed_check(path: Path) -> float:
    async with aiosqlite.connect(path) as db:
        start = time.perf_counter()
        await db.execute_fetchall("PRAGMA quick_check(3)")
        return time.perf_counter() - start


async def main(tasks: int, events: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agentfirm.db"
        await fill(path, tasks, events)
        size_mb = path.stat().st_size / 1e6
        opens = [await timed_open(path) for _ in range(rounds)]
        checks = [await timed_check(path) for _ in range(rounds)]
    open_ms = statistics.median(opens) * 1000
    check_ms = statistics.median(checks) * 1000
    print(f"store: {tasks} tasks x {events} events, {size_mb:.1f} MB")
    print(f"open (check included): {open_ms:.1f} ms median of {rounds}")
    print(f"quick_check alone:     {check_ms:.1f} ms ({check_ms / open_ms:.2f} of the open)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.events, args.rounds))
