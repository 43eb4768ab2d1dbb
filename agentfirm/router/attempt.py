"""One ledgered attempt: reserve the worst case, call the provider under a deadline, price the
actual usage, settle (or release) and tell the health tracker. Budget bookkeeping finishes even
when the caller is cancelled half-way, so no reservation is left behind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from agentfirm.domain import LedgerEntry
from agentfirm.errors import BudgetExceeded
from agentfirm.ids import new_id
from agentfirm.router.base import ChainEntry, Provider, ProviderRequest, ProviderResponse
from agentfirm.router.budget import BudgetGuard
from agentfirm.router.errors import RetryableProviderError
from agentfirm.router.health import Health
from agentfirm.router.pricing import Pricer
from agentfirm.router.tokens import estimate_messages

log = structlog.get_logger(__name__)

_T = TypeVar("_T")

# The router's own deadline is a backstop for providers that ignore their timeout: it trails the
# provider's by as much again (at most this long), so an SDK's own timeout error normally wins.
_DEADLINE_GRACE_MAX_S = 1.0


@dataclass(frozen=True)
class Served:
    """One successful, ledgered attempt."""

    call_id: str
    entry: ChainEntry
    response: ProviderResponse
    cost_nano: int
    latency_ms: int
    simulated: bool


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
    ) -> None:
        self._providers = providers
        self._pricer = pricer
        self._budget = budget
        self._health = health
        self._redact = redact

    async def run(
        self, entry: ChainEntry, request: ProviderRequest, task_id: str, module_id: str | None
    ) -> Served:
        """One attempt on ``entry``: a ledger row whatever happens. Raises what the provider
        raised (a timeout as ``RetryableProviderError``), or ``BudgetExceeded`` when the worst
        case does not fit (nothing is sent then)."""
        call_id = new_id("call")
        provider = self._providers[entry.provider]
        row: dict[str, Any] = {
            "call_id": call_id,
            "task_id": task_id,
            "module_id": module_id,
            "tier": request.tier,
            "provider": entry.provider,
            "model": entry.model,
            "simulated": provider.simulated,
        }
        with structlog.contextvars.bound_contextvars(
            call_id=call_id, task_id=task_id, module_id=module_id
        ):
            input_tokens = estimate_messages(request.messages)
            worst = self._pricer.worst_case_nano(
                entry,
                input_tokens,
                request.max_tokens,
                cache_writes=bool(getattr(provider, "writes_cache", False)),
                # Searches are billed per search, on top of tokens: reserve the most it may run.
                web_searches=getattr(provider, "max_web_searches", 0) if request.web_search else 0,
            )
            try:
                if not self._budget.reserve_now(task_id, call_id, worst):
                    await finish(self._budget.reserve(task_id, call_id, worst))
            except BudgetExceeded:
                self._health.release(entry.provider)
                await self._release(LedgerEntry(**row, outcome="budget_refused"))
                log.warning("router.budget_refused", provider=entry.provider, worst_nano=worst)
                raise
            except asyncio.CancelledError:
                # The reservation may have been made: the release below drops it if so.
                self._health.release(entry.provider)
                await self._release(
                    LedgerEntry(**row, outcome="error", error="CancelledError: cancelled")
                )
                raise
            started = time.monotonic()
            deadline = request.timeout_s + min(request.timeout_s, _DEADLINE_GRACE_MAX_S)
            try:
                async with asyncio.timeout(deadline):
                    response = await provider.complete(request)
            except BaseException as exc:
                latency_ms = int((time.monotonic() - started) * 1000)
                err: BaseException = exc
                if isinstance(exc, TimeoutError):
                    err = RetryableProviderError(
                        f"{entry.label} timed out after {request.timeout_s:g}s"
                    )
                if isinstance(err, RetryableProviderError):
                    self._health.record_failure(entry.provider, latency_ms)
                else:
                    self._health.release(entry.provider)
                message = self._redact(f"{type(err).__name__}: {err}")
                await self._release(
                    LedgerEntry(**row, latency_ms=latency_ms, outcome="error", error=message)
                )
                log.warning(
                    "router.call_failed", provider=entry.provider, model=entry.model, error=message
                )
                if err is not exc:
                    raise err from exc
                raise
            latency_ms = int((time.monotonic() - started) * 1000)
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
            # No log line for a success: its ledger row is the record (rendering one took about
            # 0.2 ms a call, even a filtered debug line some 30 us, a large share of what the
            # router adds). Failures, refusals and clamps log at warning.
            return Served(call_id, entry, response, cost, latency_ms, provider.simulated)

    async def _release(self, entry: LedgerEntry) -> None:
        if not self._budget.release_now(entry):
            await finish(self._budget.release(entry))
