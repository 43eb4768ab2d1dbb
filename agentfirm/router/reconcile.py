"""Making "≤" rows exact: a call abandoned after its request left (its process killed, its grace
exceeded) is booked at its reservation, an upper bound, because the client never heard what it
cost. A provider that keeps its own record of each call (OpenAI's stored Chat Completions, with
the ``openai_store`` setting) can say so later: such a row is booked again at the usage found,
priced like any answered call, or at $0 once the call's deadline has passed with no record of it
(the provider never got it, or got it cut short; a request still generating may appear later,
so until then the row stays "≤").

The router knows no agents and the store no providers: providers answer ``UsageLookup``, the
store books (``Store.rebook``), and this module, between them, decides. Run by the Master
Agent when it takes a task over (``resume``, a daemon start) and when a task's drive ends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import structlog

from agentfirm.domain.models import LedgerEntry, utcnow
from agentfirm.errors import AgentfirmError
from agentfirm.ids import new_id
from agentfirm.router.base import (
    Notify,
    Provider,
    ProviderRequest,
    ProviderResponse,
    SentCall,
    Usage,
    notify_nobody,
)
from agentfirm.router.overrun import announce_overrun
from agentfirm.store.base import BudgetLedger

log = structlog.get_logger(__name__)

KEPT_PREFIX = "callk"
"""The id prefix of a call sent with a lookup key (``UsageLookup.keeps_record``): only such a
call's missing record means it was not billed. A call sent without one (the setting was off
then) is never booked at $0 for want of a record."""


def call_id_for(provider: Provider, request: ProviderRequest) -> str:
    """A new ledger id for an attempt of ``request`` on ``provider``, saying whether the
    provider keeps a record of it under that id."""
    # What ``isinstance(provider, UsageLookup)`` checks, without its cost: a runtime Protocol
    # check took some 17 us on every attempt, a twentieth of what the router may add to a call.
    keeps_record = getattr(provider, "keeps_record", None)
    keeps = (
        keeps_record is not None
        and getattr(provider, "lookup_usage", None) is not None
        and bool(keeps_record(request))
    )
    return new_id(KEPT_PREFIX if keeps else "call")


@runtime_checkable
class UsageLookup(Protocol):
    """A provider that can say what it billed for a call whose answer never came."""

    def keeps_record(self, request: ProviderRequest) -> bool:
        """Whether ``request`` (carrying its ``call_id``) is sent so that ``lookup_usage`` can
        find it later."""

    async def lookup_usage(self, call_ids: Sequence[str]) -> Mapping[str, Usage]:
        """The usage the provider recorded for each of ``call_ids`` it has a record of (the
        others: no record, yet). Raises ``ProviderError`` when it cannot be asked now."""


@runtime_checkable
class ResponseLookup(Protocol):
    """A provider that can give back the whole answer to a call whose client never read it."""

    async def lookup_response(
        self, call_id: str, request: ProviderRequest
    ) -> ProviderResponse | None:
        """The answer the provider recorded for ``call_id`` (sent as ``request``, without its
        id), as ``complete`` would have returned it; None when it has no record of it (yet).
        Raises ``ProviderError`` when it cannot be asked now."""


def kept(call_id: str) -> bool:
    """Whether the call was sent with its lookup key (``call_id_for``)."""
    return call_id.startswith(f"{KEPT_PREFIX}_")


RECORD_MARGIN_S = 30.0
"""At most how long after a call's deadline its provider's record may still be on its way (a
stored completion is listed a moment after it is made)."""


RECORD_POLL_S = 0.25
"""How long a recovery waits before it looks for a call's record again, at first; doubled after
each look, up to ``RECORD_POLL_MAX_S``."""
RECORD_POLL_MAX_S = 4.0


def record_deadline(timeout_s: float) -> timedelta:
    """How long after a "≤" row was booked its call may still show up in its provider's record:
    the call's own deadline (the provider timeout, and the router's backstop after it) and a
    margin as long again, at most ``RECORD_MARGIN_S``."""
    return timedelta(seconds=timeout_s + min(timeout_s, 1.0) + min(timeout_s, RECORD_MARGIN_S))


Price = Callable[[LedgerEntry, Usage], int]
"""The cost of a usage on the row's provider and model, as the router prices an answer."""


@dataclass(frozen=True)
class Reconciled:
    """What a reconciliation did: rows made exact from a record, rows booked at $0 (no record
    past their deadline), rows left "≤" (no record yet, or the provider could not be asked)."""

    found: int = 0
    unbilled: int = 0
    left: int = 0

    def __bool__(self) -> bool:
        """Whether any row was booked again."""
        return bool(self.found or self.unbilled)

    def __add__(self, other: Reconciled) -> Reconciled:
        return Reconciled(self.found + other.found, self.unbilled + other.unbilled, other.left)


class Reconciler:
    """Books a task's "≤" rows again from their providers' records (see the module's doc).
    ``deadline``: how long after its row was booked a call may still show up in its
    provider's record (the provider timeout and a margin)."""

    def __init__(
        self,
        *,
        store: BudgetLedger,
        providers: Mapping[str, Provider],
        price: Price,
        deadline: timedelta,
        notify: Notify = notify_nobody,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sleep = sleep
        self._store = store
        self._providers = providers
        self._price = price
        self._deadline = deadline
        self._notify = notify
        self._clock = clock

    async def reconcile(self, task_id: str, *, wait_s: float = 0.0) -> Reconciled:
        """Book the task's "≤" rows again where their providers' records allow. Never raises
        for a provider that cannot be asked: its rows stay "≤" for a later pass. ``wait_s``:
        rows with no record yet whose deadline is at most this far away are waited for (a
        task's last pass: nothing may look again later) and looked up again then."""
        done, pending = await self._pass(task_id)
        if pending is None:
            return done
        wait = (pending - self._clock()).total_seconds()
        if wait > wait_s:
            return done
        await self._sleep(max(wait, 0.0))
        again, _ = await self._pass(task_id)
        return done + again

    async def _pass(self, task_id: str) -> tuple[Reconciled, datetime | None]:
        """One pass over the task's "≤" rows; and the last deadline of those left for want of
        a record yet (None: none)."""
        pending: datetime | None = None
        rows = await self._store.estimated_calls(task_id)
        by_provider: dict[str, list[LedgerEntry]] = {}
        for row in rows:
            by_provider.setdefault(row.provider, []).append(row)
        found = unbilled = left = 0
        for name, estimated in by_provider.items():
            provider = self._providers.get(name)
            if not isinstance(provider, UsageLookup):
                left += len(estimated)
                continue
            try:
                records = await provider.lookup_usage([r.call_id for r in estimated])
            except AgentfirmError as err:
                log.warning("ledger.lookup_failed", task_id=task_id, provider=name, error=str(err))
                left += len(estimated)
                continue
            for row in estimated:
                usage = records.get(row.call_id)
                if usage is not None:
                    found += await self.book(row, usage)
                elif not kept(row.call_id):
                    left += 1  # sent without its lookup key: no record proves nothing
                elif self._clock() >= row.at + self._deadline:
                    unbilled += await self.book(row, Usage())
                else:
                    left += 1
                    due = row.at + self._deadline
                    pending = due if pending is None else max(pending, due)
        if found or unbilled:
            log.info("ledger.reconciled", task_id=task_id, found=found, unbilled=unbilled)
        return Reconciled(found, unbilled, left), pending

    async def recovered(
        self, recover: SentCall, request: ProviderRequest, *, task_id: str, module_id: str | None
    ) -> tuple[ProviderResponse, int] | None:
        """The answer ``recover``'s provider kept for it (asked as ``request``) and its cost, its
        row booked at its usage unless a reconciliation booked it first; None when there is none
        to be had. A call that may still be generating (its request left: its takeover booked
        it "≤") is waited for, its record looked up again and again, until its deadline
        (``record_deadline`` from when it was sent) has passed: asking again before then may
        pay for the turn twice. One never sent, or whose row is exact, is looked up once."""
        provider = self._providers.get(recover.provider)
        if not isinstance(provider, ResponseLookup) or not kept(recover.call_id):
            return None
        row = LedgerEntry(
            call_id=recover.call_id,
            task_id=task_id,
            module_id=module_id,
            tier=request.tier,
            provider=recover.provider,
            model=recover.model,
            outcome="cancelled",
        )
        due = await self._record_due(recover, task_id)
        pause = RECORD_POLL_S
        while True:
            try:
                response = await provider.lookup_response(recover.call_id, request)
            except AgentfirmError as err:
                # Cannot be asked now: as good as no record yet, until the deadline.
                log.warning("router.recover_failed", provider=recover.provider, error=str(err))
                response = None
            if response is not None:
                await self.book(row, response.usage)
                return response, self._price(row, response.usage)
            left = 0.0 if due is None else (due - self._clock()).total_seconds()
            if left <= 0:
                return None
            await self._sleep(min(pause, left))
            pause = min(pause * 2, RECORD_POLL_MAX_S)

    async def _record_due(self, recover: SentCall, task_id: str) -> datetime | None:
        """Until when ``recover`` may still show up in its provider's record; None when it
        cannot: its row is not "≤" (its request never left — it held no reservation marked
        sent when its task was taken over — or its row is exact already)."""
        rows = await self._store.estimated_calls(task_id)
        row = next((r for r in rows if r.call_id == recover.call_id), None)
        if row is None:
            return None
        # When it was sent, as its caller journaled it; else when its row was booked "≤",
        # later than that (an upper bound on the wait, never too short).
        return (recover.at or row.at) + self._deadline

    async def book(self, row: LedgerEntry, usage: Usage) -> int:
        """Book the "≤" row ``row`` again at ``usage``; 1 when this did, 0 when it was exact
        already (another pass, or the recovery of its answer, booked it first): never twice."""
        cost = self._price(row, usage) if usage != Usage() else 0
        exact = row.model_copy(
            update={
                "input_tokens": usage.input_tokens,
                "cached_input_tokens": usage.cached_input_tokens,
                "output_tokens": usage.output_tokens,
                "cost_nano": cost,
            }
        )
        reserved = await self._store.rebook(exact)
        if reserved is None:
            return 0
        if cost > reserved:
            await announce_overrun(self._notify, exact, reserved)
        return 1
