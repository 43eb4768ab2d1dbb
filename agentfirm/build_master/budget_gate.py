"""The budget gate: refused calls wait for the human instead of failing.

When the router refuses a call for budget, the first refused caller closes the gate and publishes
ONE ``budget.exceeded`` event; every caller refused while it is closed waits on the same gate. A
``budget.adjusted`` control event opens it and the callers retry; an ``abort`` control event makes
them (and ``watch``) raise ``BuildAborted``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from agentfirm.bus.base import Bus
from agentfirm.domain.costs import summarize
from agentfirm.errors import BudgetExceeded, TaskRejected
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)
T = TypeVar("T")


class BuildAborted(TaskRejected):
    """The human (or the Master, on a declined budget) aborted the build. Exit code 4."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"build aborted: {reason}")


async def last_control_seq(bus: Bus, task_id: str) -> tuple[int, str | None]:
    """The seq of the task's latest control event (0 when there is none): a watcher started from
    here reacts only to decisions made from now on, not to old ones. And the reason of an abort
    still standing (None when there is none): the latest control event is an ``abort`` — sent
    while this build was queued or starting (a cancel that came before it watched), or before a
    crash that kept the task from ending ``aborted`` — which the build must obey at once."""
    events = await bus.replay(task_id, stream="control")
    if not events:
        return 0, None
    last = events[-1]
    standing = str(last.payload.get("reason") or "aborted by the user")
    return last.seq, standing if last.type == "abort" else None


class BudgetGate:
    """One gate per Build Master run of a task. Feed it control events with ``watch``."""

    def __init__(self, *, store: Store, bus: Bus, task_id: str) -> None:
        self._store = store
        self._bus = bus
        self._task_id = task_id
        self._open = asyncio.Event()
        self._open.set()
        self._generation = 0
        """Counts budget adjustments: a refusal of a call that started before the latest one
        retries at once instead of closing the gate again."""
        self._abort_reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    async def attempt(self, module_id: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` (a fresh awaitable each time), waiting at the gate and retrying whenever
        the budget refuses it. Raises ``BuildAborted`` once the build is aborted."""
        while True:
            self._raise_if_aborted()
            generation = self._generation
            try:
                return await call()
            except BudgetExceeded as err:
                await self._hold(err, module_id, generation)

    def adjust(self, ceiling_usd: float | None = None) -> None:
        """The ceiling changed: open the gate so the waiting callers retry."""
        self._generation += 1
        log.info("budget.gate_opened", task_id=self._task_id, ceiling_usd=ceiling_usd)
        self._open.set()

    def abort(self, reason: str) -> None:
        """Release every waiting caller with ``BuildAborted(reason)``."""
        self._abort_reason = reason
        self._open.set()

    async def watch(self, *, after_seq: int) -> None:
        """Follow the task's control stream from ``after_seq`` until cancelled: ``budget.adjusted``
        opens the gate; ``abort`` aborts it and raises ``BuildAborted`` (run this beside the work
        in a ``TaskGroup`` so an abort cancels everything running)."""
        async for event in self._bus.subscribe(
            self._task_id, after_seq=after_seq, stream="control"
        ):
            if event.type == "budget.adjusted":
                ceiling = event.payload.get("ceiling_usd")
                self.adjust(float(ceiling) if isinstance(ceiling, int | float) else None)
            elif event.type == "abort":
                reason = str(event.payload.get("reason") or "aborted by the user")
                self.abort(reason)
                raise BuildAborted(reason)

    async def _hold(self, err: BudgetExceeded, module_id: str, generation: int) -> None:
        if generation != self._generation:
            return  # the budget was raised while this call was in flight: just retry
        if self._open.is_set():
            self._open.clear()
            await self._announce(err, module_id)
        await self._open.wait()
        self._raise_if_aborted()

    async def _announce(self, err: BudgetExceeded, module_id: str) -> None:
        ledger = await self._store.list_ledger(self._task_id)
        payload = {
            "spent_usd": float(err.spent_usd),
            "ceiling_usd": float(err.ceiling_usd),
            "needed_usd": float(err.needed_usd),
            "by_module": summarize(ledger)["by_module"],
        }
        log.warning("budget.exceeded", task_id=self._task_id, module_id=module_id, **payload)
        await self._bus.publish(self._task_id, "budget.exceeded", payload, module_id=module_id)

    def _raise_if_aborted(self) -> None:
        if self._abort_reason is not None:
            raise BuildAborted(self._abort_reason)
