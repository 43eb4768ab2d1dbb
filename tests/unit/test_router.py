"""The Model Router: ledger rows per attempt, budget reservation, fallback, repair, chains."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog

from agentfirm.domain.models import LedgerEntry, Task, Tier
from agentfirm.errors import BudgetExceeded, ConfigError
from agentfirm.ids import new_id
from agentfirm.router import build_router
from agentfirm.router.base import (
    ChainEntry,
    Message,
    ProviderRequest,
    ProviderResponse,
    Usage,
)
from agentfirm.router.chains import DEFAULT_CHAINS, parse_entry, resolve_chains
from agentfirm.router.errors import (
    FatalProviderError,
    ProviderAuthError,
    ProviderError,
    RetryableProviderError,
)
from agentfirm.router.pricing import Pricer
from agentfirm.router.router import Router
from agentfirm.router.tokens import input_bound
from agentfirm.settings import PriceOverride, Settings, load_settings
from agentfirm.store.sqlite import SQLiteStore

ALPHA = ChainEntry("alpha", "model-a")
BETA = ChainEntry("beta", "model-b")
MESSAGES = [Message("system", "You are terse."), Message("user", "Summarise the quarter.")]
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}
# $1 per million tokens in and out: one token costs 1000 nano-dollars.
PRICER = Pricer(
    {
        model: PriceOverride(input_per_mtok=Decimal(1), output_per_mtok=Decimal(1))
        for model in ("model-a", "model-b")
    }
)
Script = list[ProviderResponse | BaseException]


def reply(text: str = "fine", output_tokens: int = 10) -> ProviderResponse:
    return ProviderResponse(text, Usage(input_tokens=20, output_tokens=output_tokens), "m")


class ScriptedProvider:
    """A provider that plays back a script of replies and errors, recording what it was sent."""

    simulated = False

    def __init__(self, name: str, script: Script | None = None) -> None:
        self.name = name
        self.script = list(script or [])
        self.requests: list[ProviderRequest] = []
        self.context: list[dict[str, Any]] = []

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        self.requests.append(request)
        self.context.append(structlog.contextvars.get_contextvars())
        item = self.script.pop(0) if self.script else reply()
        if isinstance(item, BaseException):
            raise item
        return item


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "agentfirm.sqlite3")
    await opened.open()
    yield opened
    await opened.close()


async def funded_task(store: SQLiteStore, ceiling_nano: int = 10**9) -> str:
    task = Task(id=new_id("t"), request="summarise the quarter")
    await store.create_task(task, actor="test")
    await store.set_budget(task.id, ceiling_nano)
    return task.id


def make_router(
    store: SQLiteStore,
    *providers: ScriptedProvider,
    chain: Sequence[ChainEntry] | None = None,
    **options: Any,
) -> Router:
    """A router whose every tier chains the given providers (alpha before beta)."""
    if chain is None:
        chain = [e for e in (ALPHA, BETA) if e.provider in {p.name for p in providers}]
    chains: Mapping[Tier, Sequence[ChainEntry]] = {
        "reasoning": chain,
        "execution": chain,
        "utility": chain,
    }
    return Router(
        chains=chains,
        providers={p.name: p for p in providers},
        pricer=PRICER,
        store=store,
        rng=random.Random(7),
        **options,
    )


async def call(router: Router, task_id: str, **options: Any) -> Any:
    return await router.call(tier="execution", messages=MESSAGES, task_id=task_id, **options)


def offline_settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings({"AGENTFIRM_HOME": str(tmp_path), **env}, cwd=tmp_path)


# --- one call, one row ---------------------------------------------------------------------------


async def test_successful_call_writes_one_ok_row_priced_from_actual_usage(
    store: SQLiteStore,
) -> None:
    task_id = await funded_task(store)
    router = make_router(store, ScriptedProvider("alpha", [reply(output_tokens=30)]))

    result = await call(router, task_id, module_id="intro")

    [row] = await store.list_ledger(task_id)
    assert (row.call_id, row.outcome, row.provider, row.model) == (
        result.call_id,
        "ok",
        "alpha",
        "model-a",
    )
    assert (row.module_id, row.input_tokens, row.output_tokens) == ("intro", 20, 30)
    assert row.cost_nano == result.cost_nano == 50_000
    assert (await store.get_budget(task_id)).spent_nano == 50_000


async def test_reservation_is_settled_so_nothing_stays_reserved(store: SQLiteStore) -> None:
    task_id = await funded_task(store)

    await call(make_router(store, ScriptedProvider("alpha")), task_id)

    assert (await store.get_budget(task_id)).reserved_nano == 0


async def test_bookings_wait_for_another_writer_when_they_cannot_be_made_at_once(
    store: SQLiteStore,
) -> None:
    """Another process holds the write lock while the call starts and while it ends: the
    reservation and the settlement each wait their turn (nothing is booked inline) and land."""
    task_id = await funded_task(store)
    other = sqlite3.connect(store.path, isolation_level=None)
    committed: list[str] = []

    def unlock_soon(label: str) -> None:
        async def later() -> None:
            await asyncio.sleep(0.05)
            other.execute("COMMIT")
            committed.append(label)

        asyncio.get_running_loop().create_task(later())

    class LockingProvider(ScriptedProvider):
        async def complete(self, request: ProviderRequest) -> ProviderResponse:
            assert committed == ["before the call"]  # the reserve waited for the lock
            other.execute("BEGIN IMMEDIATE")
            unlock_soon("after the call")
            return await super().complete(request)

    try:
        other.execute("BEGIN IMMEDIATE")
        unlock_soon("before the call")
        result = await call(make_router(store, LockingProvider("alpha")), task_id)
    finally:
        other.close()

    assert committed == ["before the call", "after the call"]
    [row] = await store.list_ledger(task_id)
    assert (row.call_id, row.cost_nano) == (result.call_id, result.cost_nano)
    budget = await store.get_budget(task_id)
    assert (budget.spent_nano, budget.reserved_nano) == (result.cost_nano, 0)


async def test_a_store_wrapper_forwarding_attributes_has_its_own_bookings_called(
    store: SQLiteStore,
) -> None:
    """A wrapper that forwards unknown attributes to a SQLite store (as fault-injecting test
    stores do) is not taken for one that books inline: its reserve and settle are called."""
    task_id = await funded_task(store)
    seen: list[str] = []

    class Forwarding:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        async def reserve(self, task_id: str, call_id: str, amount_nano: int, **kw: Any) -> bool:
            seen.append("reserve")
            return await store.reserve(task_id, call_id, amount_nano, **kw)

        async def settle(self, call_id: str, entry: LedgerEntry) -> None:
            seen.append("settle")
            await store.settle(call_id, entry)

    router = Router(
        chains={"execution": [ALPHA]},
        providers={"alpha": ScriptedProvider("alpha")},
        pricer=PRICER,
        store=Forwarding(),  # type: ignore[arg-type]
    )
    await call(router, task_id)

    assert seen == ["reserve", "settle"]
    assert len(await store.list_ledger(task_id)) == 1


async def test_provider_sees_the_call_ids_bound_in_the_log_context(store: SQLiteStore) -> None:
    task_id = await funded_task(store)
    alpha = ScriptedProvider("alpha")

    result = await call(make_router(store, alpha), task_id, module_id="intro")

    assert alpha.context[0] == {"call_id": result.call_id, "task_id": task_id, "module_id": "intro"}


async def test_outgoing_messages_are_redacted(store: SQLiteStore) -> None:
    task_id = await funded_task(store)
    alpha = ScriptedProvider("alpha")
    router = make_router(store, alpha, redact=lambda s: s.replace("sk-live-123", "[REDACTED]"))

    await router.call(
        tier="utility",
        messages=[Message("user", "my key is sk-live-123")],
        task_id=task_id,
    )

    assert alpha.requests[0].messages == (Message("user", "my key is [REDACTED]"),)


async def test_a_redacted_message_keeps_its_cache_mark(store: SQLiteStore) -> None:
    task_id = await funded_task(store)
    alpha = ScriptedProvider("alpha")
    router = make_router(store, alpha, redact=lambda s: s.replace("sk-live-123", "[REDACTED]"))
    messages = [Message("system", "key sk-live-123", cache=True), Message("user", "hi", cache=True)]

    await router.call(tier="utility", messages=messages, task_id=task_id)

    assert alpha.requests[0].messages == (
        Message("system", "key [REDACTED]", cache=True),
        Message("user", "hi", cache=True),
    )


async def test_error_rows_are_redacted(store: SQLiteStore) -> None:
    task_id = await funded_task(store)
    alpha = ScriptedProvider("alpha", [FatalProviderError("bad request near sk-live-123")])
    router = make_router(store, alpha, redact=lambda s: s.replace("sk-live-123", "[REDACTED]"))

    with pytest.raises(FatalProviderError):
        await call(router, task_id)

    [row] = await store.list_ledger(task_id)
    assert row.outcome == "error"
    assert row.error == "FatalProviderError: bad request near [REDACTED]"


# --- budget --------------------------------------------------------------------------------------


async def test_budget_refusal_raises_writes_a_refused_row_and_calls_nothing(
    store: SQLiteStore,
) -> None:
    task_id = await funded_task(store, ceiling_nano=1_000)
    alpha = ScriptedProvider("alpha")

    with pytest.raises(BudgetExceeded) as refused:
        await call(make_router(store, alpha), task_id, max_tokens=100)

    [row] = await store.list_ledger(task_id)
    assert (row.outcome, row.cost_nano, row.provider) == ("budget_refused", 0, "alpha")
    assert alpha.requests == []
    assert refused.value.ceiling_usd == Decimal("0.000001")


def bound(messages: list[Message], max_tokens: int = 100) -> int:
    return input_bound(ProviderRequest("m", tuple(messages), max_tokens, "execution"))


async def test_reservation_is_the_worst_case_of_bounded_input_and_max_tokens(
    store: SQLiteStore,
) -> None:
    worst = (bound(MESSAGES) + 100) * 1_000
    task_id = await funded_task(store, ceiling_nano=worst)
    held: list[int] = []

    class Peeking(ScriptedProvider):
        async def complete(self, request: ProviderRequest) -> ProviderResponse:
            held.append((await store.get_budget(task_id)).reserved_nano)
            return await super().complete(request)

    await call(make_router(store, Peeking("alpha")), task_id, max_tokens=100)

    assert held == [worst]


async def test_failed_call_releases_its_reservation(store: SQLiteStore) -> None:
    task_id = await funded_task(store)
    router = make_router(store, ScriptedProvider("alpha", [FatalProviderError("no")]))

    with pytest.raises(FatalProviderError):
        await call(router, task_id)

    budget = await store.get_budget(task_id)
    assert (budget.reserved_nano, budget.spent_nano) == (0, 0)


async def test_fifty_concurrent_calls_never_push_spend_above_the_ceiling(
    store: SQLiteStore,
) -> None:
    max_tokens = 50
    worst = (bound(MESSAGES) + max_tokens) * 1_000
    ceiling = worst * 10 + worst // 2
    task_id = await funded_task(store, ceiling_nano=ceiling)

    class Spending(ScriptedProvider):
        async def complete(self, request: ProviderRequest) -> ProviderResponse:
            await asyncio.sleep(0)  # let the other calls interleave
            tokens = input_bound(request)
            return ProviderResponse("x", Usage(tokens, 0, request.max_tokens), request.model)

    router = make_router(store, Spending("alpha"), chain=(ALPHA,))
    results = await asyncio.gather(
        *(call(router, task_id, max_tokens=max_tokens) for _ in range(50)),
        return_exceptions=True,
    )

    budget = await store.get_budget(task_id)
    rows = await store.list_ledger(task_id)
    assert budget.spent_nano <= ceiling
    assert sum(r.cost_nano for r in rows) == budget.spent_nano
    assert sum(not isinstance(r, BaseException) for r in results) == 10
    assert all(isinstance(r, BudgetExceeded) for r in results if isinstance(r, BaseException))
    assert sorted({r.outcome for r in rows}) == ["budget_refused", "ok"]
    assert len(rows) == 50


# --- fallback ------------------------------------------------------------------------------------


async def test_retryable_error_is_retried_once_then_the_next_entry_serves(
    store: SQLiteStore,
) -> None:
    task_id = await funded_task(store)
    alpha = ScriptedProvider(
        "alpha", [RetryableProviderError("overloaded"), RetryableProviderError("overloaded")]
    )
    beta = ScriptedProvider("beta")

    result = await call(make_router(store, alpha, beta, sleep=Sleeps()), task_id)

    assert result.provider == "beta"
    assert result.attempts == ["alpha:model-a", "alpha:model-a", "beta:model-b"]
    rows = await store.list_ledger(task_id)
    assert [(r.provider, r.outcome) for r in rows] == [
        ("alpha", "error"),
        ("alpha", "error"),
        ("beta", "ok"),
    ]


async def test_retry_succeeding_stays_on_the_same_entry(store: SQLiteStore) -> None:
    task_id = await funded_task(store)
    alpha = ScriptedProvider("alpha", [RetryableProviderError("503"), reply()])
    beta = ScriptedProvider("beta")

    result = await call(make_router(store, alpha, beta, sleep=Sleeps()), task_id)

    assert result.attempts == ["alpha:model-a", "alpha:model-a"]
    assert beta.requests == []


async def test_retry_waits_at_least_the_providers_retry_after(store: SQLiteStore) -> None:
    task_id = await funded_task(store)
    sleeps = Sleeps()
    alpha = ScriptedProvider("alpha", [RetryableProviderError("429", retry_after=7.0), reply()])

    await call(make_router(store, alpha, sleep=sleeps), task_id)

    [delay] = sleeps.delays
    assert 7.0 <= delay <= 7.5


async def test_retry_after_is_capped(store: SQLiteStore) -> None:
    task_id = await funded_task(store)
    sleeps = Sleeps()
    alpha = ScriptedProvider("alpha", [RetryableProviderError("429", retry_after=3600), reply()])

    await call(make_router(store, alpha, sleep=sleeps), task_id)

    assert sleeps.delays == [20.0]


async def test_timeout_counts_as_retryable(store: SQLiteStore) -> None:
    task_id = await funded_task(store)

    class Hanging(ScriptedProvider):
        async def complete(self, request: ProviderRequest) -> ProviderResponse:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    router = make_router(
        store, Hanging("alpha"), ScriptedProvider("beta"), sleep=Sleeps(), timeout_s=0.01
    )

    result = await call(router, task_id)

    assert result.provider == "beta"
    abandoned = [r for r in await store.list_ledger(task_id) if r.provider == "alpha"]
    assert [r.error for r in abandoned] == [
        "ProviderTimeout: alpha:model-a timed out after 0.01s"
    ] * 2


async def test_a_request_abandoned_after_it_was_sent_is_booked_at_its_reservation(
    store: SQLiteStore,
) -> None:
    """The provider received it and bills it; nobody will say for how much: the most it can
    cost is booked, marked as an upper bound. A timeout is the router hanging up."""
    task_id = await funded_task(store)

    class Hanging(ScriptedProvider):
        async def complete(self, request: ProviderRequest) -> ProviderResponse:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    router = make_router(store, Hanging("alpha"), chain=(ALPHA,), sleep=Sleeps(), timeout_s=0.01)

    with pytest.raises(ProviderError):
        await call(router, task_id, max_tokens=100)

    rows = await store.list_ledger(task_id)
    worst = (bound(MESSAGES) + 100) * 1_000
    assert [(r.outcome, r.cost_nano, r.upper_bound) for r in rows] == [
        ("cancelled", worst, True)
    ] * 2
    assert (await store.get_budget(task_id)).spent_nano == 2 * worst


async def test_a_call_cancelled_in_flight_that_never_answers_is_booked_at_its_reservation(
    store: SQLiteStore,
) -> None:
    """Cancelled once sent, it gets the grace to answer; with no answer by then it is cut off
    and booked at the most it can cost."""
    task_id = await funded_task(store)
    sent = asyncio.Event()

    class Hanging(ScriptedProvider):
        async def complete(self, request: ProviderRequest) -> ProviderResponse:
            sent.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    router = make_router(store, Hanging("alpha"), chain=(ALPHA,), cancel_grace_s=0.05)
    running = asyncio.ensure_future(call(router, task_id, max_tokens=100))
    await sent.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    [row] = await store.list_ledger(task_id)
    assert (row.outcome, row.cost_nano, row.upper_bound) == (
        "cancelled",
        (bound(MESSAGES) + 100) * 1_000,
        True,
    )
    assert row.error == "CancelledError: no answer within 0.05s of a cancel"
    budget = await store.get_budget(task_id)
    assert (budget.spent_nano, budget.reserved_nano) == (row.cost_nano, 0)


async def test_a_call_cancelled_in_flight_is_booked_as_answered_when_it_answers_in_the_grace(
    store: SQLiteStore,
) -> None:
    """The provider bills a request it received whether or not the answer is read: the caller's
    cancellation waits for the answer, which says what it cost, and then goes on."""
    task_id = await funded_task(store)
    sent, cancelled = asyncio.Event(), asyncio.Event()

    class Slow(ScriptedProvider):
        async def complete(self, request: ProviderRequest) -> ProviderResponse:
            sent.set()
            await cancelled.wait()
            return await super().complete(request)

    router = make_router(store, Slow("alpha"), chain=(ALPHA,))
    running = asyncio.ensure_future(call(router, task_id, max_tokens=100))
    await sent.wait()
    running.cancel()
    await asyncio.sleep(0.01)
    running.cancel()  # a second cancellation does not cut it off either
    await asyncio.sleep(0.01)
    cancelled.set()
    with pytest.raises(asyncio.CancelledError):
        await running

    [row] = await store.list_ledger(task_id)
    assert (row.outcome, row.upper_bound) == ("ok", False)
    assert row.cost_nano == (row.input_tokens + row.output_tokens) * 1_000 > 0
    budget = await store.get_budget(task_id)
    assert (budget.spent_nano, budget.reserved_nano) == (row.cost_nano, 0)


async def test_a_request_cut_off_before_its_caller_hears_of_the_cancel_is_not_a_timeout(
    store: SQLiteStore,
) -> None:
    """A second Ctrl-C cuts the requests in flight off while the first one's cancellation may
    still be on its way down to their callers. It used to be booked as a timeout — a failure
    the router retries, sending the call again after the user stopped the run."""
    from agentfirm.domain.calls import InFlight

    task_id = await funded_task(store)
    sent = asyncio.Event()

    class Hanging(ScriptedProvider):
        async def complete(self, request: ProviderRequest) -> ProviderResponse:
            self.requests.append(request)
            sent.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    in_flight = InFlight()
    hanging = Hanging("alpha")
    router = make_router(store, hanging, chain=(ALPHA,), sleep=Sleeps(), in_flight=in_flight)
    running = asyncio.ensure_future(call(router, task_id, max_tokens=100))
    await sent.wait()
    for request in list(in_flight.sent):
        request.cancel()
    with pytest.raises(asyncio.CancelledError):
        # A guard, not a bound: a retry would hang on this provider for ever.
        await asyncio.wait_for(running, 10)

    [row] = await store.list_ledger(task_id)
    assert (row.outcome, row.upper_bound) == ("cancelled", True)
    assert row.error == "CancelledError: cut off unanswered by a second cancel"
    assert len(hanging.requests) == 1


async def test_the_requests_in_flight_are_counted_while_they_wait_for_their_answer(
    store: SQLiteStore,
) -> None:
    """What a first Ctrl-C says it waits for: the requests sent and not yet answered, counted
    on the process's ``InFlight`` however its calls end."""
    from agentfirm.domain.calls import InFlight

    task_id = await funded_task(store)
    sent, answer = asyncio.Event(), asyncio.Event()

    class Held(ScriptedProvider):
        async def complete(self, request: ProviderRequest) -> ProviderResponse:
            sent.set()
            await answer.wait()
            return await super().complete(request)

    in_flight = InFlight()
    failing = ScriptedProvider("beta", [FatalProviderError("bad")])
    router = make_router(store, Held("alpha"), chain=(ALPHA,), in_flight=in_flight)
    running = asyncio.ensure_future(call(router, task_id, max_tokens=100))
    await sent.wait()
    assert in_flight.count == 1
    answer.set()
    await running
    assert in_flight.count == 0
    refused = make_router(store, failing, chain=(BETA,), in_flight=in_flight)
    with pytest.raises(FatalProviderError):
        await call(refused, task_id, max_tokens=100)
    assert in_flight.count == 0


async def test_a_reservation_is_marked_sent_before_the_request_leaves(
    store: SQLiteStore,
) -> None:
    """Should the process die once the request is on its way, whoever takes the task over books
    the call at its reservation: the mark is made before the provider is called."""
    task_id = await funded_task(store)
    released: list[int] = []

    class TakenOver(ScriptedProvider):
        async def complete(self, request: ProviderRequest) -> ProviderResponse:
            released.append(await store.release_reservations(task_id))
            return await super().complete(request)

    router = make_router(store, TakenOver("alpha"), chain=(ALPHA,))
    await call(router, task_id, max_tokens=100)

    assert released == [1]
    rows = await store.list_ledger(task_id)
    # Booked once, at its reservation: the late settle does not book it again.
    assert [(r.outcome, r.upper_bound) for r in rows] == [("cancelled", True)]


async def test_fatal_error_is_raised_without_fallback(store: SQLiteStore) -> None:
    task_id = await funded_task(store)
    beta = ScriptedProvider("beta")
    router = make_router(store, ScriptedProvider("alpha", [FatalProviderError("bad")]), beta)

    with pytest.raises(FatalProviderError, match="bad"):
        await call(router, task_id)

    assert beta.requests == []


async def test_auth_error_skips_that_provider_for_the_rest_of_the_routers_life(
    store: SQLiteStore,
) -> None:
    task_id = await funded_task(store)
    refused = ProviderAuthError(provider="alpha", key_env="ALPHA_API_KEY", status=401)
    alpha = ScriptedProvider("alpha", [refused])
    router = make_router(store, alpha, ScriptedProvider("beta"))

    first = await call(router, task_id)
    second = await call(router, task_id)

    assert (first.provider, second.provider) == ("beta", "beta")
    assert len(alpha.requests) == 1
    assert router.entry_for("execution") == BETA


async def test_auth_error_is_forgotten_by_a_new_router(store: SQLiteStore) -> None:
    task_id = await funded_task(store)
    refused = ProviderAuthError(provider="alpha", key_env="ALPHA_API_KEY")
    await call(
        make_router(store, ScriptedProvider("alpha", [refused]), ScriptedProvider("beta")), task_id
    )
    alpha = ScriptedProvider("alpha")

    result = await call(make_router(store, alpha, ScriptedProvider("beta")), task_id)

    assert result.provider == "alpha"


async def test_exhausted_chain_raises_naming_every_attempt_and_the_bad_key(
    store: SQLiteStore,
) -> None:
    task_id = await funded_task(store)
    alpha = ScriptedProvider("alpha", [ProviderAuthError(provider="alpha", key_env="ALPHA_KEY")])
    beta = ScriptedProvider(
        "beta", [RetryableProviderError("500 a"), RetryableProviderError("500 b")]
    )

    with pytest.raises(ProviderError) as failed:
        await call(make_router(store, alpha, beta, sleep=Sleeps()), task_id)

    message = str(failed.value)
    assert "alpha:model-a" in message
    assert "ALPHA_KEY" in message
    assert "500 a" in message
    assert "500 b" in message


# --- structured output ---------------------------------------------------------------------------


async def test_structured_output_is_parsed_from_fenced_json(store: SQLiteStore) -> None:
    task_id = await funded_task(store)
    alpha = ScriptedProvider("alpha", [reply('Here it is:\n```json\n{"answer": "42"}\n```')])

    result = await call(make_router(store, alpha), task_id, output_schema=SCHEMA)

    assert result.data == {"answer": "42"}


async def test_invalid_structured_output_gets_one_repair_call_with_the_error(
    store: SQLiteStore,
) -> None:
    task_id = await funded_task(store)
    alpha = ScriptedProvider("alpha", [reply('{"answer": 42}'), reply('{"answer": "42"}')])

    result = await call(make_router(store, alpha), task_id, output_schema=SCHEMA)

    assert result.data == {"answer": "42"}
    repair = alpha.requests[1].messages
    assert repair[-2] == Message("assistant", '{"answer": 42}')
    assert repair[-1].role == "user"
    assert "is not of type 'string'" in repair[-1].content
    rows = await store.list_ledger(task_id)
    assert [r.outcome for r in rows] == ["ok", "ok"]
    assert result.cost_nano == sum(r.cost_nano for r in rows)
    assert (result.usage.input_tokens, result.usage.output_tokens) == (
        sum(r.input_tokens for r in rows),
        sum(r.output_tokens for r in rows),
    )


async def test_output_still_invalid_after_repair_raises(store: SQLiteStore) -> None:
    task_id = await funded_task(store)
    alpha = ScriptedProvider("alpha", [reply("no json here"), reply("still none")])

    with pytest.raises(ProviderError, match="even after one repair"):
        await call(make_router(store, alpha), task_id, output_schema=SCHEMA)

    assert len(await store.list_ledger(task_id)) == 2


# --- construction and estimates ------------------------------------------------------------------


def test_chain_naming_an_unimplemented_provider_is_a_config_error(store: SQLiteStore) -> None:
    with pytest.raises(ConfigError) as caught:
        make_router(store, ScriptedProvider("alpha"), chain=(ALPHA, BETA))

    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "tiers.reasoning",
        "tiers.execution",
        "tiers.utility",
    ]
    assert "beta:model-b — provider 'beta' is not available in this build" in problems[0]
    assert "--offline / AGENTFIRM_OFFLINE=1" in problems[0]


def test_estimate_is_the_list_price_of_the_first_usable_entry(store: SQLiteStore) -> None:
    router = make_router(store, ScriptedProvider("alpha"), ScriptedProvider("beta"))

    assert router.entry_for("reasoning") == ALPHA
    assert router.estimate_nano("reasoning", 1_000, 500) == 1_500_000


async def test_tier_with_an_empty_chain_is_a_config_error_saying_how_to_fix_it(
    store: SQLiteStore,
) -> None:
    router = make_router(store, chain=())
    task_id = await funded_task(store)

    with pytest.raises(ConfigError, match="--offline"):
        await call(router, task_id)


async def test_offline_router_ledgers_simulated_calls_at_the_simulated_models_price(
    store: SQLiteStore, tmp_path: Path
) -> None:
    settings = offline_settings(tmp_path, AGENTFIRM_OFFLINE="1")
    router = build_router(settings, store, available={"anthropic"})
    task_id = await funded_task(store)

    result = await router.call(
        tier="execution", messages=MESSAGES, task_id=task_id, output_schema=SCHEMA
    )

    [row] = await store.list_ledger(task_id)
    simulated = parse_entry(DEFAULT_CHAINS["execution"][0])
    assert (row.provider, row.model, row.simulated) == ("offline", simulated.model, True)
    expected = Pricer().price_nano(simulated, result.usage)
    assert row.cost_nano == expected > 0
    assert result.data is not None
    assert result.data["answer"].startswith("[simulated]")


def test_build_router_refuses_providers_missing_from_this_build(
    store: SQLiteStore, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=DEFAULT_CHAINS["reasoning"][0]):
        build_router(offline_settings(tmp_path), store, available={"anthropic", "offline"})


# --- chains --------------------------------------------------------------------------------------


def test_offline_serves_every_tier_with_the_default_first_model_priced_as_its_provider(
    tmp_path: Path,
) -> None:
    chains = resolve_chains(offline_settings(tmp_path, AGENTFIRM_OFFLINE="1"), {"offline"})

    assert chains == {
        tier: [
            ChainEntry("offline", parse_entry(DEFAULT_CHAINS[tier][0]).model, price_as="anthropic")
        ]
        for tier in ("reasoning", "execution", "utility")
    }


def test_offline_simulates_the_first_configured_entry(tmp_path: Path) -> None:
    settings = offline_settings(
        tmp_path,
        AGENTFIRM_OFFLINE="1",
        AGENTFIRM_TIERS__UTILITY='["gemini:gemini-2.5-flash", "openai:gpt-5-nano"]',
        AGENTFIRM_TIERS__REASONING='["offline:gpt-5"]',
    )

    chains = resolve_chains(settings, set())

    assert chains["utility"] == [ChainEntry("offline", "gemini-2.5-flash", price_as="gemini")]
    assert chains["reasoning"] == [ChainEntry("offline", "gpt-5")]


def test_configured_tier_wins_over_the_defaults(tmp_path: Path) -> None:
    settings = offline_settings(tmp_path, AGENTFIRM_TIERS__EXECUTION='["openai:gpt-5-mini"]')

    chains = resolve_chains(settings, {"anthropic", "openai"})

    assert chains["execution"] == [ChainEntry("openai", "gpt-5-mini")]


def test_default_chains_keep_only_providers_with_keys(tmp_path: Path) -> None:
    chains = resolve_chains(offline_settings(tmp_path), {"openai", "gemini", "offline"})

    assert chains["reasoning"] == [
        ChainEntry("openai", "gpt-5"),
        ChainEntry("gemini", "gemini-2.5-pro"),
    ]


def test_parse_entry_splits_provider_and_model() -> None:
    assert parse_entry("openai_compat:llama3:8b") == ChainEntry("openai_compat", "llama3:8b")


def test_parse_entry_without_a_colon_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="provider:model"):
        parse_entry("gpt-5")
