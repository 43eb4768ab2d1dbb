"""The router over real SDKs and loopback fakes under faults: fallback, refused keys, open
circuits and cancellation — with the ledger and the budget exact throughout."""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from agentfirm.router import build_router
from agentfirm.router.base import Message
from agentfirm.router.health import BreakerPolicy, Health
from agentfirm.router.providers.anthropic import AnthropicProvider
from agentfirm.router.providers.openai import OpenAIProvider
from agentfirm.settings import Settings, load_settings
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.anthropic_fake import AnthropicFake, AnthropicUsage
from tests.fakes.http_fake import Recorded, Reply, running
from tests.fakes.metering import Rates
from tests.fakes.openai_fake import OpenAIFake, OpenAIUsage
from tests.fakes.routing import Sleeps, funded_task, list_price_nano, router_for

pytestmark = pytest.mark.integration

PRIMARY = "claude-sonnet-4-6"
SECONDARY = "gpt-5-mini"
CHAIN = [f"anthropic:{PRIMARY}", f"openai:{SECONDARY}"]
SECRETS = {"ANTHROPIC_API_KEY": "sk-ant-api03-fault-test-01", "OPENAI_API_KEY": "sk-proj-fault-01"}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"summary": {"type": "string"}},
    "required": ["summary"],
    "additionalProperties": False,
}
PRIMARY_USAGE = AnthropicUsage(input_tokens=60, output_tokens=90, cache_read_input_tokens=400)
SECONDARY_USAGE = OpenAIUsage(prompt_tokens=460, completion_tokens=95, cached_tokens=256)
MODULES = [f"m{n:02d}" for n in range(1, 13)]
TWELVE_TIMEOUT_S = 3.0
"""Long enough for twelve concurrent answers on a machine at load 15 (1 s once timed out a
429 that had been sent, turning its expected error row into a cancelled one)."""
HANG_S = 8.0


@pytest.fixture(scope="module")
def anthropic_fake() -> Iterator[AnthropicFake]:
    with running(AnthropicFake()) as server:
        yield server


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[OpenAIFake]:
    with running(OpenAIFake()) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(anthropic_fake: AnthropicFake, openai_fake: OpenAIFake) -> None:
    anthropic_fake.reset()
    openai_fake.reset()
    openai_fake.respond_with(openai_fake.structured({"summary": "backup"}, usage=SECONDARY_USAGE))


@pytest.fixture
async def providers(
    anthropic_fake: AnthropicFake, openai_fake: OpenAIFake
) -> AsyncIterator[dict[str, Any]]:
    opened: dict[str, Any] = {
        "anthropic": AnthropicProvider(get_secret=SECRETS.get, base_url=anthropic_fake.url),
        "openai": OpenAIProvider(get_secret=SECRETS.get, base_url=f"{openai_fake.url}/v1"),
    }
    yield opened
    for provider in opened.values():
        await provider.aclose()


def module_messages(module_id: str) -> list[Message]:
    return [
        Message("system", "You are a specialist on a strategy consulting team."),
        Message("user", f"Write module {module_id}: one paragraph on the cargo-bike market."),
    ]


class PerModule:
    """A responder for the primary fake: each module meets its listed faults on its first
    attempts, then succeeds — whatever order the concurrent calls arrive in."""

    def __init__(self, fake: AnthropicFake, faults: dict[str, list[Callable[[], Reply]]]) -> None:
        self._fake = fake
        self._faults = faults
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()

    def __call__(self, request: Recorded) -> Reply:
        match = re.search(r"module (m\d\d)", request.body["messages"][-1]["content"])
        assert match is not None
        module_id = match[1]
        with self._lock:
            attempt = self._seen[module_id]
            self._seen[module_id] += 1
        planned = self._faults.get(module_id, [])
        if attempt < len(planned):
            return planned[attempt]()
        return self._fake.structured({"summary": module_id}, usage=PRIMARY_USAGE)(request)


# --- acceptance: a 12-module run with a flaky primary --------------------------------------------


async def test_twelve_modules_complete_through_a_flaky_primary_with_each_success_billed_once(
    providers: dict[str, Any],
    anthropic_fake: AnthropicFake,
    openai_fake: OpenAIFake,
    store: SQLiteStore,
) -> None:
    f = anthropic_fake
    # 4 of 12 modules (a third) meet faults; 6 of the primary's 16 attempts fail.
    anthropic_fake.respond_with(
        PerModule(
            f,
            {
                "m03": [lambda: f.rate_limited(retry_after=1)],  # retried, then served
                "m06": [f.unavailable, f.unavailable],  # falls back
                "m09": [lambda: f.hang(HANG_S)],  # times out, retried, then served
                "m12": [
                    lambda: f.rate_limited(retry_after=2),
                    lambda: f.hang(HANG_S),
                ],  # falls back
            },
        )
    )
    # The breaker has its own tests; here it must not change which attempts happen.
    patient = Health(BreakerPolicy(consecutive_failures=100, min_calls=100))
    sleeps = Sleeps()
    # A timeout the twelve concurrent answers meet even on a busy machine; the hangs outlast it.
    router = router_for(
        store, providers, CHAIN, health=patient, sleep=sleeps, timeout_s=TWELVE_TIMEOUT_S
    )
    task_id = await funded_task(store)

    results = await asyncio.gather(
        *(
            router.call(
                tier="execution",
                messages=module_messages(m),
                task_id=task_id,
                module_id=m,
                output_schema=SCHEMA,
            )
            for m in MODULES
        )
    )

    served_by = {m: r.provider for m, r in zip(MODULES, results, strict=True)}
    assert {m for m, p in served_by.items() if p == "openai"} == {"m06", "m12"}
    assert all(r.data is not None for r in results)
    rows = await store.list_ledger(task_id)
    outcomes: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        outcomes[row.module_id or ""].append((row.provider, row.outcome))
    assert outcomes["m06"] == [("anthropic", "error"), ("anthropic", "error"), ("openai", "ok")]
    # A hang the router gave up on reached the provider, which bills it: booked at its
    # reservation.
    assert outcomes["m12"] == [
        ("anthropic", "error"),
        ("anthropic", "cancelled"),
        ("openai", "ok"),
    ]
    assert outcomes["m03"] == [("anthropic", "error"), ("anthropic", "ok")]
    assert outcomes["m09"] == [("anthropic", "cancelled"), ("anthropic", "ok")]
    assert all(
        outcomes[m] == [("anthropic", "ok")]
        for m in MODULES
        if m not in {"m03", "m06", "m09", "m12"}
    )
    errors = sorted(row.error or "" for row in rows if row.outcome == "error")
    assert [e.split(":")[0] for e in errors] == ["RetryableProviderError"] * 4
    hung_up = [row for row in rows if row.outcome == "cancelled"]
    assert [r.error.split(":")[0] for r in hung_up if r.error] == ["ProviderTimeout"] * 2
    assert all(r.upper_bound for r in hung_up)
    # Each module is billed exactly once, at its provider's list price; failures cost nothing.
    primary_cost = list_price_nano(
        PRIMARY, "anthropic", input_tokens=460, cache_read_tokens=400, output_tokens=90
    )
    secondary_cost = list_price_nano(
        SECONDARY, "openai", input_tokens=460, cache_read_tokens=256, output_tokens=95
    )
    ok_rows = [row for row in rows if row.outcome == "ok"]
    assert sorted(row.module_id or "" for row in ok_rows) == MODULES
    assert [r.cost_nano for r in results] == [
        secondary_cost if served_by[m] == "openai" else primary_cost for m in MODULES
    ]
    assert sum(row.cost_nano for row in rows if row.outcome == "error") == 0
    budget = await store.get_budget(task_id)
    hung_up_nano = sum(row.cost_nano for row in hung_up)
    assert (budget.spent_nano, budget.reserved_nano) == (
        10 * primary_cost + 2 * secondary_cost + hung_up_nano,
        0,
    )
    # The primary billed the ten answers and the two hangs; nothing else.
    assert len(anthropic_fake.bill.items) == 12
    assert len(openai_fake.requests) == 2
    assert min(sleeps.delays) >= 1.0  # retries waited (at least the base delay / retry-after)


# --- acceptance: a refused key -------------------------------------------------------------------


async def test_refused_key_gives_one_line_naming_it_and_the_next_provider_serves_the_run(
    providers: dict[str, Any], anthropic_fake: AnthropicFake, store: SQLiteStore
) -> None:
    anthropic_fake.script(anthropic_fake.unauthorized())
    router = router_for(store, providers, CHAIN)
    task_id = await funded_task(store)

    with capture_logs() as logs:
        served_by = [
            (
                await router.call(tier="utility", messages=module_messages(m), task_id=task_id)
            ).provider
            for m in MODULES[:3]
        ]

    assert served_by == ["openai"] * 3
    assert len(anthropic_fake.requests) == 1  # taken out after its key was refused
    [refused] = [row for row in await store.list_ledger(task_id) if row.outcome == "error"]
    assert refused.error is not None
    assert "\n" not in refused.error
    assert "set a valid ANTHROPIC_API_KEY" in refused.error
    assert [(e["provider"], e["key"]) for e in logs if e["event"] == "router.key_refused"] == [
        ("anthropic", "ANTHROPIC_API_KEY")
    ]
    assert [r["key_refused"] for r in router.health_snapshot()] == [True, False]


# --- the breaker with real SDKs ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_failing_primary_is_skipped_while_open_then_probed_and_restored(
    providers: dict[str, Any], anthropic_fake: AnthropicFake, store: SQLiteStore
) -> None:
    anthropic_fake.respond_with(lambda request: anthropic_fake.unavailable())
    clock = Clock()
    health = Health(BreakerPolicy(consecutive_failures=3, cooldown_s=30), clock)
    router = router_for(
        store,
        {"anthropic": providers["anthropic"], "openai": providers["openai"]},
        CHAIN,
        health=health,
    )
    task_id = await funded_task(store)

    async def call() -> str:
        messages = module_messages("m01")
        return (await router.call(tier="utility", messages=messages, task_id=task_id)).provider

    first, second, third = [await call() for _ in range(3)]
    attempts_while_open = len(anthropic_fake.requests)
    clock.now += 30
    anthropic_fake.respond_with(anthropic_fake.ok())
    fourth = await call()

    assert [first, second, third, fourth] == ["openai", "openai", "openai", "anthropic"]
    # Two attempts, then one that opened the circuit (not retried), then none while open.
    assert attempts_while_open == 3
    assert len(anthropic_fake.requests) == 4
    assert health.state("anthropic") == "closed"


# --- cancellation --------------------------------------------------------------------------------


async def test_a_call_cancelled_in_flight_without_an_answer_is_booked_at_its_reservation(
    providers: dict[str, Any], anthropic_fake: AnthropicFake, store: SQLiteStore
) -> None:
    arrived = threading.Event()

    def hang(request: Recorded) -> Reply:
        arrived.set()
        return anthropic_fake.hang(5)

    anthropic_fake.respond_with(hang)
    router = router_for(store, providers, CHAIN, timeout_s=10, cancel_grace_s=0.1)
    task_id = await funded_task(store)
    call = asyncio.create_task(
        router.call(tier="utility", messages=module_messages("m01"), task_id=task_id)
    )
    assert await asyncio.to_thread(arrived.wait, 5)

    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    # The provider got the request and bills it; it will never say for how much. The most it
    # can cost is booked: an upper bound of what it billed.
    [row] = await store.list_ledger(task_id)
    assert (row.outcome, row.error, row.upper_bound) == (
        "cancelled",
        "CancelledError: no answer within 0.1s of a cancel",
        True,
    )
    anthropic_fake.bill.rates[PRIMARY] = Rates(input=3_000, output=15_000)
    assert len(anthropic_fake.bill.items) == 1
    assert row.cost_nano >= anthropic_fake.bill.nano > 0
    budget = await store.get_budget(task_id)
    assert (budget.spent_nano, budget.reserved_nano) == (row.cost_nano, 0)


# --- wiring from settings ------------------------------------------------------------------------


def settings_for(tmp_path: Path, **env: str) -> Settings:
    return load_settings({"AGENTFIRM_HOME": str(tmp_path), **env}, cwd=tmp_path)


async def test_built_router_registers_keyed_providers_at_their_base_urls(
    tmp_path: Path, anthropic_fake: AnthropicFake, openai_fake: OpenAIFake, store: SQLiteStore
) -> None:
    env = {"ANTHROPIC_BASE_URL": anthropic_fake.url, "OPENAI_BASE_URL": f"{openai_fake.url}/v1"}
    router = build_router(settings_for(tmp_path), store, env=env, get_secret=SECRETS.get)
    task_id = await funded_task(store)
    try:
        result = await router.call(tier="utility", messages=module_messages("m01"), task_id=task_id)
    finally:
        await router.aclose()

    assert (result.provider, result.model) == ("anthropic", "claude-haiku-4-5")
    assert [r.body["model"] for r in anthropic_fake.requests] == ["claude-haiku-4-5"]
    assert [r["provider"] for r in router.health_snapshot()] == ["anthropic", "offline", "openai"]


async def test_built_router_serves_an_openai_compatible_server_without_a_key(
    tmp_path: Path, openai_fake: OpenAIFake, store: SQLiteStore
) -> None:
    openai_fake.reset()
    settings = settings_for(
        tmp_path,
        AGENTFIRM_OPENAI_COMPAT_BASE_URL=f"{openai_fake.url}/v1",
        AGENTFIRM_TIERS__UTILITY='["openai_compat:llama3.1:8b"]',
        AGENTFIRM_PRICES='{"llama3.1:8b": {"input_per_mtok": "0.1", "output_per_mtok": "0.2"}}',
    )
    router = build_router(settings, store)
    task_id = await funded_task(store)
    try:
        result = await router.call(tier="utility", messages=module_messages("m01"), task_id=task_id)
    finally:
        await router.aclose()

    [sent] = openai_fake.requests
    assert (result.provider, sent.body["model"]) == ("openai_compat", "llama3.1:8b")
    assert sent.headers["authorization"] == "Bearer no-key"
    # What the server billed, at $0.1/M in and $0.2/M out.
    openai_fake.bill.rates["llama3.1:8b"] = Rates(input=100, output=200)
    assert result.cost_nano == openai_fake.bill.nano > 0


def test_offline_router_builds_no_sdk_provider_even_with_keys(
    tmp_path: Path, store: SQLiteStore
) -> None:
    settings = settings_for(tmp_path, AGENTFIRM_OFFLINE="1")

    router = build_router(settings, store, get_secret=SECRETS.get)

    assert [r["provider"] for r in router.health_snapshot()] == ["offline"]
