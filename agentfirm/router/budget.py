"""Reserve-then-settle: a call's worst case is reserved atomically against the task's ceiling
before it runs, and replaced by its actual cost after. Spend can never pass the ceiling, however
many calls run at once (the atomicity lives in ``Store.reserve``)."""

from __future__ import annotations

from typing import cast

from agentfirm.domain.models import CallRow, LedgerEntry
from agentfirm.errors import BudgetExceeded
from agentfirm.money import nano_to_usd
from agentfirm.store.base import BooksInline, Store


class BudgetGuard:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._inline = _books_inline(store)

    # The *_now methods book at once when the store can (``BooksInline``); False: nothing was
    # booked, await the async namesake.
    def reserve_now(
        self, task_id: str, call_id: str, amount_nano: int, for_call: CallRow | None = None
    ) -> bool:
        return self._inline is not None and self._inline.reserve_now(
            task_id, call_id, amount_nano, for_call=for_call
        )

    def mark_sent_now(self, call_id: str, for_call: CallRow) -> bool:
        return (
            self._inline is not None and self._inline.mark_sent_now(call_id, for_call) is not None
        )

    def settle_now(self, call_id: str, entry: LedgerEntry) -> bool:
        return self._inline is not None and self._inline.settle_now(call_id, entry)

    def release_now(self, entry: LedgerEntry) -> bool:
        return self._inline is not None and self._inline.record_call_now(entry)

    async def reserve(
        self, task_id: str, call_id: str, amount_nano: int, for_call: CallRow | None = None
    ) -> None:
        """Hold ``amount_nano`` for ``call_id`` (with ``for_call``, its ledger row: taken as
        sent at once, see ``mark_sent``). Raises ``BudgetExceeded`` when it does not fit;
        nothing is held then."""
        if await self._store.reserve(task_id, call_id, amount_nano, for_call=for_call):
            return
        budget = await self._store.get_budget(task_id)
        raise BudgetExceeded(
            task_id=task_id,
            needed_usd=nano_to_usd(amount_nano),
            # Money held by calls in flight is as good as spent for whether this one fits.
            spent_usd=nano_to_usd(budget.spent_nano + budget.reserved_nano),
            ceiling_usd=nano_to_usd(budget.ceiling_nano),
        )

    async def mark_sent(self, call_id: str, for_call: CallRow) -> None:
        """The request is about to leave: should this process die from now on, the call is
        booked at its reservation with the row ``for_call`` (until now it was dropped at $0)."""
        await self._store.mark_sent(call_id, for_call)

    async def settle(self, call_id: str, entry: LedgerEntry) -> None:
        """Replace ``call_id``'s reservation by ``entry.cost_nano`` and write its ledger row."""
        await self._store.settle(call_id, entry)

    async def release(self, entry: LedgerEntry) -> None:
        """Drop ``entry.call_id``'s reservation (if any) and write its ledger row (a failed or
        refused call, costing nothing)."""
        await self._store.record_call(entry)


def _books_inline(store: Store) -> BooksInline | None:
    """``store`` when its class books inline. Asked of the class, not the instance: a wrapper
    forwarding unknown attributes to a SQLite store (to delay or fail its bookings) would
    otherwise pass for one, and its own ``reserve``/``settle`` would never be called."""
    names = ("reserve_now", "mark_sent_now", "settle_now", "record_call_now")
    return cast(BooksInline, store) if all(hasattr(type(store), n) for n in names) else None
