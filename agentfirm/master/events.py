"""The event pump: while Build Master work runs, every event it publishes is copied into the
store (deduped by seq), handed to the front end's observer and — for ``budget.exceeded`` — put
to the budget prompt; a transition to ``aborting`` is told to the task's abort watch
(``AbortingHeard``) before anything else, so a slow observer does not keep it from hearing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from agentfirm.bus.base import Bus
from agentfirm.domain.models import Event
from agentfirm.master.abort_watch import AbortingHeard
from agentfirm.store.base import Store

T = TypeVar("T")
Observer = Callable[[Event], Awaitable[None] | None]
OnBudget = Callable[[str, dict[str, Any]], Awaitable[object]]


class EventPump:
    def __init__(
        self, store: Store, bus: Bus, observer: Observer | None, on_budget: OnBudget
    ) -> None:
        self.store = store
        self.bus = bus
        self.observer = observer
        self.on_budget = on_budget
        self.aborting = AbortingHeard()
        """Where the abort watches of the work this pump runs around hear their task turn."""

    async def around(self, task_id: str, work: Awaitable[T]) -> T:
        """Run ``work`` with the task's events flowing to the store and the observer."""
        handling = asyncio.Lock()
        shown = asyncio.Event()
        shown.set()
        pump = asyncio.create_task(self._pump(task_id, handling, shown))
        cancelled = False
        try:
            return await work
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            # Stop the pump between two events, never inside one: an event recorded in the store
            # but cut off before the observer saw it would be lost to the front end (drain skips
            # what the store already has).
            try:
                if not cancelled:
                    async with handling:  # the whole event, a budget answer included
                        pump.cancel()
            finally:
                if not pump.cancelling():
                    # Cancelled (the daemon stops), before or while waiting: a budget question
                    # the pump waits on is not waited for — nobody may answer it before the
                    # process ends, and its approval row stays for the next start to ask again.
                    try:
                        while not shown.is_set():
                            await shown.wait()
                    finally:
                        pump.cancel()
            await _stopped(pump)
            await self.drain(task_id, answer=not cancelled)

    async def _last_seq(self, task_id: str) -> int:
        events = await self.store.list_events(task_id)
        return events[-1].seq if events else 0

    async def _pump(self, task_id: str, handling: asyncio.Lock, shown: asyncio.Event) -> None:
        """``handling`` is held for a whole event, budget answer included; ``shown`` is clear
        only while the event is being recorded and shown."""
        async for event in self.bus.subscribe(task_id, after_seq=await self._last_seq(task_id)):
            self.aborting.heard(event)
            async with handling:
                shown.clear()
                try:
                    recorded = await self._show(event)
                finally:
                    shown.set()
                if recorded:
                    await self._answer(event)

    async def drain(self, task_id: str, *, answer: bool = True) -> None:
        """Record (and show) every event of the task the store does not have yet; ``answer``:
        put a ``budget.exceeded`` among them to the budget prompt (not while stopping)."""
        drained = getattr(self.bus, "wait_drained", None)
        if drained is not None:  # a bus with an outbox: what it still holds is not replayable yet
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await drained()
        for event in await self.bus.replay(task_id, after_seq=await self._last_seq(task_id)):
            if await self._show(event) and answer:
                await self._answer(event)

    async def _show(self, event: Event) -> bool:
        """Record the event and hand it to the observer; False when the store had it already."""
        if not await self.store.record_event(event):
            return False
        if self.observer is not None:
            maybe = self.observer(event)
            if maybe is not None:
                await maybe
        return True

    async def _answer(self, event: Event) -> None:
        if event.type == "budget.exceeded":
            await self.on_budget(event.task_id, event.payload)


async def _stopped(pump: asyncio.Task[None]) -> None:
    """Wait for the cancelled ``pump`` to end. Its own ``CancelledError`` ends here; one for this
    task (the driver cancelled meanwhile: the daemon stopping right after an abort) goes on —
    swallowing it would leave the driver running on where nobody waits for it."""
    me = asyncio.current_task()
    requested = me.cancelling() if me is not None else 0
    try:
        await pump
    except asyncio.CancelledError:
        if me is not None and me.cancelling() > requested:
            raise
