"""The Model Router: every LLM call goes through ``Router.call``.

Per attempt it reserves the worst case against the task's budget, redacts the outgoing messages,
calls the provider under a timeout, prices the actual usage and writes one ledger row. Across
attempts it retries and falls back along the tier's chain, and repairs invalid structured output
once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from agentfirm.domain import LedgerEntry, Tier
from agentfirm.errors import BudgetExceeded, ConfigError
from agentfirm.ids import new_id
from agentfirm.router.base import (
    CallResult,
    ChainEntry,
    Message,
    Provider,
    ProviderRequest,
    ProviderResponse,
    Usage,
)
from agentfirm.router.budget import BudgetGuard
from agentfirm.router.errors import (
    ProviderAuthError,
    ProviderError,
    RetryableProviderError,
    SchemaError,
)
from agentfirm.router.pricing import Pricer
from agentfirm.router.schema_output import parse_and_validate
from agentfirm.router.tokens import estimate_messages
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]

_RETRY_BASE_S = 1.0
_RETRY_JITTER_S = 0.5
_RETRY_CAP_S = 20.0
_NO_PROVIDER_HINT = (
    "set a provider key (agentfirm secrets set ANTHROPIC_API_KEY), configure tiers, "
    "or run with --offline / AGENTFIRM_OFFLINE=1"
)


@dataclass(frozen=True)
class _Served:
    """One successful, ledgered attempt."""

    call_id: str
    entry: ChainEntry
    response: ProviderResponse
    cost_nano: int
    latency_ms: int
    simulated: bool


def _repair_prompt(error: SchemaError) -> str:
    return (
        f"Your previous reply was not valid: {error.message}. Reply again with only the corrected "
        "JSON object, matching the schema exactly."
    )


class Router:
    """Routes calls by tier along fallback chains, with budget, ledger, redaction and repair.

    Raises ``ConfigError`` at construction when a chain names a provider this build has no
    implementation for."""

    def __init__(
        self,
        *,
        chains: Mapping[Tier, Sequence[ChainEntry]],
        providers: Mapping[str, Provider],
        pricer: Pricer,
        store: Store,
        redact: Callable[[str], str] = lambda s: s,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        missing = [
            f"tiers.{tier}: {entry.label} — provider {entry.provider!r} is not available in this "
            "build; run with --offline / AGENTFIRM_OFFLINE=1 or configure tiers with "
            + ", ".join(sorted(providers))
            for tier, chain in chains.items()
            for entry in chain
            if entry.provider not in providers
        ]
        if missing:
            raise ConfigError(missing)
        self._chains = {tier: tuple(chain) for tier, chain in chains.items()}
        self._providers = dict(providers)
        self._pricer = pricer
        self._budget = BudgetGuard(store)
        self._redact = redact
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._timeout_s = timeout_s
        # Providers whose key was refused: skipped for the rest of this router's life.
        self._refused: set[str] = set()

    # ------------------------------------------------------------------ pricing for planners
    def entry_for(self, tier: Tier) -> ChainEntry:
        """The entry a call on ``tier`` would try first. Raises ``ConfigError`` when none is
        usable."""
        for entry in self._chains.get(tier, ()):
            if entry.provider not in self._refused:
                return entry
        raise ConfigError([f"tiers.{tier}: no provider can serve this tier — {_NO_PROVIDER_HINT}"])

    def estimate_nano(self, tier: Tier, input_tokens: int, output_tokens: int) -> int:
        """List price of ``input_tokens`` in and ``output_tokens`` out on ``entry_for(tier)``."""
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        return self._pricer.price_nano(self.entry_for(tier), usage)

    # ------------------------------------------------------------------ calls
    async def call(
        self,
        *,
        tier: Tier,
        messages: Sequence[Message],
        task_id: str,
        module_id: str | None = None,
        output_schema: dict[str, Any] | None = None,
        max_tokens: int = 2048,
    ) -> CallResult:
        """Run one logical call on ``tier``; every attempt is a ledger row.

        Raises ``BudgetExceeded`` when an attempt's worst case does not fit the task's budget
        (nothing is sent), ``FatalProviderError`` when a provider refuses the request,
        ``ProviderError`` when every chain entry failed or structured output stayed invalid after
        one repair, ``ConfigError`` when no provider can serve the tier. With ``output_schema``
        the result's ``data`` is the validated object; ``cost_nano``, ``usage`` and
        ``latency_ms`` add up every successful attempt (the repair included)."""
        attempts: list[str] = []
        served = [
            await self._call_chain(
                tier, messages, task_id, module_id, output_schema, max_tokens, attempts
            )
        ]
        data: dict[str, Any] | None = None
        if output_schema is not None:
            try:
                data = parse_and_validate(served[0].response.text, output_schema)
            except SchemaError as first:
                repair = [
                    *messages,
                    Message("assistant", served[0].response.text),
                    Message("user", _repair_prompt(first)),
                ]
                served.append(
                    await self._call_chain(
                        tier, repair, task_id, module_id, output_schema, max_tokens, attempts
                    )
                )
                try:
                    data = parse_and_validate(served[1].response.text, output_schema)
                except SchemaError as second:
                    raise ProviderError(
                        f"{served[1].entry.label} returned output that does not match the "
                        f"schema, even after one repair: {second.message}",
                        hint="try another model for this tier, or simplify the output schema",
                    ) from second
        last = served[-1]
        return CallResult(
            call_id=last.call_id,
            tier=tier,
            provider=last.entry.provider,
            model=last.entry.model,
            text=last.response.text,
            data=data,
            usage=Usage(
                input_tokens=sum(s.response.usage.input_tokens for s in served),
                cached_input_tokens=sum(s.response.usage.cached_input_tokens for s in served),
                output_tokens=sum(s.response.usage.output_tokens for s in served),
            ),
            cost_nano=sum(s.cost_nano for s in served),
            latency_ms=sum(s.latency_ms for s in served),
            simulated=any(s.simulated for s in served),
            attempts=attempts,
        )

    async def _call_chain(
        self,
        tier: Tier,
        messages: Sequence[Message],
        task_id: str,
        module_id: str | None,
        output_schema: dict[str, Any] | None,
        max_tokens: int,
        attempts: list[str],
    ) -> _Served:
        chain = self._chains.get(tier, ())
        if not chain:
            self.entry_for(tier)  # raises the ConfigError that says how to fix it
        failures: list[str] = []
        outgoing = tuple(Message(m.role, self._redact(m.content)) for m in messages)
        for entry in chain:
            if entry.provider in self._refused:
                failures.append(f"{entry.label}: skipped, its key was refused earlier")
                continue
            request = ProviderRequest(
                model=entry.model,
                messages=outgoing,
                max_tokens=max_tokens,
                tier=tier,
                output_schema=output_schema,
                timeout_s=self._timeout_s,
            )
            for retry in (False, True):
                attempts.append(entry.label)
                try:
                    return await self._attempt(entry, request, task_id, module_id)
                except RetryableProviderError as err:
                    failures.append(f"{entry.label}: {self._redact(str(err))}")
                    if retry:
                        break
                    await self._sleep(self._retry_delay(err))
                except ProviderAuthError as err:
                    failures.append(f"{entry.label}: {self._redact(str(err))}")
                    self._refused.add(entry.provider)
                    break
        raise ProviderError(
            f"every provider for tier {tier} failed: " + "; ".join(failures),
            hint="check `agentfirm providers`, retry later, or add another provider to the chain",
        )

    def _retry_delay(self, err: RetryableProviderError) -> float:
        base = max(err.retry_after or 0.0, _RETRY_BASE_S)
        return min(base + self._rng.uniform(0, _RETRY_JITTER_S), _RETRY_CAP_S)

    async def _attempt(
        self, entry: ChainEntry, request: ProviderRequest, task_id: str, module_id: str | None
    ) -> _Served:
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
            worst = self._pricer.worst_case_nano(entry, input_tokens, request.max_tokens)
            try:
                await self._budget.reserve(task_id, call_id, worst)
            except BudgetExceeded:
                await self._budget.release(LedgerEntry(**row, outcome="budget_refused"))
                log.warning("router.budget_refused", provider=entry.provider, worst_nano=worst)
                raise
            started = time.monotonic()
            try:
                async with asyncio.timeout(request.timeout_s):
                    response = await provider.complete(request)
            except BaseException as exc:
                latency_ms = int((time.monotonic() - started) * 1000)
                err: BaseException = exc
                if isinstance(exc, TimeoutError):
                    err = RetryableProviderError(
                        f"{entry.label} timed out after {request.timeout_s:g}s"
                    )
                message = self._redact(f"{type(err).__name__}: {err}")
                await self._budget.release(
                    LedgerEntry(**row, latency_ms=latency_ms, outcome="error", error=message)
                )
                log.warning(
                    "router.call_failed", provider=entry.provider, model=entry.model, error=message
                )
                if err is not exc:
                    raise err from exc
                raise
            latency_ms = int((time.monotonic() - started) * 1000)
            cost = self._pricer.price_nano(entry, response.usage)
            await self._budget.settle(
                call_id,
                LedgerEntry(
                    **row,
                    input_tokens=response.usage.input_tokens,
                    cached_input_tokens=response.usage.cached_input_tokens,
                    output_tokens=response.usage.output_tokens,
                    cost_nano=cost,
                    latency_ms=latency_ms,
                ),
            )
            log.info(
                "router.call",
                provider=entry.provider,
                model=entry.model,
                tier=request.tier,
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
                cost_nano=cost,
                latency_ms=latency_ms,
                simulated=provider.simulated,
            )
            return _Served(call_id, entry, response, cost, latency_ms, provider.simulated)
