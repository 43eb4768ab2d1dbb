"""Property: however many calls run at once, whatever they cost, fail or get cancelled, committed
spend never passes the ceiling and no reservation outlives its call — on a real SQLite store."""

from __future__ import annotations

import asyncio
import re
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentfirm.domain.models import LedgerEntry
from agentfirm.errors import BudgetExceeded, ProviderError
from agentfirm.router.base import (
    CallResult,
    ChainEntry,
    Message,
    ProviderRequest,
    ProviderResponse,
    Usage,
)
from agentfirm.router.errors import FatalProviderError, RetryableProviderError
from agentfirm.router.pricing import Pricer
from agentfirm.router.router import Router
from agentfirm.router.tokens import input_bound
from agentfirm.settings import PriceOverride
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.routing import Sleeps, funded_task

ENTRY = ChainEntry("scripted", "metered-model")
# $1 per million tokens in and out: one token costs 1000 nano-dollars.
PRICER = Pricer({ENTRY.model: PriceOverride(input_per_mtok=Decimal(1), output_per_mtok=Decimal(1))})
FAILURES = ("retryable", "timeout", "fatal")
PHASES = ("reserve", "provider", "settle", "record")


@dataclass(frozen=True)
class CallPlan:
    max_tokens: int
    spend: float
    """Fraction of ``max_tokens`` the reply uses."""
    failures: tuple[str, ...]
    """What the first attempts raise, in order (two retryable ones exhaust the chain)."""
    yields: int
    """Event-loop turns the provider takes, so calls interleave."""
    cancel_at: str | None
    """Where the caller cancels the call: while its budget is reserved, while the provider
    works, while the cost is settled, while a failure is recorded — or never."""


call_plans = st.builds(
    CallPlan,
    max_tokens=st.integers(1, 400),
    spend=st.floats(0, 1),
    failures=st.lists(st.sampled_from(FAILURES), max_size=2).map(tuple),
    yields=st.integers(0, 4),
    cancel_at=st.sampled_from([None, None, None, *PHASES]),
)


class Metered:
    """Plays each call's plan and checks, mid-flight, that spent + reserved fits the ceiling."""

    name = "scripted"
    simulated = False

    def __init__(self, store: SQLiteStore, task_id: str, plans: list[CallPlan]) -> None:
        self.store = store
        self.task_id = task_id
        self.plans = plans
        self.attempts = [0] * len(plans)
        self.peaks: list[int] = []
        self.calls: dict[int, asyncio.Task[Any]] = {}

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        match = re.search(r"call (\d+)", request.messages[-1].content)
        assert match is not None
        index = int(match[1])
        plan = self.plans[index]
        attempt = self.attempts[index]
        self.attempts[index] += 1
        budget = await self.store.get_budget(self.task_id)
        self.peaks.append(budget.spent_nano + budget.reserved_nano)
        if plan.cancel_at == "provider":
            self.calls[index].cancel()
        for _ in range(plan.yields):
            await asyncio.sleep(0)
        if attempt < len(plan.failures):
            failure = plan.failures[attempt]
            if failure == "retryable":
                raise RetryableProviderError("503 from the scripted provider", status=503)
            if failure == "timeout":
                raise TimeoutError
            raise FatalProviderError("400 from the scripted provider", status=400)
        usage = Usage(
            input_tokens=input_bound(request),
            output_tokens=int(plan.max_tokens * plan.spend),
        )
        return ProviderResponse("ok", usage, request.model)


def messages_for(index: int) -> list[Message]:
    return [Message("user", f"Do call {index}.")]


def ceiling_for(share: float, plans: list[CallPlan]) -> int:
    """``share`` of what every call's first attempt could cost at worst."""
    worst = sum(
        PRICER.worst_case_nano(
            ENTRY,
            input_bound(ProviderRequest("m", tuple(messages_for(i)), plan.max_tokens, "utility")),
            plan.max_tokens,
        )
        for i, plan in enumerate(plans)
    )
    return int(worst * share)


class CancellingStore:
    """The real store, with the caller cancelled just as the planned bookkeeping step starts —
    the moment a cut-short reservation or settlement would leak budget."""

    def __init__(self, inner: SQLiteStore, provider: Metered) -> None:
        self._inner = inner
        self._provider = provider

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def _cut(self, phase: str) -> None:
        module_id = structlog.contextvars.get_contextvars().get("module_id")
        if module_id is None:
            return
        index = int(module_id)
        if self._provider.plans[index].cancel_at == phase:
            self._provider.calls[index].cancel()
            await asyncio.sleep(0)  # let the cancellation reach the caller first

    async def reserve(self, task_id: str, call_id: str, amount_nano: int, **kw: Any) -> bool:
        await self._cut("reserve")
        return await self._inner.reserve(task_id, call_id, amount_nano, **kw)

    async def settle(self, call_id: str, entry: LedgerEntry) -> None:
        await self._cut("settle")
        await self._inner.settle(call_id, entry)

    async def record_call(self, entry: LedgerEntry) -> None:
        await self._cut("record")
        await self._inner.record_call(entry)


async def run_scenario(directory: Path, ceiling_nano: int, plans: list[CallPlan]) -> None:
    store = SQLiteStore(directory / "agentfirm.sqlite3")
    await store.open()
    try:
        task_id = await funded_task(store, ceiling_nano)
        provider = Metered(store, task_id, plans)
        router = Router(
            chains={"execution": [ENTRY]},
            providers={"scripted": provider},
            pricer=PRICER,
            store=CancellingStore(store, provider),
            sleep=Sleeps(),
        )
        for index, plan in enumerate(plans):
            provider.calls[index] = asyncio.create_task(
                router.call(
                    tier="execution",
                    messages=messages_for(index),
                    task_id=task_id,
                    module_id=str(index),
                    max_tokens=plan.max_tokens,
                )
            )
        outcomes = await asyncio.gather(*provider.calls.values(), return_exceptions=True)
        expected = (CallResult, BudgetExceeded, ProviderError, asyncio.CancelledError)
        assert all(isinstance(outcome, expected) for outcome in outcomes), outcomes

        budget = await store.get_budget(task_id)
        rows = await store.list_ledger(task_id)
        assert budget.reserved_nano == 0
        assert budget.spent_nano <= ceiling_nano
        assert max(provider.peaks, default=0) <= ceiling_nano
        assert budget.spent_nano == sum(row.cost_nano for row in rows)
        # Only an answer, or a request abandoned after it was sent (at its reservation), costs.
        assert all(row.cost_nano == 0 for row in rows if row.outcome not in ("ok", "cancelled"))
    finally:
        await store.close()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    # From a ceiling that refuses almost everything to one that fits every call.
    share=st.floats(0, 1.1),
    plans=st.lists(call_plans, min_size=50, max_size=70),
)
def test_spend_never_passes_the_ceiling_and_no_reservation_leaks(
    share: float, plans: list[CallPlan]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(run_scenario(Path(directory), ceiling_for(share, plans), plans))
