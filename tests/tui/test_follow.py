"""Following events across a broken stream and a daemon that is down for a while: every event
once, in order, then the end once the task is final."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from agentfirm.tui.client import Unavailable

from agentfirm.api.follow import Link, follow
from agentfirm.errors import NotFound


def _events(seqs: range) -> list[dict[str, Any]]:
    return [{"seq": n, "type": "x", "payload": {}} for n in seqs]


class Flaky:
    """Stream 1: events 1–4, then the connection breaks. Then the daemon is down twice. Stream
    2 replays from 3 (an overlap) to 7 and ends (the daemon stops). Stream 3: 8, and the task is
    final. Stream 4: nothing more."""

    def __init__(self) -> None:
        self.streams = [
            (_events(range(1, 5)), True),
            (_events(range(3, 8)), False),
            (_events(range(8, 9)), False),
            ([], False),
        ]
        self.down = 0
        self.after: list[int] = []
        self.status = "executing"

    async def task(self, task_id: str) -> dict[str, Any]:
        if self.down:
            self.down -= 1
            raise Unavailable("daemon down")
        return {"status": self.status}

    async def events(self, task_id: str, *, after_seq: int = 0) -> AsyncIterator[dict[str, Any]]:
        self.after.append(after_seq)
        events, breaks = self.streams.pop(0)
        for event in events:
            yield event
        if breaks:
            self.down = 2
            raise Unavailable("connection lost")
        if self.streams and not self.streams[0][0]:
            self.status = "completed"


async def test_every_event_arrives_once_across_breaks_and_restarts() -> None:
    source = Flaky()
    links: list[Link] = []
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    seen = [e["seq"] async for e in follow(source, "t", on_link=links.append, sleep=sleep)]  # type: ignore[arg-type]

    assert seen == list(range(1, 9))
    assert source.after == [0, 4, 7, 8]
    assert links[0] == "connecting"
    assert "reconnecting" in links
    assert links[-1] == "ended"
    assert delays == [0.1, 0.2, 0.4]  # backing off while the daemon is down


async def test_an_unknown_task_is_not_retried() -> None:
    class Missing:
        async def task(self, task_id: str) -> dict[str, Any]:
            raise NotFound(f"task {task_id} not found")

    with pytest.raises(NotFound):
        [e async for e in follow(Missing(), "t_nope")]  # type: ignore[arg-type]
