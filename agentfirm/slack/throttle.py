"""At most one edit per interval: ``Coalescer`` keeps the latest value pushed and sends it no
sooner than ``interval`` after the previous send, so a burst of events becomes a handful of
``chat.update`` calls that always end on the newest state.

Time comes from a ``Clock`` so tests drive it by hand instead of waiting on the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Coalescer(Generic[T]):
    """Sends the latest pushed value through ``send``, at most once per ``interval`` seconds of
    ``clock``. The first value after a quiet spell goes out at once; values pushed while waiting
    replace each other. A failed send is logged and dropped: the next push carries the state."""

    def __init__(
        self,
        send: Callable[[T], Awaitable[None]],
        *,
        interval: float = 1.0,
        clock: Clock | None = None,
        name: str = "progress",
    ) -> None:
        self._send = send
        self.interval = interval
        self._clock: Clock = clock or SystemClock()
        self._name = name
        self._latest: T | None = None
        self._dirty = False
        self._last_sent: float | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._quiet = asyncio.Event()
        self._quiet.set()

    def push(self, value: T) -> None:
        """Make ``value`` the state to show; returns at once."""
        self._latest = value
        self._dirty = True
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop(), name=f"coalesce-{self._name}")

    async def quiet(self) -> None:
        """Until no send is in flight (a sleeping or finished flusher is quiet)."""
        await self._quiet.wait()

    async def flush(self) -> None:
        """Until the latest value has been sent (still respecting the interval)."""
        if self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def close(self) -> None:
        """Stop without sending what is pending."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    async def _flush_loop(self) -> None:
        while self._dirty:
            if self._last_sent is not None:
                wait = self._last_sent + self.interval - self._clock.now()
                if wait > 0:
                    await self._clock.sleep(wait)
            value, self._dirty = self._latest, False
            self._quiet.clear()
            try:
                await self._send(value)  # type: ignore[arg-type]  # set with _dirty
            except Exception as err:  # Slack hiccups must not stop the task's thread
                log.warning("slack.edit_failed", what=self._name, error=f"{type(err).__name__}")
            finally:
                # The interval runs from the end of a send: Slack counts edits as they arrive,
                # and an edit arrives somewhere within its send.
                self._last_sent = self._clock.now()
                self._quiet.set()
