"""Following a task's events across daemon restarts, for every front end: reconnect with the last
``seq`` seen, with backoff, and drop anything already seen, so a consumer gets every event exactly
once, in order, until the task is final.

``follow`` is the async face (the TUI, the Slack bridge); ``follow_sync`` runs the same follower
for a sync consumer (the CLI), which may block between events (a question asked on the terminal).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from pathlib import Path
from typing import Any, Literal

from agentfirm.api.client import AsyncDaemonClient
from agentfirm.api.models import UNRECORDED
from agentfirm.api.wire import DaemonError
from agentfirm.domain.status import FINAL_STATUSES

Link = Literal["connecting", "live", "reconnecting", "ended"]


def _ignore(_value: Any) -> None:
    return None


async def follow(
    source: AsyncDaemonClient,
    task_id: str,
    *,
    after_seq: int = 0,
    on_link: Callable[[Link], None] = _ignore,
    on_task: Callable[[dict[str, Any]], None] = _ignore,
    first_delay: float = 0.1,
    max_delay: float = 2.0,
    patience: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncGenerator[dict[str, Any], None]:
    """Every event of the task after ``after_seq``, once each, until the task is final and its
    stream has nothing more. A stream that breaks (or ends because the daemon stops) is resumed
    from the last seq seen as soon as a daemon answers again; ``patience``: seconds of waiting
    for one after which ``DaemonError`` is raised (None: wait on). ``on_task`` gets the task's
    detail at each (re)connection. ``NotFound`` (unknown task) propagates."""
    last = after_seq
    delay = first_delay
    waited = 0.0
    on_link("connecting")
    while True:
        try:
            detail = await source.task(task_id)
            on_link("live")
            on_task(detail)
            waited, got = 0.0, 0
            async for event in source.events(task_id, after_seq=last):
                seq = int(event["seq"])
                if (event.get("payload") or {}).get(UNRECORDED):
                    yield event  # a notice the log could not take: it has no seq of its own
                    continue
                if seq <= last:
                    continue  # a replay overlapping what was already delivered
                got += 1
                last = seq
                yield event
            # The stream ends when the task is final, or when the daemon stops. A pass that
            # brings nothing new, on a task already final before it began, means the end.
            if got == 0 and detail.get("status") in FINAL_STATUSES:
                on_link("ended")
                return
            if got:
                delay = first_delay
                continue
        except DaemonError:
            if patience is not None and waited >= patience:
                raise
            on_link("reconnecting")
        await sleep(delay)
        waited += delay
        delay = min(max_delay, delay * 2)


def follow_sync(
    socket: Path | str, task_id: str, *, after_seq: int = 0, patience: float | None = None
) -> Generator[dict[str, Any], None, None]:
    """``follow`` for a sync consumer, on its own event loop and connection to the daemon at
    ``socket``: the loop runs only while the next event is awaited."""
    loop = asyncio.new_event_loop()
    client = AsyncDaemonClient(socket)
    events = follow(client, task_id, after_seq=after_seq, patience=patience)
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(events))
            except StopAsyncIteration:
                return
    finally:
        # After a Ctrl-C mid-await the generator may be stuck in its step: close what closes.
        with contextlib.suppress(Exception):
            loop.run_until_complete(events.aclose())
        with contextlib.suppress(Exception):
            loop.run_until_complete(client.aclose())
        loop.close()
