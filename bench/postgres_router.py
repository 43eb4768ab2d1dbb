"""The Model Router on PostgreSQL: what one call costs, sequential, and what 64 concurrent calls
on one task gain over sequential ones, on a throwaway loopback server (``tests/integration/
pg_server.py``: fsync off, as every test server) with the offline provider answering at once.

Both sides run in every round, their order alternating, so drift on a busy machine hits them
alike; the figures printed are medians over the rounds, the ratio is taken within each round. A
last, untimed pass counts the call's round trips on the wire (``tests/fakes/pg_proxy.py``).

Besides the wall clock it prints the CPU a call costs here (this process) and in the server (every
process of the throwaway server, read from /proc): on a machine other processes load, the wall
clock mostly measures waiting for a core, while the CPU figures are what the store costs. Their
sum is the wall time of a sequential call on an idle machine, but for the loopback latency. With
fsync off there is no server-side waiting to overlap, so on C cores the concurrent side cannot do
better than the CPU allows: the ratio's ceiling, printed beside it, is the sequential wall time
over max(client CPU, (client + server CPU) / C).

    .venv/bin/python bench/postgres_router.py [--rounds N] [--calls N] [--concurrency N] [--durable]

``--durable`` runs the server as a real one is run (fsync, synchronous commits): every commit then
waits for the disk, and concurrent calls gain as far as their bookings share commits.

Targets (issue 19): at most 3 round trips and 1.5 ms a call; 64 concurrent calls at least 4x the
sequential throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentfirm.log import configure_logging, reset_logging
from agentfirm.router.base import ChainEntry, Message
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers.offline import OfflineProvider
from agentfirm.router.router import Router
from agentfirm.runs.heap import settle_heap
from agentfirm.secrets import Redactor
from agentfirm.store.postgres import PostgresStore
from tests.fakes.pg_proxy import RoundTripCounter
from tests.fakes.routing import funded_task
from tests.integration.pg_server import throwaway_postgres

MESSAGES = (Message("system", "You are terse."), Message("user", "Summarise the quarter."))
MODEL = "claude-sonnet-4-6"


def router_on(store: PostgresStore) -> Router:
    return Router(
        chains={"execution": [ChainEntry("offline", MODEL, price_as="anthropic")]},
        providers={"offline": OfflineProvider()},
        pricer=Pricer(),
        store=store,
    )


async def one_call(router: Router, task_id: str) -> None:
    await router.call(tier="execution", messages=MESSAGES, task_id=task_id, max_tokens=256)


async def sequential(router: Router, task_id: str, calls: int) -> float:
    """Seconds for ``calls`` calls one after another."""
    started = time.perf_counter()
    for _ in range(calls):
        await one_call(router, task_id)
    return time.perf_counter() - started


async def concurrent(router: Router, task_id: str, calls: int, width: int) -> float:
    """Seconds for ``calls`` calls, ``width`` at a time on the same task."""
    started = time.perf_counter()
    for start in range(0, calls, width):
        batch = min(width, calls - start)
        await asyncio.gather(*(one_call(router, task_id) for _ in range(batch)))
    return time.perf_counter() - started


async def round_trips(url: str, calls: int) -> float:
    async with RoundTripCounter(url) as proxy, PostgresStore(proxy.url, max_size=1) as store:
        router = router_on(store)
        task_id = await funded_task(store, ceiling_nano=10**15)
        await one_call(router, task_id)  # connected
        proxy.trips = 0
        for _ in range(calls):
            await one_call(router, task_id)
        return proxy.trips / calls


class ServerCpu:
    """CPU seconds used so far by every process of a local server: its postmaster, its live
    children and the children it has reaped (read from /proc, in clock ticks)."""

    def __init__(self, postmaster_pid: int) -> None:
        self._pid = postmaster_pid
        self._tick = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _fields(pid: int | str) -> list[str]:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()

    def seconds(self) -> float:
        own = self._fields(self._pid)
        ticks = sum(int(f) for f in own[11:15])  # utime stime cutime cstime
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                fields = self._fields(entry.name)
            except OSError:  # gone meanwhile
                continue
            if int(fields[1]) == self._pid:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / self._tick


async def server_cpu(store: PostgresStore) -> ServerCpu:
    rows = await store.query("SELECT current_setting('data_directory') AS dir")
    pid = int((Path(rows[0]["dir"]) / "postmaster.pid").read_text().split()[0])
    return ServerCpu(pid)


@dataclass
class Side:
    """One side's figures in one round, per call: wall, this process's CPU, the server's CPU."""

    wall_ms: float
    client_ms: float
    server_ms: float


async def timed(server: ServerCpu, calls: int, side: Awaitable[float]) -> Side:
    client, cpu = time.process_time(), server.seconds()
    wall = await side
    client, cpu = time.process_time() - client, server.seconds() - cpu
    return Side(wall * 1000 / calls, client * 1000 / calls, cpu * 1000 / calls)


def median(sides: list[Side], field: str) -> float:
    return statistics.median(float(getattr(side, field)) for side in sides)


async def run(url: str, rounds: int, calls: int, width: int, pool: int, durable: bool) -> None:
    cores = os.cpu_count() or 1
    async with PostgresStore(url, max_size=pool) as store:
        router = router_on(store)
        server = await server_cpu(store)
        task_id = await funded_task(store, ceiling_nano=10**15)
        await concurrent(router, task_id, width, width)  # warm: the pool is full
        await sequential(router, task_id, calls // 4)
        settle_heap()  # as the daemon does once it is up
        seq: list[Side] = []
        conc: list[Side] = []
        ratios: list[float] = []
        ceilings: list[float] = []
        for i in range(rounds):
            for which in (0, 1) if i % 2 == 0 else (1, 0):
                if which == 0:
                    seq.append(await timed(server, calls, sequential(router, task_id, calls)))
                else:
                    conc.append(
                        await timed(server, calls, concurrent(router, task_id, calls, width))
                    )
            s, c = seq[-1], conc[-1]
            ratios.append(s.wall_ms / c.wall_ms)
            ceilings.append(s.wall_ms / max(c.client_ms, (c.client_ms + c.server_ms) / cores))
    trips = await round_trips(url, 50)

    load = os.getloadavg()[0]
    commits = "durable commits" if durable else "fsync off"
    print(
        f"PostgreSQL router call (offline provider, loopback, {commits}),"
        f" medians of {rounds} rounds (load average {load:.1f} on {cores} cores)"
    )
    print(f"  round trips per call:          {trips:.2f}  (target <= 3)")
    print(f"  sequential, ms a call:         {median(seq, 'wall_ms'):.3f}  (target <= 1.5)")
    print(
        f"    CPU a call: this process {median(seq, 'client_ms'):.3f} ms"
        f" + the server {median(seq, 'server_ms'):.3f} ms"
        f" = {median(seq, 'client_ms') + median(seq, 'server_ms'):.3f} ms"
    )
    print(f"  {width} concurrent, ms a call:  {median(conc, 'wall_ms'):.3f}")
    print(
        f"    CPU a call: this process {median(conc, 'client_ms'):.3f} ms"
        f" + the server {median(conc, 'server_ms'):.3f} ms"
    )
    print(
        f"  concurrent / sequential throughput: {statistics.median(ratios):.2f}x"
        f"  (target >= 4x; rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(
        f"    ceiling on {cores} cores from the CPU a call costs:"
        f" {statistics.median(ceilings):.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=640)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pool", type=int, default=10, help="the store's pool size")
    parser.add_argument(
        "--durable", action="store_true", help="fsync and synchronous commits, as in production"
    )
    args = parser.parse_args()
    durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
    with (
        tempfile.TemporaryDirectory() as tmp,
        throwaway_postgres(durable if args.durable else None) as server,
    ):
        configure_logging(log_path=Path(tmp) / "bench.log", redactor=Redactor())
        try:
            url = server.create_database()
            asyncio.run(
                run(url, args.rounds, args.calls, args.concurrency, args.pool, args.durable)
            )
        finally:
            reset_logging()


if __name__ == "__main__":
    main()
