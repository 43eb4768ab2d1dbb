"""Bookings of one kind sent together (group commit): one booking or batch on its way at a time
per task; what the task asks meanwhile goes together as the next batch. A lone booking goes at
once, in its caller's task, so a sequential caller waits for nothing more than before; 64
concurrent calls share a round trip, a transaction, a commit and the task's budget row lock per
batch instead of queueing call by call on that row (issue 19). Batching per task keeps tasks
apart: a booking never waits behind another task's (a lock held elsewhere on that task's rows,
a slow connection).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Undo = Callable[[], Awaitable[object]]


class Refused(Exception):
    """Raised by a batch's ``many`` when nothing of the batch was written (the server refused it
    as a whole): each item then goes again alone, so one bad item fails only its own caller."""


class Batcher(Generic[T, R]):
    """Runs ``one`` for a lone item and ``many`` for a batch (results in the items' order)."""

    def __init__(
        self,
        one: Callable[[T], Awaitable[R]],
        many: Callable[[Sequence[T]], Awaitable[list[R]]],
        *,
        max_items: int = 256,
        on_idle: Callable[[], object] = lambda: None,
    ) -> None:
        self._one = one
        self._many = many
        self._max_items = max_items
        self._on_idle = on_idle
        self._busy = False
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._sending: asyncio.Task[None] | None = None  # held: the loop keeps tasks weakly

    async def run(self, item: T, *, undo: Undo | None = None) -> R:
        """The item's result. A caller cancelled meanwhile gets its cancellation once the item's
        statement has ended (a batch goes on without its callers) and ``undo`` has run, both
        shielded from further cancellations."""
        if not self._busy:
            self._busy = True
            try:
                return await self._one(item)
            except asyncio.CancelledError:
                # psycopg has waited for the statement to end (cancelled on the server, or done).
                if undo is not None:
                    await asyncio.shield(undo())
                raise
            finally:
                self._next()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.shield(_after(future, undo))
            raise

    def _next(self) -> None:
        """The booking on its way has ended: send what waits, or be free."""
        if not self._waiting:
            self._busy = False
            self._on_idle()
            return
        batch = self._waiting[: self._max_items]
        del self._waiting[: self._max_items]
        self._sending = asyncio.get_running_loop().create_task(self._send(batch))

    async def _send(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            await self._deliver(batch)
        except BaseException:  # the loop is going away: nobody is left to send for those waiting
            for _, future in batch + self._waiting:
                future.cancel()
            self._waiting.clear()
            self._busy = False
            self._on_idle()
            raise
        self._next()

    async def _deliver(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await (self._many(items) if len(items) > 1 else _one_of(self._one, items))
        except Refused:
            for item, future in batch:
                await _settle(future, self._one(item))
            return
        except Exception as err:
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


class PerKey(Generic[T, R]):
    """A ``Batcher`` per key (a task), kept while it has work."""

    def __init__(
        self,
        one: Callable[[T], Awaitable[R]],
        many: Callable[[Sequence[T]], Awaitable[list[R]]],
    ) -> None:
        self._one = one
        self._many = many
        self._batchers: dict[str, Batcher[T, R]] = {}

    async def run(self, key: str, item: T, *, undo: Undo | None = None) -> R:
        """``Batcher.run`` on the key's batcher."""
        batcher = self._batchers.get(key)
        if batcher is None:
            batcher = Batcher(self._one, self._many, on_idle=lambda: self._batchers.pop(key, None))
            self._batchers[key] = batcher
        return await batcher.run(item, undo=undo)


async def _one_of(one: Callable[[T], Awaitable[R]], items: Sequence[T]) -> list[R]:
    return [await one(items[0])]


async def _settle(future: asyncio.Future[R], work: Awaitable[R]) -> None:
    try:
        result = await work
    except Exception as err:
        if not future.done():
            future.set_exception(err)
        return
    if not future.done():
        future.set_result(result)


async def _after(future: asyncio.Future[R], undo: Undo | None) -> None:
    await asyncio.wait((future,))
    if not future.cancelled():
        future.exception()  # seen: its caller is gone
    if undo is not None:
        await undo()
