"""One ledgered attempt: reserve the worst case (``tokens.input_bound`` of the request as sent,
``max_tokens`` out, search fees at their cap; a model whose searches have no known price is
not let search), mark it sent, call the provider under a deadline,
book what it reported (an actual above the reservation in full, with a ``budget.overrun`` notice)
or, for a request whose answer never came, the reservation; tell the health tracker.

A caller cancelled once the request is sent (an abort, a sibling's failure, a shutdown) does not
hang up at once: the provider bills the request whether or not its answer is read, and only the
answer says for how much. The attempt waits up to ``cancel_grace_s`` for it, books it, then
raises the cancellation. Budget bookkeeping finishes even when the caller is cancelled half-way,
so no reservation is left behind."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from agentfirm.domain.calls import InFlight
from agentfirm.domain.models import LedgerEntry, ReservedRow
from agentfirm.errors import BudgetExceeded
from agentfirm.router.base import (
    ChainEntry,
    Notify,
    Provider,
    ProviderRequest,
    ProviderResponse,
    Sent,
    SentCall,
    Usage,
    notify_nobody,
    web_search_allowance,
)
from agentfirm.router.budget import BudgetGuard
from agentfirm.router.errors import ProviderTimeout, RetryableProviderError
from agentfirm.router.health import Health
from agentfirm.router.overrun import announce_overrun
from agentfirm.router.pricing import Pricer
from agentfirm.router.reconcile import call_id_for
from agentfirm.router.tokens import input_bound

log = structlog.get_logger(__name__)

_T = TypeVar("_T")

# The router's own deadline is a backstop for providers that ignore their timeout: it trails the
# provider's by as much again (at most this long), so an SDK's own timeout error normally wins.
_DEADLINE_GRACE_MAX_S = 1.0


_BARE_TURNS = 2
"""How many turns of the loop ``answer`` yields before it waits with a timer."""

CANCEL_GRACE_S = 30.0
"""How long a sent request whose caller was cancelled may still take to answer (the
``cancel_grace_s`` setting)."""


@dataclass(frozen=True)
class Served:
    """One successful, ledgered attempt."""

    call_id: str
    entry: ChainEntry
    response: ProviderResponse
    cost_nano: int
    latency_ms: int
    simulated: bool


def summed_usage(served: Sequence[Served]) -> Usage:
    """The usage of every successful attempt of a call, added up."""
    return Usage(
        input_tokens=sum(s.response.usage.input_tokens for s in served),
        cached_input_tokens=sum(s.response.usage.cached_input_tokens for s in served),
        output_tokens=sum(s.response.usage.output_tokens for s in served),
        cache_write_tokens=sum(s.response.usage.cache_write_tokens for s in served),
        web_searches=sum(s.response.usage.web_searches for s in served),
    )


async def finish(work: Awaitable[_T]) -> _T:
    """Await ``work`` to the end even if the caller is cancelled meanwhile, then re-raise the
    cancellation: budget bookkeeping must not be cut in half (a reservation made but never
    released would hold budget until a restart reconciles it)."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            cancelled = True
        except BaseException:
            break  # ``work`` failed: its exception is raised below
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved: the caller's cancellation wins over the outcome
        raise asyncio.CancelledError
    return task.result()


WAITED_OUT = "no answer within its deadline or grace"
"""How ``answer`` cancels a request it stopped waiting for (anything else that cancels it cut it
off before then: a second cancel, a shutdown)."""


def waited_out(sent: asyncio.Future[Any]) -> bool:
    """Whether ``sent``, cancelled, was cancelled by ``answer`` at its deadline or grace. Ask
    once: a cancelled task gives its cancellation's message to the first asker only."""
    try:
        sent.result()
    except asyncio.CancelledError as cancelled:
        return cancelled.args == (WAITED_OUT,)
    except BaseException:
        return False
    return False


async def answer(sent: asyncio.Future[Any], *, deadline_s: float, grace_s: float) -> bool:
    """Wait for ``sent`` (a request on its way) to end, at most ``deadline_s``; True when the
    caller was cancelled meanwhile. A cancellation does not cut the request off: it gets
    ``grace_s`` more (never past the deadline) to answer, as the provider bills it either way.
    Past the deadline or the grace, ``sent`` is cancelled; either way it has ended on return."""
    loop = asyncio.get_running_loop()
    end: float | None = loop.time() + deadline_s
    abandoned = False
    # A provider that answers without waiting on I/O (the offline one, whose zero latency still
    # yields once; a cache hit) is done within a turn or two of the loop: bare yields first
    # spare it the timer and waiter of ``asyncio.wait`` (some 9 us more than a second yield).
    turns = _BARE_TURNS
    while not sent.done():
        remaining = None if end is None else end - loop.time()
        if remaining is not None and remaining <= 0:
            sent.cancel(WAITED_OUT)  # cut off: its end is awaited below
            end = remaining = None
        try:
            if turns:
                turns -= 1
                await asyncio.sleep(0)
            else:
                await asyncio.wait((sent,), timeout=remaining)
        except asyncio.CancelledError:
            if not abandoned:
                abandoned = True
                if end is not None:
                    end = min(end, loop.time() + grace_s)
    return abandoned


class Attempts:
    """Runs single attempts for a ``Router``."""

    def __init__(
        self,
        *,
        providers: Mapping[str, Provider],
        pricer: Pricer,
        budget: BudgetGuard,
        health: Health,
        redact: Callable[[str], str],
        notify: Notify = notify_nobody,
        cancel_grace_s: float = CANCEL_GRACE_S,
        in_flight: InFlight | None = None,
    ) -> None:
        self._providers = providers
        self._in_flight = in_flight or InFlight()
        self._grace_s = cancel_grace_s
        self._notify = notify
        self._pricer = pricer
        self._budget = budget
        self._health = health
        self._redact = redact

    async def run(
        self,
        entry: ChainEntry,
        request: ProviderRequest,
        task_id: str,
        module_id: str | None,
        *,
        schema_size: int | None = None,
        on_sent: Sent | None = None,
    ) -> Served:
        """One attempt on ``entry``: a ledger row whatever happens. Raises what the provider
        raised (a timeout as ``RetryableProviderError``), or ``BudgetExceeded`` when the worst
        case does not fit (nothing is sent then). ``schema_size``: see ``input_bound``.
        ``on_sent`` hears of the attempt before anything is reserved or sent."""
        provider = self._providers[entry.provider]
        call_id = call_id_for(provider, request)
        request = dataclasses.replace(request, call_id=call_id)
        if on_sent is not None:
            # Before the reservation, so that nothing comes between it and the send: should
            # ``on_sent`` fail, nothing was reserved nor sent.
            await on_sent(SentCall(call_id, entry.provider, entry.model))
        row: dict[str, Any] = {
            "call_id": call_id,
            "task_id": task_id,
            "module_id": module_id,
            "tier": request.tier,
            "provider": entry.provider,
            "model": entry.model,
            "simulated": provider.simulated,
        }
        # Bound for the attempt's log lines, and reset by token: ``bound_contextvars`` copies
        # and scans the whole context twice to save and restore what it binds.
        bound = structlog.contextvars.bind_contextvars(
            call_id=call_id, task_id=task_id, module_id=module_id
        )
        try:
            searches = web_search_allowance(provider, entry.model) if request.web_search else 0
            if searches and not self._pricer.prices_searches(entry):
                # A search nobody can price would be booked as free: the call goes without.
                log.warning("router.search_unpriced", provider=entry.provider, model=entry.model)
                request = dataclasses.replace(request, web_search=False)
                searches = 0
            worst = self._pricer.worst_case_nano(
                entry,
                input_bound(request, searches=searches, schema_size=schema_size),
                request.max_tokens,
                cache_writes=bool(getattr(provider, "writes_cache", False)),
                # Searches are billed per search, on top of tokens: reserve the most it may run.
                web_searches=searches,
            )
            # Kept with the reservation, which is held as sent: should this process die from
            # now on, whoever takes the task over books it at ``worst`` (the request may have
            # left).
            dead = ReservedRow(
                module_id, request.tier, entry.provider, entry.model, provider.simulated
            )
            try:
                # One booking either way: the reservation carries its row, held as sent.
                # Nothing comes between an inline one and the send; a cancellation while the
                # slow one is made (Postgres: one round trip) is released below at $0 all the
                # same.
                if not self._budget.reserve_now(task_id, call_id, worst, dead):
                    await finish(self._budget.reserve(task_id, call_id, worst, dead))
            except BudgetExceeded:
                self._health.release(entry.provider)
                await self._release(LedgerEntry(**row, outcome="budget_refused"))
                log.warning("router.budget_refused", provider=entry.provider, worst_nano=worst)
                raise
            except asyncio.CancelledError:
                # Nothing was sent: it costs nothing. The reservation may have been made: the
                # release below drops it if so.
                self._health.release(entry.provider)
                await self._release(
                    LedgerEntry(**row, outcome="cancelled", error="cancelled before it was sent")
                )
                raise
            started = time.monotonic()
            deadline = request.timeout_s + min(request.timeout_s, _DEADLINE_GRACE_MAX_S)
            sent = asyncio.ensure_future(provider.complete(request))
            self._in_flight.sent.add(sent)
            try:
                abandoned = await answer(sent, deadline_s=deadline, grace_s=self._grace_s)
            finally:
                self._in_flight.sent.discard(sent)
            latency_ms = int((time.monotonic() - started) * 1000)
            if sent.cancelled() or sent.exception() is not None:
                exc = None if sent.cancelled() else sent.exception()
                err: BaseException
                waited = exc is None and waited_out(sent)
                if isinstance(exc, TimeoutError) or (waited and not abandoned):
                    err = ProviderTimeout(f"{entry.label} timed out after {request.timeout_s:g}s")
                elif waited:
                    err = asyncio.CancelledError(f"no answer within {self._grace_s:g}s of a cancel")
                elif exc is None:
                    # Cut off by someone else (a second Ctrl-C, a shutdown), maybe before the
                    # caller heard of the cancel on its way down: a stop, never retried.
                    err = asyncio.CancelledError("cut off unanswered by a second cancel")
                    abandoned = True
                else:
                    err = exc
                if isinstance(err, RetryableProviderError):
                    self._health.record_failure(entry.provider, latency_ms)
                else:
                    self._health.release(entry.provider)
                message = self._redact(f"{type(err).__name__}: {err}")
                await self._release(self._failed(row, err, message, worst, latency_ms))
                log.warning(
                    "router.call_failed", provider=entry.provider, model=entry.model, error=message
                )
                if abandoned:
                    raise asyncio.CancelledError
                if err is exc:
                    raise err
                raise err from exc
            response = sent.result()
            self._health.record_success(entry.provider, latency_ms)
            usage = response.usage
            cost = self._pricer.price_nano(entry, usage)
            settled = LedgerEntry(
                **row,
                input_tokens=usage.input_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                output_tokens=usage.output_tokens,
                cost_nano=cost,
                latency_ms=latency_ms,
            )
            if not self._budget.settle_now(call_id, settled):
                await finish(self._budget.settle(call_id, settled))
            if cost > worst:
                await announce_overrun(self._notify, settled, worst)
            if abandoned:
                raise asyncio.CancelledError  # booked: the caller's cancellation goes on
            # No log line for a success: its ledger row is the record (rendering one took about
            # 0.2 ms a call, even a filtered debug line some 30 us, a large share of what the
            # router adds). Failures, refusals and overruns log at warning.
            return Served(call_id, entry, response, cost, latency_ms, provider.simulated)
        finally:
            structlog.contextvars.reset_contextvars(**bound)

    @staticmethod
    def _failed(
        row: dict[str, Any], err: BaseException, message: str, worst: int, latency_ms: int
    ) -> LedgerEntry:
        """The row of an attempt that got no answer. Abandoned after its request left (the
        caller cancelled, or it timed out and the client hung up), the provider bills it all
        the same, for an amount nobody will tell us: it is booked at its reservation, the most
        it can cost. Any other failure was not billed."""
        if isinstance(err, (asyncio.CancelledError, ProviderTimeout)):
            return LedgerEntry(
                **row, latency_ms=latency_ms, outcome="cancelled", cost_nano=worst, error=message
            )
        return LedgerEntry(**row, latency_ms=latency_ms, outcome="error", error=message)

    async def _release(self, entry: LedgerEntry) -> None:
        if not self._budget.release_now(entry):
            await finish(self._budget.release(entry))
