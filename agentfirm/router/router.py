"""The Model Router: every LLM call goes through ``Router.call``.

It redacts the outgoing messages, walks the tier's chain — skipping providers whose key was
refused or whose circuit is open, retrying a transient failure once (jittered, honouring
retry-after) before falling back — and repairs invalid structured output once. Each attempt
(``attempt.Attempts``) reserves its worst case against the budget and writes one ledger row.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from agentfirm.domain import Tier
from agentfirm.errors import ConfigError
from agentfirm.router.attempt import Attempts, Served
from agentfirm.router.base import (
    CallResult,
    ChainEntry,
    Message,
    Provider,
    ProviderRequest,
    Usage,
)
from agentfirm.router.budget import BudgetGuard
from agentfirm.router.errors import (
    ProviderAuthError,
    ProviderError,
    RetryableProviderError,
    SchemaError,
)
from agentfirm.router.health import Health
from agentfirm.router.pricing import Pricer
from agentfirm.router.schema_output import parse_and_validate
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
        health: Health | None = None,
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
        self._redact = redact
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._timeout_s = timeout_s
        self._health = health or Health()
        self._attempts = Attempts(
            providers=self._providers,
            pricer=pricer,
            budget=BudgetGuard(store),
            health=self._health,
            redact=redact,
        )
        # Providers whose key was refused: skipped for the rest of this router's life.
        self._refused: set[str] = set()

    # ------------------------------------------------------------------ health and lifecycle
    def health_snapshot(self) -> list[dict[str, Any]]:
        """One row per provider, by name, for ``agentfirm providers [--json]``: ``provider``,
        ``state`` (``closed``/``open``/``half_open``), ``error_rate``, ``p50_latency_ms`` (None
        before any success), ``calls`` and ``failures`` over the health window, and
        ``key_refused`` (its key was rejected: skipped until restart)."""
        rows = self._health.snapshot(sorted(self._providers))
        for row in rows:
            row["key_refused"] = row["provider"] in self._refused
        return rows

    async def aclose(self) -> None:
        """Close the providers' HTTP clients. Call once, when the router is no longer used."""
        for provider in self._providers.values():
            closer = getattr(provider, "aclose", None)
            if closer is not None:
                await closer()

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
                cache_write_tokens=sum(s.response.usage.cache_write_tokens for s in served),
                web_searches=sum(s.response.usage.web_searches for s in served),
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
    ) -> Served:
        chain = self._chains.get(tier, ())
        if not chain:
            self.entry_for(tier)  # raises the ConfigError that says how to fix it
        failures: list[str] = []
        outgoing = tuple(dataclasses.replace(m, content=self._redact(m.content)) for m in messages)
        open_circuits: list[ChainEntry] = []
        tried = False
        for entry in chain:
            if entry.provider in self._refused:
                failures.append(f"{entry.label}: skipped, its key was refused earlier")
                continue
            if not self._health.allow(entry.provider):
                failures.append(f"{entry.label}: skipped, failing lately (circuit open)")
                open_circuits.append(entry)
                continue
            tried = True
            request = self._request(entry, tier, outgoing, output_schema, max_tokens)
            served = await self._try_entry(entry, request, task_id, module_id, attempts, failures)
            if served is not None:
                return served
        if not tried and open_circuits:
            # Every usable entry is open: try the one that has rested longest rather than fail
            # without trying.
            entry = min(open_circuits, key=lambda e: self._health.opened_at(e.provider) or 0.0)
            self._health.allow(entry.provider, force=True)
            request = self._request(entry, tier, outgoing, output_schema, max_tokens)
            served = await self._try_entry(
                entry, request, task_id, module_id, attempts, failures, force=True
            )
            if served is not None:
                return served
        raise ProviderError(
            f"every provider for tier {tier} failed: " + "; ".join(failures),
            hint="check `agentfirm providers`, retry later, or add another provider to the chain",
        )

    def _request(
        self,
        entry: ChainEntry,
        tier: Tier,
        messages: tuple[Message, ...],
        output_schema: dict[str, Any] | None,
        max_tokens: int,
    ) -> ProviderRequest:
        return ProviderRequest(
            model=entry.model,
            messages=messages,
            max_tokens=max_tokens,
            tier=tier,
            output_schema=output_schema,
            timeout_s=self._timeout_s,
        )

    async def _try_entry(
        self,
        entry: ChainEntry,
        request: ProviderRequest,
        task_id: str,
        module_id: str | None,
        attempts: list[str],
        failures: list[str],
        *,
        force: bool = False,
    ) -> Served | None:
        """Up to two attempts on ``entry`` (one jittered retry honouring retry-after); None when
        both failed transiently or the provider refused its key. The first attempt's health
        check is the caller's; the retry is skipped when the first failure opened the circuit."""
        for retry in (False, True):
            attempts.append(entry.label)
            try:
                return await self._attempts.run(entry, request, task_id, module_id)
            except RetryableProviderError as err:
                failures.append(f"{entry.label}: {self._redact(str(err))}")
                if retry:
                    return None
                if not self._health.allow(entry.provider, force=force):
                    failures.append(f"{entry.label}: not retried, its circuit opened")
                    return None
                await self._sleep(self._retry_delay(err))
            except ProviderAuthError as err:
                failures.append(f"{entry.label}: {self._redact(str(err))}")
                if entry.provider not in self._refused:
                    log.error(
                        "router.key_refused",
                        provider=entry.provider,
                        key=err.key_env,
                        error=self._redact(str(err)),
                    )
                self._refused.add(entry.provider)
                return None
        return None

    def _retry_delay(self, err: RetryableProviderError) -> float:
        base = max(err.retry_after or 0.0, _RETRY_BASE_S)
        return min(base + self._rng.uniform(0, _RETRY_JITTER_S), _RETRY_CAP_S)
