"""Redis bus benchmark (issue 4, acceptance 5): events/s and publish→consume latency of
``RedisStreamsBus`` next to a raw redis-py XADD/XREAD loop, on one redis-server this script starts
(never the machine's own). Run: ``.venv/bin/python bench/bus.py [--events N]``.

Throughput: one publisher awaiting each publish as fast as it can, one subscriber on a separate
client, both in this process; events/s = events / (first publish → last consume). One round's
ratio swings from run to run (0.57x to 1.20x seen), so the sides run in ``--rounds`` rounds (at
least 5), the side that goes first alternating, and the ratios printed are medians of the
rounds' ratios.
Latency: the same pair at a steady ``--rate`` events/s, so it measures delivery, not queueing.
Outage: publishes/s while Redis is down (they go to the disk outbox) and the time to drain the
outbox once Redis is back.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis.asyncio
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.integration

from agentfirm.bus.redis_streams import RedisStreamsBus
from tests.integration.redis_server import RedisServer, find_redis_server

Publish = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class Run:
    events_per_s: float
    p50_ms: float
    p99_ms: float


async def _measure(publish: Publish, consume: AsyncIterator[int], n: int, rate: float) -> Run:
    """Publish ``n`` events (at ``rate``/s, or flat out when 0) carrying their send time in ns;
    the consumer yields those times back as it receives them."""
    latencies: list[float] = []

    async def receive() -> float:
        async for sent_ns in consume:
            latencies.append((time.perf_counter_ns() - sent_ns) / 1e6)
            if len(latencies) == n:
                break
        return time.perf_counter()

    receiver = asyncio.create_task(receive())
    await asyncio.sleep(0.05)  # let the consumer reach its first blocking read
    start = time.perf_counter()
    for i in range(n):
        if rate:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        await publish(time.perf_counter_ns())
    end = await receiver
    quantiles = statistics.quantiles(latencies, n=100)
    return Run(n / (end - start), quantiles[49], quantiles[98])


async def _raw(url: str, key: str, n: int, rate: float) -> Run:
    writer = redis.asyncio.Redis.from_url(url, decode_responses=True)
    reader = redis.asyncio.Redis.from_url(url, decode_responses=True)

    async def publish(sent_ns: int) -> None:
        await writer.xadd(key, {"t": str(sent_ns)})

    async def consume() -> AsyncIterator[int]:
        last = "0-0"
        while True:
            reply = cast(
                list[tuple[str, list[tuple[str, dict[str, str]]]]],
                await reader.xread({key: last}, count=500, block=1000),
            )
            for _key, entries in reply:
                for entry_id, fields in entries:
                    last = entry_id
                    yield int(fields["t"])

    try:
        return await _measure(publish, consume(), n, rate)
    finally:
        await writer.aclose()
        await reader.aclose()


async def _bus(url: str, workdir: Path, task_id: str, n: int, rate: float) -> Run:
    writer = RedisStreamsBus(url, outbox_path=workdir / f"{task_id}-writer.sqlite3")
    reader = RedisStreamsBus(url, outbox_path=workdir / f"{task_id}-reader.sqlite3")
    await writer.open()
    await reader.open()

    async def publish(sent_ns: int) -> None:
        await writer.publish(task_id, "bench", {"t": sent_ns})

    async def consume() -> AsyncIterator[int]:
        async for event in reader.subscribe(task_id):
            yield int(event.payload["t"])

    try:
        return await _measure(publish, consume(), n, rate)
    finally:
        await writer.close()
        await reader.close()


async def _outage(server: RedisServer, workdir: Path, n: int) -> tuple[float, float]:
    """Buffered publishes/s with Redis down, and seconds to drain them once it is back."""
    bus = RedisStreamsBus(server.url, outbox_path=workdir / "outage.sqlite3")
    await bus.open()
    try:
        await asyncio.to_thread(server.kill)
        start = time.perf_counter()
        for i in range(n):
            await bus.publish("outage", "bench", {"i": i})
        buffered = n / (time.perf_counter() - start)
        await asyncio.to_thread(server.start)
        start = time.perf_counter()
        await bus.wait_drained()
        return buffered, time.perf_counter() - start
    finally:
        await bus.close()


def _row(name: str, values: list[Any]) -> str:
    return f"{name:<22}" + "".join(f"{v:>12}" for v in values)


@dataclass(frozen=True)
class Round:
    raw: Run
    bus: Run
    raw_paced: Run
    bus_paced: Run


async def _round(url: str, workdir: Path, n: int, events: int, rate: float) -> Round:
    """One round of both sides, flat out and paced; which side goes first alternates by round,
    so a warm-up or a busy spell on a shared machine favours neither."""
    latency_n = max(100, int(rate * 2))

    async def raw() -> tuple[Run, Run]:
        flat = await _raw(url, f"bench:raw:{n}", events, 0)
        return flat, await _raw(url, f"bench:raw-paced:{n}", latency_n, rate)

    async def bus() -> tuple[Run, Run]:
        flat = await _bus(url, workdir, f"bench-throughput-{n}", events, 0)
        return flat, await _bus(url, workdir, f"bench-paced-{n}", latency_n, rate)

    if n % 2 == 0:
        raw_runs, bus_runs = await raw(), await bus()
    else:
        bus_runs, raw_runs = await bus(), await raw()
    return Round(raw_runs[0], bus_runs[0], raw_runs[1], bus_runs[1])


def _median_ratio(rounds: list[Round], of: Callable[[Round], float]) -> float:
    return statistics.median(of(r) for r in rounds)


async def main(events: int, rate: float, outage_events: int, rounds: int) -> None:
    binary = find_redis_server()
    if binary is None:
        sys.exit("bench/bus.py: redis-server not found on PATH (install redis-server)")
    with tempfile.TemporaryDirectory(prefix="agentfirm-bench-") as tmp:
        workdir = Path(tmp)
        server = RedisServer(binary, workdir)
        server.start()
        try:
            done = [await _round(server.url, workdir, n, events, rate) for n in range(rounds)]
            buffered, drain_s = await _outage(server, workdir, outage_events)
        finally:
            server.kill()

    latency_n = max(100, int(rate * 2))
    print(
        f"Redis bus benchmark — own redis-server on {server.url}, Python {sys.version.split()[0]}"
    )
    print(
        f"{rounds} rounds, the side that goes first alternating; each round: {events} events "
        f"flat out, then {latency_n} events at {rate:.0f}/s\n"
    )
    head = ["events/s", "p50 ms", "p99 ms", "p50 ms", "p99 ms"]
    print(_row("", ["flat out", "", "", f"at {rate:.0f}/s", ""]))
    print(_row("", head))
    for name, flat, paced in (
        ("raw XADD/XREAD", [r.raw for r in done], [r.raw_paced for r in done]),
        ("RedisStreamsBus", [r.bus for r in done], [r.bus_paced for r in done]),
    ):
        print(
            _row(
                f"{name} (median)",
                [
                    f"{statistics.median(f.events_per_s for f in flat):,.0f}",
                    f"{statistics.median(f.p50_ms for f in flat):.2f}",
                    f"{statistics.median(f.p99_ms for f in flat):.2f}",
                    f"{statistics.median(p.p50_ms for p in paced):.2f}",
                    f"{statistics.median(p.p99_ms for p in paced):.2f}",
                ],
            )
        )
    throughput = [r.bus.events_per_s / r.raw.events_per_s for r in done]
    print(
        _row(
            "bus / raw (median)",
            [
                f"{statistics.median(throughput):.2f}x",
                f"{_median_ratio(done, lambda r: r.bus.p50_ms / r.raw.p50_ms):.1f}x",
                f"{_median_ratio(done, lambda r: r.bus.p99_ms / r.raw.p99_ms):.1f}x",
                f"{_median_ratio(done, lambda r: r.bus_paced.p50_ms / r.raw_paced.p50_ms):.1f}x",
                f"{_median_ratio(done, lambda r: r.bus_paced.p99_ms / r.raw_paced.p99_ms):.1f}x",
            ],
        )
    )
    print("throughput ratio by round: " + ", ".join(f"{t:.2f}x" for t in throughput))
    print(
        f"\nRedis down: {outage_events} publishes buffered at {buffered:,.0f}/s; "
        f"outbox drained {drain_s * 1000:.0f} ms after Redis came back"
    )
    ratio = statistics.median(throughput)
    p99 = statistics.median(r.bus_paced.p99_ms for r in done)
    print(
        f"targets: bus ≥ 0.5x raw throughput ({'met' if ratio >= 0.5 else 'NOT met'}), "
        f"p99 ≤ 10 ms at {rate:.0f}/s ({'met' if p99 <= 10 else 'NOT met'})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000, help="flat-out events a round")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s for latency")
    parser.add_argument("--outage-events", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5, help="rounds (at least 5)")
    args = parser.parse_args()
    if args.rounds < 5:
        parser.error("--rounds must be at least 5: one round's ratio swings from run to run")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    asyncio.run(main(args.events, args.rate, args.outage_events, args.rounds))
