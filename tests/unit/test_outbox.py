"""The Redis bus's disk outbox on its own: order, durability, removal, sharing one file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentfirm.bus.outbox import Outbox, OutgoingEvent

WHEN = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def outgoing(n: int, *, task_id: str = "t1", module_id: str | None = None) -> OutgoingEvent:
    return OutgoingEvent(
        id=f"ev_{n}",
        task_id=task_id,
        stream="events",
        type="progress",
        module_id=module_id,
        ts=WHEN,
        payload=f'{{"n":{n}}}',
    )


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    box = Outbox(tmp_path / "outbox.sqlite3")
    await box.open()
    yield box
    await box.close()


async def test_entries_come_back_oldest_first_with_every_field(outbox: Outbox) -> None:
    first = outgoing(1, module_id="research")
    second = OutgoingEvent(
        id="ev_2",
        task_id="t2",
        stream="control",
        type="abort",
        module_id=None,
        ts=WHEN,
        payload="{}",
    )
    await outbox.append(first)
    await outbox.append(second)

    assert [entry.event for entry in await outbox.oldest(10)] == [first, second]


async def test_oldest_returns_at_most_the_limit(outbox: Outbox) -> None:
    for n in range(5):
        await outbox.append(outgoing(n))

    assert [entry.event.id for entry in await outbox.oldest(2)] == ["ev_0", "ev_1"]


async def test_removed_entries_are_gone_and_the_rest_keep_their_order(outbox: Outbox) -> None:
    positions = [await outbox.append(outgoing(n)) for n in range(4)]

    await outbox.remove([positions[0], positions[2]])

    assert [entry.event.id for entry in await outbox.oldest(10)] == ["ev_1", "ev_3"]
    assert await outbox.count() == 2


async def test_removing_absent_positions_changes_nothing(outbox: Outbox) -> None:
    await outbox.append(outgoing(1))

    await outbox.remove([12345])
    await outbox.remove([])

    assert await outbox.count() == 1


async def test_a_position_is_never_reused_once_removed(outbox: Outbox) -> None:
    # A flusher that read a row, delivered it and deletes it late must not hit a newer row.
    old = await outbox.append(outgoing(1))
    await outbox.remove([old])

    new = await outbox.append(outgoing(2))

    assert new > old


async def test_buffered_events_survive_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path)
    await box.open()
    await box.append(outgoing(1))
    await box.close()

    reopened = Outbox(path)
    await reopened.open()
    try:
        assert [entry.event for entry in await reopened.oldest(10)] == [outgoing(1)]
    finally:
        await reopened.close()


async def test_two_outboxes_on_one_file_share_one_queue_in_append_order(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    one, two = Outbox(path), Outbox(path)
    await one.open()
    await two.open()
    try:
        await one.append(outgoing(1))
        await two.append(outgoing(2))
        await one.append(outgoing(3))

        assert [entry.event.id for entry in await two.oldest(10)] == ["ev_1", "ev_2", "ev_3"]
    finally:
        await one.close()
        await two.close()


async def test_using_a_closed_outbox_is_a_clear_error(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3")

    with pytest.raises(RuntimeError, match="not open"):
        await box.append(outgoing(1))


def test_an_outgoing_event_with_its_seq_is_the_event_subscribers_see() -> None:
    event = outgoing(7, module_id="research").with_seq(42)

    assert (event.id, event.seq, event.module_id, event.ts) == ("ev_7", 42, "research", WHEN)
    assert event.payload == {"n": 7}
