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
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import structlog

from agentfirm.domain.calls import InFlight
from agentfirm.domain.models import LedgerEntry, Tier, utcnow
from agentfirm.domain.tools import ToolSpec
from agentfirm.errors import ConfigError
from agentfirm.router.attempt import CANCEL_GRACE_S, Attempts, Served, summed_usage
from agentfirm.router.base import (
    CallResult,
    ChainEntry,
    Message,
    Notify,
    Provider,
    ProviderRequest,
    Sent,
    SentCall,
    Usage,
    notify_nobody,
)
from agentfirm.router.budget import BudgetGuard
from agentfirm.router.errors import (
    ProviderAuthError,
    ProviderError,
    RetryableProviderError,
    SchemaError,
)
from agentfirm.router.health import Health
from agentfirm.router.outgoing import redacted
from agentfirm.router.pricing import Pricer
from agentfirm.router.reconcile import (
    Reconciled,
    Reconciler,
    record_deadline,
)
from agentfirm.router.refused_keys import RefusedKeys
from agentfirm.router.schema_output import Validators, parse_and_validate, repair_prompt
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
class _Call:
    """What every ask of one ``Router.call`` shares (the first, the repair): where its rows go,
    what it must answer, and the attempts made so far (``CallResult.attempts``)."""

    tier: Tier
    task_id: str
    module_id: str | None
    output_schema: dict[str, Any] | None
    schema_size: int | None
    max_tokens: int
    attempts: list[str]


class Router:
    """Routes calls by tier along fallback chains, with budget, ledger, redaction and repair.

    Raises ``ConfigError`` at construction when a chain names a provider this build has no
    implementation for. ``cancel_grace_s``: how long a sent request whose caller was cancelled
    may still take to answer, so that what it cost is booked as reported (``attempt.answer``).
    ``clock`` and ``wait``: the wall clock and the sleep a recovery waits on for a provider's
    record (``Reconciler.recovered``); ``sleep`` is the retries' backoff."""

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
        notify: Notify = notify_nobody,
        cancel_grace_s: float = CANCEL_GRACE_S,
        in_flight: InFlight | None = None,
        clock: Callable[[], datetime] = utcnow,
        wait: Sleep = asyncio.sleep,
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
        self._in_flight = in_flight = in_flight or InFlight()
        self._attempts = Attempts(
            providers=self._providers,
            pricer=pricer,
            budget=BudgetGuard(store),
            health=self._health,
            redact=redact,
            notify=notify,
            cancel_grace_s=cancel_grace_s,
            in_flight=in_flight,
        )
        self._reconciler = Reconciler(
            store=store,
            providers=self._providers,
            price=self._price_row,
            deadline=record_deadline(timeout_s),
            notify=notify,
            clock=clock,
            sleep=wait,
        )
        self._grace_s = cancel_grace_s
        self._validators = Validators()
        self._notify = notify
        self._refused = RefusedKeys()

    @property
    def in_flight(self) -> InFlight:
        """What this router's process has under way (the tools its loops call are kept here
        too, so that a stop deals with them as with requests)."""
        return self._in_flight

    @property
    def cancel_grace_s(self) -> float:
        """How long work in flight whose caller was cancelled may still take to end."""
        return self._grace_s

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

    async def reconcile(self, task_id: str, *, last: bool = False) -> Reconciled:
        """Book the task's "≤" rows (calls abandoned after they were sent) again at what their
        providers recorded, where a provider keeps such a record (``reconcile``). ``last``:
        the task's last chance (it has ended): a record still due within ``cancel_grace_s``
        is waited for, as an answer would be."""
        wait_s = self._grace_s if last else 0.0
        return await self._reconciler.reconcile(task_id, wait_s=wait_s)

    def _price_row(self, row: LedgerEntry, usage: Usage) -> int:
        """``usage`` priced as the chain entry that served ``row`` prices an answer."""
        entry = next(
            (
                e
                for chain in self._chains.values()
                for e in chain
                if (e.provider, e.model) == (row.provider, row.model)
            ),
            ChainEntry(row.provider, row.model),
        )
        return self._pricer.price_nano(entry, usage)

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

    def context_window(self, tier: Tier) -> int | None:
        """The input-token window of the model ``entry_for(tier)`` names, from genai-prices'
        model metadata; None when it does not say or no provider can serve the tier."""
        try:
            return self._pricer.context_window(self.entry_for(tier))
        except ConfigError:
            return None

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
        tools: Sequence[ToolSpec] = (),
        sent: Sent | None = None,
        recover: SentCall | None = None,
    ) -> CallResult:
        """Run one logical call on ``tier``; every attempt is a ledger row.

        With ``tools`` the model may ask for tools instead of answering: the result's
        ``tool_calls`` says which (``data`` is None then, and no schema check or repair runs);
        the caller runs them and calls again with the results. The router never runs a tool.

        Raises ``BudgetExceeded`` when an attempt's worst case does not fit the task's budget
        (nothing is sent), ``FatalProviderError`` when a provider refuses the request,
        ``ProviderError`` when every chain entry failed or structured output stayed invalid after
        one repair, ``ConfigError`` when no provider can serve the tier. With ``output_schema``
        the result's ``data`` is the validated object; ``cost_nano``, ``usage`` and
        ``latency_ms`` add up every successful attempt (the repair included).

        ``sent`` hears of each attempt before its request leaves (``SentCall.repair``: of the
        repair). ``recover``: such an attempt of the first ask, of this same call, made by a
        process that died before it read the answer (``SentCall.repaired``: and the repair it
        sent after it, if any). Where its provider kept that answer
        (``reconcile.ResponseLookup``), it is taken as this call's first answer (read, checked
        and repaired as a live one; its ledger row booked at its usage, once) and nothing is
        asked; while it may still come (the request left and its deadline has not passed) it is
        waited for; otherwise the call is asked again. A repair cut off after it is taken from
        the record the same way."""
        attempts: list[str] = []
        offered = tuple(tools)
        # The schema is serialised once a call: its key finds both its size (for reservations)
        # and its validators.
        key = size = None
        if output_schema is not None:
            key = self._validators.key(output_schema)
            size = self._validators.json_size(output_schema, key)
        call = _Call(tier, task_id, module_id, output_schema, size, max_tokens, attempts)
        answered = await self._recovered(call, recover, messages, offered)
        if answered is None:
            answered = await self._call_chain(call, messages, offered, sent)
        served = [answered]
        data: dict[str, Any] | None = None
        if output_schema is not None and not served[0].response.tool_calls:
            try:
                data = parse_and_validate(
                    served[0].response.text, output_schema, self._validators, key=key
                )
            except SchemaError as first:
                repair = [
                    *messages,
                    Message("assistant", served[0].response.text),
                    Message("user", repair_prompt(first)),
                ]
                # The repair offers no tools: it asks for the answer, not for more work. One a
                # crash cut off is taken from the record too, when what it repairs was.
                cut_off = (
                    recover.repaired if recover and recover.call_id == answered.call_id else None
                )
                repairing = None if sent is None else partial(_repair_sent, sent)
                again = await self._recovered(call, cut_off, repair, ())
                served.append(again or await self._call_chain(call, repair, (), repairing))
                try:
                    data = parse_and_validate(
                        served[1].response.text, output_schema, self._validators, key=key
                    )
                except SchemaError as second:
                    raise ProviderError(
                        f"{served[1].entry.label} returned output that does not match the "
                        f"schema, even after one repair: {second.message}",
                        hint="try another model for this tier, or simplify the output schema",
                    ) from second
        last = served[-1]
        # One attempt (the usual call): its usage as is; frozen, so it can be shared.
        usage = last.response.usage if len(served) == 1 else summed_usage(served)
        return CallResult(
            call_id=last.call_id,
            tier=tier,
            provider=last.entry.provider,
            model=last.entry.model,
            text=last.response.text,
            data=data,
            usage=usage,
            cost_nano=sum(s.cost_nano for s in served),
            latency_ms=sum(s.latency_ms for s in served),
            simulated=any(s.simulated for s in served),
            attempts=attempts,
            tool_calls=last.response.tool_calls,
            sources=last.response.sources,
        )

    async def _call_chain(
        self,
        call: _Call,
        messages: Sequence[Message],
        tools: tuple[ToolSpec, ...],
        sent: Sent | None = None,
    ) -> Served:
        tier, task_id, module_id = call.tier, call.task_id, call.module_id
        chain = self._chains.get(tier, ())
        if not chain:
            self.entry_for(tier)  # raises the ConfigError that says how to fix it
        failures: list[str] = []
        # Providers whose key was refused on this call: told once the chain is walked.
        refused: list[str] = []
        served: Served | None = None
        try:
            outgoing = redacted(messages, self._redact)
            open_circuits: list[ChainEntry] = []
            tried = False
            for entry in chain:
                if entry.provider in self._refused:
                    failures.append(f"{entry.label}: skipped, its key was refused earlier")
                    refused.append(entry.provider)
                    continue
                if not self._health.allow(entry.provider):
                    failures.append(f"{entry.label}: skipped, failing lately (circuit open)")
                    open_circuits.append(entry)
                    continue
                tried = True
                request = self._request(entry, call, outgoing, tools)
                served = await self._try_entry(entry, request, call, failures, sent=sent)
                if entry.provider in self._refused:
                    refused.append(entry.provider)
                if served is not None:
                    return served
            if not tried and open_circuits:
                # Every usable entry is open: try the one that has rested longest rather than
                # fail without trying.
                entry = min(open_circuits, key=lambda e: self._health.opened_at(e.provider) or 0)
                self._health.allow(entry.provider, force=True)
                request = self._request(entry, call, outgoing, tools)
                served = await self._try_entry(
                    entry, request, call, failures, force=True, sent=sent
                )
                if served is not None:
                    return served
            raise ProviderError(
                f"every provider for tier {tier} failed: " + "; ".join(failures),
                hint="check `agentfirm providers`, retry later, or add another provider to the "
                "chain",
            )
        finally:
            # Said once per task and provider, whether another provider took over or not.
            if refused:
                took_over = served.entry.label if served is not None else None
                await self._refused.tell(self._notify, task_id, module_id, refused, took_over)

    async def _recovered(
        self,
        call: _Call,
        recover: SentCall | None,
        messages: Sequence[Message],
        tools: tuple[ToolSpec, ...],
    ) -> Served | None:
        """The answer ``recover``'s provider kept for it (asked with ``messages``), its row
        booked at its usage (unless a reconciliation booked it first); None when there is none
        to be had."""
        if recover is None:
            return None
        entry = ChainEntry(recover.provider, recover.model)
        outgoing = redacted(messages, self._redact)
        request = self._request(entry, call, outgoing, tools)
        found = await self._reconciler.recovered(
            recover, request, task_id=call.task_id, module_id=call.module_id
        )
        if found is None:
            return None
        response, cost = found
        call.attempts.append(entry.label)
        simulated = self._providers[entry.provider].simulated
        return Served(recover.call_id, entry, response, cost, 0, simulated)

    def _request(
        self,
        entry: ChainEntry,
        call: _Call,
        messages: tuple[Message, ...],
        tools: tuple[ToolSpec, ...],
    ) -> ProviderRequest:
        return ProviderRequest(
            model=entry.model,
            messages=messages,
            max_tokens=call.max_tokens,
            tier=call.tier,
            output_schema=call.output_schema,
            timeout_s=self._timeout_s,
            tools=tools,
        )

    async def _try_entry(
        self,
        entry: ChainEntry,
        request: ProviderRequest,
        call: _Call,
        failures: list[str],
        *,
        force: bool = False,
        sent: Sent | None = None,
    ) -> Served | None:
        """Up to two attempts on ``entry`` (one jittered retry honouring retry-after); None when
        both failed transiently or the provider refused its key. The first attempt's health
        check is the caller's; the retry is skipped when the first failure opened the circuit."""
        for retry in (False, True):
            call.attempts.append(entry.label)
            try:
                return await self._attempts.run(
                    entry,
                    request,
                    call.task_id,
                    call.module_id,
                    schema_size=call.schema_size,
                    on_sent=sent,
                )
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
                self._refused.refuse(entry.provider, err.key_env)
                return None
        return None

    def _retry_delay(self, err: RetryableProviderError) -> float:
        base = max(err.retry_after or 0.0, _RETRY_BASE_S)
        return min(base + self._rng.uniform(0, _RETRY_JITTER_S), _RETRY_CAP_S)


async def _repair_sent(sent: Sent, attempt: SentCall) -> object:
    """Tell ``sent`` of an attempt of a call's repair ask, marked so."""
    return await sent(dataclasses.replace(attempt, repair=True))
