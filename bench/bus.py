"""Redis bus benchmark (issue 4, acceptance 5): events/s and publish→consume latency of
``RedisStreamsBus`` next to a raw redis-py XADD/XREAD loop, on one redis-server this script starts
(never the machine's own). Run: ``.venv/bin/python bench/bus.py [--events N]``.

Throughput: one publisher awaiting each publish as fast as it can, one subscriber on a separate
client, both in this process; events/s = events / (first publish → last consume).
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


async def main(events: int, rate: float, outage_events: int) -> None:
    binary = find_redis_server()
    if binary is None:
        sys.exit("bench/bus.py: redis-server not found on PATH (install redis-server)")
    with tempfile.TemporaryDirectory(prefix="agentfirm-bench-") as tmp:
        workdir = Path(tmp)
        server = RedisServer(binary, workdir)
        server.start()
        try:
            raw = await _raw(server.url, "bench:raw", events, 0)
            bus = await _bus(server.url, workdir, "bench-throughput", events, 0)
            latency_n = max(100, int(rate * 2))
            raw_paced = await _raw(server.url, "bench:raw-paced", latency_n, rate)
            bus_paced = await _bus(server.url, workdir, "bench-paced", latency_n, rate)
            buffered, drain_s = await _outage(server, workdir, outage_events)
        finally:
            server.kill()

    print(
        f"Redis bus benchmark — own redis-server on {server.url}, Python {sys.version.split()[0]}"
    )
    print(f"throughput: {events} events flat out; latency: {latency_n} events at {rate:.0f}/s\n")
    head = ["events/s", "p50 ms", "p99 ms", "p50 ms", "p99 ms"]
    print(_row("", ["flat out", "", "", f"at {rate:.0f}/s", ""]))
    print(_row("", head))
    for name, flat, paced in (
        ("raw XADD/XREAD", raw, raw_paced),
        ("RedisStreamsBus", bus, bus_paced),
    ):
        print(
            _row(
                name,
                [
                    f"{flat.events_per_s:,.0f}",
                    f"{flat.p50_ms:.2f}",
                    f"{flat.p99_ms:.2f}",
                    f"{paced.p50_ms:.2f}",
                    f"{paced.p99_ms:.2f}",
                ],
            )
        )
    print(
        _row(
            "bus / raw",
            [
                f"{bus.events_per_s / raw.events_per_s:.2f}x",
                f"{bus.p50_ms / raw.p50_ms:.1f}x",
                f"{bus.p99_ms / raw.p99_ms:.1f}x",
                f"{bus_paced.p50_ms / raw_paced.p50_ms:.1f}x",
                f"{bus_paced.p99_ms / raw_paced.p99_ms:.1f}x",
            ],
        )
    )
    print(
        f"\nRedis down: {outage_events} publishes buffered at {buffered:,.0f}/s; "
        f"outbox drained {drain_s * 1000:.0f} ms after Redis came back"
    )
    print(
        "targets: bus ≥ 0.5x raw throughput "
        f"({'met' if bus.events_per_s >= 0.5 * raw.events_per_s else 'NOT met'}), "
        f"p99 ≤ 10 ms at {rate:.0f}/s ({'met' if bus_paced.p99_ms <= 10 else 'NOT met'})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s for latency")
    parser.add_argument("--outage-events", type=int, default=2_000)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    asyncio.run(main(args.events, args.rate, args.outage_events))
