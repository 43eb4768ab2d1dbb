"""Following a task's events across daemon restarts: reconnect with the last ``seq`` seen, with
backoff, and drop anything already seen, so a consumer gets every event exactly once, in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from .client import Unavailable
from .fmt import FINAL_STATUSES
from .source import Source

Link = Literal["connecting", "live", "reconnecting", "ended"]


async def follow(
    source: Source,
    task_id: str,
    *,
    after_seq: int = 0,
    on_link: Callable[[Link], None] = lambda _link: None,
    first_delay: float = 0.1,
    max_delay: float = 2.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[dict[str, Any]]:
    """Every event of the task after ``after_seq``, once each, until the task is final and its
    stream has nothing more. A stream that breaks (or ends because the daemon stops) is resumed
    from the last seq seen as soon as a daemon answers again. ``NotFound`` (unknown task)
    propagates."""
    last = after_seq
    delay = first_delay
    on_link("connecting")
    while True:
        try:
            status = (await source.task(task_id)).get("status")
            on_link("live")
            got = 0
            async for event in source.events(task_id, after_seq=last):
                seq = int(event["seq"])
                if seq <= last:
                    continue  # a replay overlapping what was already delivered
                got += 1
                last = seq
                yield event
            # The stream ends when the task is final, or when the daemon stops. A pass that
            # brings nothing new, on a task already final before it began, means the end.
            if got == 0 and status in FINAL_STATUSES:
                on_link("ended")
                return
            if got:
                delay = first_delay
                continue
        except Unavailable:
            on_link("reconnecting")
        await sleep(delay)
        delay = min(max_delay, delay * 2)
