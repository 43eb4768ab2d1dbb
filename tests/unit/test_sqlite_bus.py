"""The embedded event-log bus: ordering, replay, live follow in and across processes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import Event
from agentfirm.store.sqlite import inline

# Long enough that only the in-process wake-up can deliver in time: a test relying on polling
# sets its own interval.
NO_POLLING = 3600.0
# A guard against hanging forever when a behaviour is broken, not a timing assertion.
GUARD_S = 10


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SQLiteLogBus]:
    log_bus = SQLiteLogBus(tmp_path / "bus.sqlite3")
    await log_bus.open()
    yield log_bus
    await log_bus.close()


async def take(events: AsyncIterator[Event], count: int) -> list[Event]:
    taken: list[Event] = []
    async with asyncio.timeout(GUARD_S):
        async for event in events:
            taken.append(event)
            if len(taken) == count:
                break
    return taken


async def test_concurrent_publishers_get_gap_free_seqs_in_their_own_order(
    bus: SQLiteLogBus,
) -> None:
    async def publisher(n: int) -> None:
        for i in range(5):
            await bus.publish("t1", "progress", {"publisher": n, "i": i})

    await asyncio.gather(*(publisher(n) for n in range(20)))

    events = await bus.replay("t1")
    assert [e.seq for e in events] == list(range(1, 101))
    for n in range(20):
        assert [e.payload["i"] for e in events if e.payload["publisher"] == n] == list(range(5))


async def test_publish_returns_the_event_as_it_is_stored(bus: SQLiteLogBus) -> None:
    published = await bus.publish("t1", "module.done", {"pair": (1, 2)}, module_id="research")

    assert await bus.replay("t1") == [published]
    assert published.payload == {"pair": [1, 2]}
    assert published.id.startswith("ev_")


async def test_replay_returns_only_events_after_the_seq(bus: SQLiteLogBus) -> None:
    for i in range(5):
        await bus.publish("t1", "progress", {"i": i})

    assert [e.seq for e in await bus.replay("t1", after_seq=3)] == [4, 5]


async def test_seqs_are_per_task(bus: SQLiteLogBus) -> None:
    await bus.publish("t1", "a")
    other = await bus.publish("t2", "a")

    assert other.seq == 1


async def test_events_and_control_streams_are_independent(bus: SQLiteLogBus) -> None:
    await bus.publish("t1", "progress")
    await bus.publish("t1", "progress")
    control = await bus.publish("t1", "abort", stream="control")

    assert control.seq == 1
    assert [e.type for e in await bus.replay("t1", stream="control")] == ["abort"]
    assert [e.type for e in await bus.replay("t1")] == ["progress", "progress"]


async def test_non_json_payload_raises_type_error_and_stores_nothing(bus: SQLiteLogBus) -> None:
    with pytest.raises(TypeError):
        await bus.publish("t1", "progress", {"when": object()})
    with pytest.raises(TypeError):
        await bus.publish("t1", "progress", {"cost": float("nan")})

    assert await bus.replay("t1") == []


async def test_subscribe_replays_from_the_seq_then_follows(bus: SQLiteLogBus) -> None:
    for i in range(3):
        await bus.publish("t1", "progress", {"i": i})
    events = bus.subscribe("t1", after_seq=1, poll_interval=NO_POLLING)

    backlog = await take(events, 2)
    await bus.publish("t1", "progress", {"i": 3})
    live = await take(events, 1)

    assert [e.seq for e in backlog + live] == [2, 3, 4]


async def test_subscriber_is_woken_by_a_publish_in_the_same_process(bus: SQLiteLogBus) -> None:
    events = bus.subscribe("t1", poll_interval=NO_POLLING)
    waiting = asyncio.create_task(take(events, 1))
    # One loop step puts the subscriber inside its first read, holding the bus's (fair) lock, so
    # the publish below lands after that read: only the wake-up can deliver it.
    await asyncio.sleep(0)

    published = await bus.publish("t1", "hello")

    assert await waiting == [published]


async def test_subscriber_sees_each_seq_once_in_order_while_publishers_race(
    bus: SQLiteLogBus,
) -> None:
    events = bus.subscribe("t1", poll_interval=NO_POLLING)
    received = asyncio.create_task(take(events, 100))

    async def publisher() -> None:
        for _ in range(5):
            await bus.publish("t1", "progress")

    await asyncio.gather(*(publisher() for _ in range(20)))

    assert [e.seq for e in await received] == list(range(1, 101))


async def test_subscriber_ignores_other_tasks_and_streams(bus: SQLiteLogBus) -> None:
    events = bus.subscribe("t1", poll_interval=NO_POLLING)
    await bus.publish("t2", "other task")
    await bus.publish("t1", "other stream", stream="control")
    mine = await bus.publish("t1", "mine")

    assert await take(events, 1) == [mine]


_PUBLISHER = """
import asyncio, sys
from pathlib import Path
from agentfirm.bus.sqlite_log import SQLiteLogBus

async def main(path: str) -> None:
    bus = SQLiteLogBus(Path(path))
    await bus.open()
    for i in range(3):
        await bus.publish("t1", "remote", {"i": i})
    await bus.close()

asyncio.run(main(sys.argv[1]))
"""


async def test_subscriber_sees_events_published_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    bus = SQLiteLogBus(path)
    await bus.open()
    try:
        events = bus.subscribe("t1", poll_interval=0.02)
        received = asyncio.create_task(take(events, 3))
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _PUBLISHER, str(path))
        assert await proc.wait() == 0

        assert [e.payload["i"] for e in await received] == [0, 1, 2]
    finally:
        await bus.close()


async def test_aclose_ends_a_subscription_and_the_bus_keeps_working(bus: SQLiteLogBus) -> None:
    await bus.publish("t1", "first")
    events = bus.subscribe("t1", poll_interval=NO_POLLING)
    await take(events, 1)

    await events.aclose()

    assert (await bus.publish("t1", "second")).seq == 2


async def test_cancelling_a_subscriber_ends_it_cleanly(bus: SQLiteLogBus) -> None:
    follower = asyncio.create_task(take(bus.subscribe("t1", poll_interval=NO_POLLING), 1))
    await asyncio.sleep(0)

    follower.cancel()

    with pytest.raises(asyncio.CancelledError):
        await follower
    assert (await bus.publish("t1", "after")).seq == 1


async def test_closing_the_bus_ends_its_subscriptions(tmp_path: Path) -> None:
    bus = SQLiteLogBus(tmp_path / "bus.sqlite3")
    await bus.open()
    follower = asyncio.create_task(take(bus.subscribe("t1", poll_interval=NO_POLLING), 1))
    await asyncio.sleep(0)

    await bus.close()

    assert await follower == []


async def test_publishes_go_inline_again_once_the_shared_connection_had_its_turn(
    bus: SQLiteLogBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One write in CHECKPOINT_EVERY goes through the shared connection (it checkpoints); the
    # turn holds until that write is made. A bus that never said so would write the slow way
    # from then on: the inline writes would stop counting.
    monkeypatch.setattr(inline, "CHECKPOINT_EVERY", 5)
    for i in range(30):
        await bus.publish("t1", "progress", {"i": i})

    assert bus._inline._writes >= 25  # all but the slow ones counted as inline turns
    assert [e.seq for e in await bus.replay("t1")] == list(range(1, 31))
