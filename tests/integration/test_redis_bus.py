"""The Redis Streams bus and work queue on a real redis-server that the tests start, kill and
restart: the same semantics as the SQLite bus, plus what only a remote bus has — an outage that
costs time, never events; publishers in several processes; a worker that dies holding work."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis.asyncio

from agentfirm.bus.outbox import OutgoingEvent
from agentfirm.bus.redis_conn import BusUnavailable, connect
from agentfirm.bus.redis_streams import RedisStreamsBus
from agentfirm.bus.redis_work import RedisWorkQueue
from agentfirm.bus.redis_writer import StreamWriter
from agentfirm.domain.models import Event, utcnow

if TYPE_CHECKING:
    from tests.integration.redis_server import RedisServer

pytestmark = pytest.mark.integration

# A guard against hanging forever when a behaviour is broken, not a timing assertion.
GUARD_S = 20


def make_bus(url: str, outbox: Path, **options: Any) -> RedisStreamsBus:
    # A short backoff cap keeps recovery after a restart quick; it changes no behaviour.
    return RedisStreamsBus(url, outbox_path=outbox, max_backoff=0.3, **options)


async def delivered(bus: RedisStreamsBus) -> None:
    """Wait until the outbox is empty: on a loaded machine a publish may outlast its timeout and
    go through the outbox, and replay sees only what Redis has."""
    async with asyncio.timeout(30):
        await bus.wait_drained()


@pytest.fixture
async def bus(redis_url: str, tmp_path: Path) -> AsyncIterator[RedisStreamsBus]:
    redis_bus = make_bus(redis_url, tmp_path / "outbox.sqlite3")
    await redis_bus.open()
    yield redis_bus
    await redis_bus.close()


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[RedisWorkQueue]:
    work = RedisWorkQueue(redis_url, patience=2, max_backoff=0.1)
    await work.open()
    yield work
    await work.close()


async def take(events: AsyncIterator[Event], count: int) -> list[Event]:
    taken: list[Event] = []
    async with asyncio.timeout(GUARD_S):
        async for event in events:
            taken.append(event)
            if len(taken) == count:
                break
    return taken


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` until it holds: for states that no event announces (idle time, a repair
    made by a background task). The timeout is a guard, not a timing assertion."""
    async with asyncio.timeout(GUARD_S):
        while not await check():  # noqa: ASYNC110 - nothing to wait on but the state itself
            await asyncio.sleep(0.02)


# --- the Bus contract, as the SQLite bus keeps it ------------------------------------------------


async def test_concurrent_publishers_get_gap_free_seqs_in_their_own_order(
    bus: RedisStreamsBus,
) -> None:
    async def publisher(n: int) -> None:
        for i in range(5):
            await bus.publish("t1", "progress", {"publisher": n, "i": i})

    await asyncio.gather(*(publisher(n) for n in range(20)))
    await delivered(bus)

    events = await bus.replay("t1")
    assert [e.seq for e in events] == list(range(1, 101))
    for n in range(20):
        assert [e.payload["i"] for e in events if e.payload["publisher"] == n] == list(range(5))


async def test_publish_returns_the_event_as_it_is_stored(bus: RedisStreamsBus) -> None:
    published = await bus.publish("t1", "module.done", {"pair": (1, 2)}, module_id="research")

    assert await bus.replay("t1") == [published]
    assert published.payload == {"pair": [1, 2]}
    assert published.seq == 1


async def test_replay_returns_only_events_after_the_seq(bus: RedisStreamsBus) -> None:
    for i in range(5):
        await bus.publish("t1", "progress", {"i": i})

    assert [e.seq for e in await bus.replay("t1", after_seq=3)] == [4, 5]


async def test_replay_reads_a_long_stream_to_its_end(bus: RedisStreamsBus) -> None:
    await asyncio.gather(*(bus.publish("t1", "progress") for _ in range(1234)))
    await delivered(bus)

    assert [e.seq for e in await bus.replay("t1", after_seq=10)] == list(range(11, 1235))


async def test_seqs_are_per_task(bus: RedisStreamsBus) -> None:
    await bus.publish("t1", "a")
    other = await bus.publish("t2", "a")

    assert other.seq == 1


async def test_events_and_control_streams_are_independent(bus: RedisStreamsBus) -> None:
    await bus.publish("t1", "progress")
    await bus.publish("t1", "progress")
    control = await bus.publish("t1", "abort", stream="control")

    assert control.seq == 1
    assert [e.type for e in await bus.replay("t1", stream="control")] == ["abort"]
    assert [e.type for e in await bus.replay("t1")] == ["progress", "progress"]


async def test_non_json_payload_raises_type_error_and_stores_nothing(bus: RedisStreamsBus) -> None:
    with pytest.raises(TypeError):
        await bus.publish("t1", "progress", {"when": object()})
    with pytest.raises(TypeError):
        await bus.publish("t1", "progress", {"cost": float("nan")})

    assert await bus.replay("t1") == []


async def test_subscribe_replays_from_the_seq_then_follows(bus: RedisStreamsBus) -> None:
    for i in range(3):
        await bus.publish("t1", "progress", {"i": i})
    events = bus.subscribe("t1", after_seq=1)

    backlog = await take(events, 2)
    await bus.publish("t1", "progress", {"i": 3})
    live = await take(events, 1)

    assert [e.seq for e in backlog + live] == [2, 3, 4]


async def test_subscriber_ignores_other_tasks_and_streams(bus: RedisStreamsBus) -> None:
    events = bus.subscribe("t1")
    await bus.publish("t2", "other task")
    await bus.publish("t1", "other stream", stream="control")
    mine = await bus.publish("t1", "mine")

    assert await take(events, 1) == [mine]


async def test_closing_the_bus_ends_its_subscriptions(redis_url: str, tmp_path: Path) -> None:
    closing = make_bus(redis_url, tmp_path / "outbox.sqlite3")
    await closing.open()
    follower = asyncio.create_task(take(closing.subscribe("t1"), 1))
    await asyncio.sleep(0)

    await closing.close()

    assert await follower == []


async def test_cancelling_a_subscriber_ends_it_cleanly(bus: RedisStreamsBus) -> None:
    follower = asyncio.create_task(take(bus.subscribe("t1"), 1))
    await asyncio.sleep(0.05)  # let it reach its blocking read

    follower.cancel()

    with pytest.raises(asyncio.CancelledError):
        await follower
    assert (await bus.publish("t1", "after")).seq == 1


async def test_subscribing_to_a_bus_that_is_not_open_is_a_clear_error(
    redis_url: str, tmp_path: Path
) -> None:
    unopened = make_bus(redis_url, tmp_path / "outbox.sqlite3")

    with pytest.raises(RuntimeError, match="not open"):
        await take(unopened.subscribe("t1"), 1)


async def test_subscriber_in_another_bus_sees_each_event_once(
    bus: RedisStreamsBus,
    redis_url: str,
    tmp_path: Path,
) -> None:
    reader = make_bus(redis_url, tmp_path / "reader-outbox.sqlite3")
    await reader.open()
    try:
        received = asyncio.create_task(take(reader.subscribe("t1"), 50))
        await asyncio.gather(*(bus.publish("t1", "progress") for _ in range(50)))

        assert [e.seq for e in await received] == list(range(1, 51))
    finally:
        await reader.close()


# --- Redis going away --------------------------------------------------------------------------


async def test_publish_buffers_while_redis_is_down_and_the_flusher_delivers_later(
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    redis_server.start()
    buffered = make_bus(redis_server.url, tmp_path / "outbox.sqlite3")
    await buffered.open()
    try:
        await asyncio.to_thread(redis_server.kill)
        published = [await buffered.publish("t1", "progress", {"i": i}) for i in range(3)]
        assert [e.seq for e in published] == [0, 0, 0]  # buffered: Redis assigns seqs later
        assert await buffered.pending() == 3

        await asyncio.to_thread(redis_server.start)
        async with asyncio.timeout(GUARD_S):
            await buffered.wait_drained()

        events = await buffered.replay("t1")
        assert [(e.seq, e.payload["i"]) for e in events] == [(1, 0), (2, 1), (3, 2)]
        assert [e.id for e in events] == [e.id for e in published]
    finally:
        await buffered.close()


async def test_a_redis_restart_mid_stream_costs_time_never_events(
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    """Acceptance 2 of issue 4 at bus level: Redis is SIGKILLed while a publisher keeps going and
    comes back (empty) a second later; every event reaches the subscriber once, in order."""
    redis_server.start()
    redis_server.flush()
    publisher = make_bus(redis_server.url, tmp_path / "publisher.sqlite3")
    reader = make_bus(redis_server.url, tmp_path / "reader.sqlite3")
    await publisher.open()
    await reader.open()
    try:
        received = asyncio.create_task(take(reader.subscribe("t1"), 300))

        async def restart_a_second_later() -> None:
            await asyncio.sleep(1.0)  # the outage, not an assertion
            await asyncio.to_thread(redis_server.start)

        published: list[Event] = []
        restart: asyncio.Task[None] | None = None
        for i in range(300):
            if i == 100:
                await asyncio.to_thread(redis_server.kill)
                restart = asyncio.create_task(restart_a_second_later())
            async with asyncio.timeout(GUARD_S):  # publish never hangs on a dead Redis
                published.append(await publisher.publish("t1", "progress", {"i": i}))
            await asyncio.sleep(0.006)  # pacing: ~2 s of publishing around the outage
        assert restart is not None
        await restart

        events = await received
        async with asyncio.timeout(GUARD_S):
            await publisher.wait_drained()
        assert any(e.seq == 0 for e in published)  # the outage really buffered events
        assert [e.seq for e in events] == list(range(1, 301))
        assert [e.payload["i"] for e in events] == list(range(300))
        assert await publisher.pending() == 0
    finally:
        await publisher.close()
        await reader.close()
        redis_server.start()


async def test_a_new_bus_on_a_dead_publishers_outbox_delivers_what_it_left(
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    redis_server.start()
    outbox = tmp_path / "outbox.sqlite3"
    await asyncio.to_thread(redis_server.kill)
    crashed = make_bus(redis_server.url, outbox)
    await crashed.open()
    for i in range(3):
        await crashed.publish("t1", "progress", {"i": i})
    await crashed.close()  # as a crash would, it leaves the outbox on disk
    await asyncio.to_thread(redis_server.start)

    successor = make_bus(redis_server.url, outbox)
    await successor.open()
    try:
        async with asyncio.timeout(GUARD_S):
            await successor.wait_drained()
        assert [e.payload["i"] for e in await successor.replay("t1")] == [0, 1, 2]
    finally:
        await successor.close()


async def test_replay_gives_up_with_a_clear_error_when_redis_stays_away(
    unused_port: int, tmp_path: Path
) -> None:
    unreachable = make_bus(
        f"redis://127.0.0.1:{unused_port}/0", tmp_path / "outbox.sqlite3", read_patience=0.2
    )
    await unreachable.open()
    try:
        with pytest.raises(BusUnavailable, match=r"Redis at 127\.0\.0\.1:\d+ is unreachable"):
            await unreachable.replay("t1")
    finally:
        await unreachable.close()


async def test_publishing_without_redis_never_raises(unused_port: int, tmp_path: Path) -> None:
    unreachable = make_bus(f"redis://127.0.0.1:{unused_port}/0", tmp_path / "outbox.sqlite3")
    await unreachable.open()
    try:
        await unreachable.publish("t1", "progress")
        await unreachable.publish("t1", "progress", stream="control")

        assert await unreachable.pending() == 2
    finally:
        await unreachable.close()


async def test_events_redis_lost_are_restored_with_their_seqs_before_new_ones(
    bus: RedisStreamsBus,
    redis_server: RedisServer,
) -> None:
    for i in range(5):
        await bus.publish("t1", "progress", {"i": i})
    await asyncio.to_thread(redis_server.flush)  # Redis forgets everything it acknowledged

    after = await bus.publish("t1", "progress", {"i": 5})

    assert after.seq == 6
    assert [(e.seq, e.payload["i"]) for e in await bus.replay("t1")] == [
        (n + 1, n) for n in range(6)
    ]


async def test_an_idle_publisher_restores_what_redis_lost(
    redis_url: str,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    idle = make_bus(redis_url, tmp_path / "outbox.sqlite3", health_interval=0.05)
    await idle.open()
    try:
        for i in range(3):
            await idle.publish("t1", "progress", {"i": i})
        await asyncio.to_thread(redis_server.flush)

        async def restored() -> bool:
            return len(await idle.replay("t1")) == 3

        await eventually(restored)
    finally:
        await idle.close()


async def test_resending_an_event_after_an_unknown_outcome_does_not_duplicate_it(
    redis_url: str,
) -> None:
    client = connect(redis_url, connect_timeout=5)
    writer = StreamWriter(client, retain=10)
    event = OutgoingEvent(
        id="ev_once",
        task_id="t1",
        stream="events",
        type="x",
        module_id=None,
        ts=utcnow(),
        payload="{}",
    )
    try:
        first = await writer.deliver(event)
        again = await writer.deliver_many([event])

        assert (first, again) == (1, [1])
        assert await client.xlen("agentfirm:t1:events") == 1
    finally:
        await client.aclose()


_PUBLISHER = """
import asyncio, sys
from pathlib import Path
import redis.asyncio
from agentfirm.bus.redis_streams import RedisStreamsBus

async def main(url: str, outbox: str, name: str) -> None:
    bus = RedisStreamsBus(url, outbox_path=Path(outbox))
    await bus.open()
    start = redis.asyncio.Redis.from_url(url)
    await start.incr("test:ready")
    while int(await start.get("test:ready")) < 2:  # start together, so the two interleave
        await asyncio.sleep(0.005)
    await start.aclose()
    for i in range(200):
        await bus.publish("t1", "remote", {"publisher": name, "i": i})
    async with asyncio.timeout(30):
        await bus.wait_drained()
    await bus.close()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_publishers_in_two_processes_share_one_gap_free_sequence(
    redis_url: str,
    tmp_path: Path,
) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _PUBLISHER, redis_url, str(tmp_path / f"{name}.sqlite3"), name
        )
        for name in ("a", "b")
    ]
    async with asyncio.timeout(60):
        assert [await proc.wait() for proc in procs] == [0, 0]

    reader = make_bus(redis_url, tmp_path / "reader.sqlite3")
    await reader.open()
    try:
        events = await reader.replay("t1")
    finally:
        await reader.close()
    assert [e.seq for e in events] == list(range(1, 401))
    for name in ("a", "b"):
        assert [e.payload["i"] for e in events if e.payload["publisher"] == name] == list(
            range(200)
        )


# --- the work queue ----------------------------------------------------------------------------


async def test_claim_returns_none_when_there_is_no_work(queue: RedisWorkQueue) -> None:
    assert await queue.claim("w1", block_ms=None) is None


async def test_queued_work_goes_to_one_consumer_only(queue: RedisWorkQueue) -> None:
    entry_id = await queue.enqueue("t1")

    first = await queue.claim("w1", block_ms=None)
    second = await queue.claim("w2", block_ms=None)

    assert first is not None
    assert (first.entry_id, first.task_id, first.reclaimed) == (entry_id, "t1", False)
    assert second is None


async def test_a_blocked_claim_takes_work_queued_while_it_waits(queue: RedisWorkQueue) -> None:
    waiting = asyncio.create_task(queue.claim("w1", block_ms=3000))
    await asyncio.sleep(0.05)  # let the claim reach XREADGROUP BLOCK first

    entry_id = await queue.enqueue("t1")

    claim = await waiting
    assert claim is not None
    assert (claim.entry_id, claim.task_id) == (entry_id, "t1")


async def test_work_held_by_a_dead_worker_is_reclaimed_by_another(queue: RedisWorkQueue) -> None:
    entry_id = await queue.enqueue("t1")
    assert await queue.claim("doomed", block_ms=None) is not None  # then it dies: no ack

    async def reclaimed() -> bool:
        claim = await queue.claim("survivor", block_ms=None, min_idle_ms=100)
        if claim is not None:
            assert (claim.entry_id, claim.task_id, claim.reclaimed) == (entry_id, "t1", True)
        return claim is not None

    await eventually(reclaimed)


async def test_acked_work_is_never_handed_out_again(queue: RedisWorkQueue) -> None:
    await queue.enqueue("t1")
    claim = await queue.claim("w1", block_ms=None)
    assert claim is not None

    assert await queue.ack(claim.entry_id) is True

    assert await queue.claim("w2", block_ms=None, min_idle_ms=0) is None
    assert await queue.ack(claim.entry_id) is False


async def test_touching_work_keeps_it_from_being_reclaimed(
    queue: RedisWorkQueue,
    redis_url: str,
) -> None:
    await queue.enqueue("t1")
    claim = await queue.claim("w1", block_ms=None)
    assert claim is not None
    raw = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)

    async def idle_for_a_second() -> bool:
        pending = await raw.xpending_range(queue.stream, queue.group, "-", "+", 1)
        return int(pending[0]["time_since_delivered"]) >= 1000

    try:
        await eventually(idle_for_a_second)
        assert await queue.touch("w1", claim.entry_id) == "held"

        assert await queue.claim("w2", block_ms=None, min_idle_ms=1000) is None
    finally:
        await raw.aclose()


async def test_a_worker_whose_work_was_reclaimed_is_told_so(queue: RedisWorkQueue) -> None:
    await queue.enqueue("t1")
    claim = await queue.claim("slow", block_ms=None)
    assert claim is not None

    async def reclaimed() -> bool:
        return await queue.claim("fast", block_ms=None, min_idle_ms=50) is not None

    await eventually(reclaimed)

    assert await queue.touch("slow", claim.entry_id) == "taken"


async def test_touching_work_that_was_acked_finds_it_gone(queue: RedisWorkQueue) -> None:
    await queue.enqueue("t1")
    claim = await queue.claim("w1", block_ms=None)
    assert claim is not None
    await queue.ack(claim.entry_id)

    assert await queue.touch("w1", claim.entry_id) == "gone"


async def test_a_run_request_travels_with_the_work(queue: RedisWorkQueue) -> None:
    await queue.enqueue("t1", run_id="run_1", notes="shorter, please")

    claim = await queue.claim("w1", block_ms=None)

    assert claim is not None
    assert (claim.task_id, claim.run_id, claim.notes) == ("t1", "run_1", "shorter, please")


async def test_released_work_is_reclaimed_at_once_by_another_worker(
    queue: RedisWorkQueue,
) -> None:
    entry_id = await queue.enqueue("t1")
    claim = await queue.claim("leaving", block_ms=None)
    assert claim is not None

    assert await queue.release("leaving", claim.entry_id) == "held"

    taken = await queue.claim("staying", block_ms=None, min_idle_ms=60_000)
    assert taken is not None
    assert (taken.entry_id, taken.reclaimed) == (entry_id, True)
    assert await queue.release("leaving", claim.entry_id) == "taken"


async def test_the_queue_recovers_its_group_after_redis_lost_it(
    queue: RedisWorkQueue,
    redis_server: RedisServer,
) -> None:
    assert await queue.claim("w1", block_ms=None) is None  # the group exists now
    await asyncio.to_thread(redis_server.flush)

    entry_id = await queue.enqueue("t1")

    claim = await queue.claim("w1", block_ms=None)
    assert claim is not None
    assert (claim.entry_id, claim.task_id) == (entry_id, "t1")


async def test_a_task_has_one_unfinished_run_queued_at_a_time(queue: RedisWorkQueue) -> None:
    first = await queue.enqueue_run("t1", run_id="run_1", notes="shorter")
    other_task = await queue.enqueue_run("t2", run_id="run_2")

    while_queued = await queue.enqueue_run("t1", run_id="run_3")
    claim = await queue.claim("w1", block_ms=None)
    assert claim is not None
    while_held = await queue.enqueue_run("t1", run_id="run_4")
    await queue.ack(claim.entry_id)
    after_it_finished = await queue.enqueue_run("t1", run_id="run_5")

    assert (first.run_id, first.reused, other_task.reused) == ("run_1", False, False)
    assert (claim.entry_id, claim.run_id, claim.notes) == (first.entry_id, "run_1", "shorter")
    assert while_queued == (first.entry_id, "run_1", True)
    assert while_held == (first.entry_id, "run_1", True)
    assert (after_it_finished.run_id, after_it_finished.reused) == ("run_5", False)
    assert after_it_finished.entry_id != first.entry_id


async def test_a_run_tells_where_it_is_queued_held_or_done(queue: RedisWorkQueue) -> None:
    queued = await queue.enqueue_run("t1", run_id="run_1")
    assert await queue.locate(queued.entry_id) == "queued"
    claim = await queue.claim("w1", block_ms=None)
    assert claim is not None
    assert await queue.locate(queued.entry_id) == "held"
    await queue.ack(claim.entry_id)
    assert await queue.locate(queued.entry_id) == "done"


async def test_a_run_lost_by_redis_restarting_empty_is_found_lost_and_queued_again(
    queue: RedisWorkQueue,
    redis_server: RedisServer,
) -> None:
    lost = await queue.enqueue_run("t1", run_id="run_1", notes="shorter")
    await asyncio.to_thread(redis_server.restart)

    assert await queue.locate(lost.entry_id) == "lost"
    again = await queue.enqueue_run("t1", run_id="run_1", notes="shorter")
    claim = await queue.claim("w1", block_ms=None)

    assert (again.run_id, again.reused) == ("run_1", False)
    assert claim is not None
    assert (claim.entry_id, claim.run_id, claim.notes) == (again.entry_id, "run_1", "shorter")


async def test_a_claim_waiting_while_the_stream_is_deleted_keeps_going(
    queue: RedisWorkQueue,
    redis_server: RedisServer,
) -> None:
    assert await queue.claim("w1", block_ms=None) is None  # the group exists now
    waiting = asyncio.create_task(queue.claim("w1", block_ms=3000))
    await asyncio.sleep(0.1)  # let the claim reach XREADGROUP BLOCK first

    await asyncio.to_thread(redis_server.flush)  # Redis tells the blocked claim UNBLOCKED
    entry_id = await queue.enqueue("t1")

    async with asyncio.timeout(GUARD_S):
        claim = await waiting
    claim = claim or await queue.claim("w1", block_ms=None)
    assert claim is not None
    assert (claim.entry_id, claim.task_id) == (entry_id, "t1")
