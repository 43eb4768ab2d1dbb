"""Provider health: the circuit breaker, and how the router uses it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentfirm.router.base import Message, ProviderRequest, ProviderResponse, Usage
from agentfirm.router.errors import FatalProviderError, ProviderError, RetryableProviderError
from agentfirm.router.health import BreakerPolicy, Health
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.routing import funded_task, router_for

POLICY = BreakerPolicy(
    window_s=60, consecutive_failures=3, min_calls=6, max_error_rate=0.5, cooldown_s=30
)
MESSAGES = [Message("user", "Summarise the quarter.")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> Health:
    return Health(POLICY, clock)


def fail(health: Health, provider: str = "p", times: int = 1) -> None:
    for _ in range(times):
        health.record_failure(provider, 100)


def succeed(health: Health, provider: str = "p", times: int = 1, latency_ms: int = 100) -> None:
    for _ in range(times):
        health.record_success(provider, latency_ms)


# --- the breaker ---------------------------------------------------------------------------------


def test_new_provider_is_closed_and_allowed(health: Health) -> None:
    assert (health.state("p"), health.allow("p")) == ("closed", True)


def test_consecutive_failures_open_the_circuit(health: Health) -> None:
    fail(health, times=3)

    assert (health.state("p"), health.allow("p")) == ("open", False)


def test_a_success_resets_the_failure_streak(health: Health) -> None:
    fail(health, times=2)
    succeed(health)
    fail(health, times=2)

    assert health.state("p") == "closed"


def test_error_rate_over_the_window_opens_the_circuit(health: Health) -> None:
    for _ in range(3):
        succeed(health)
        fail(health)

    assert health.state("p") == "open"


def test_error_rate_is_not_judged_below_the_minimum_of_calls(health: Health) -> None:
    succeed(health, times=2)
    fail(health, times=2)

    assert health.state("p") == "closed"


def test_failures_older_than_the_window_no_longer_count(health: Health, clock: Clock) -> None:
    fail(health, times=2)
    succeed(health, times=2)
    clock.now += 61
    succeed(health, times=2)
    fail(health, times=2)

    assert health.state("p") == "closed"


def test_open_circuit_lets_one_probe_through_after_the_cool_down(
    health: Health, clock: Clock
) -> None:
    fail(health, times=3)
    clock.now += 30

    assert [health.allow("p"), health.allow("p")] == [True, False]
    assert health.state("p") == "half_open"


def test_successful_probe_closes_the_circuit(health: Health, clock: Clock) -> None:
    fail(health, times=3)
    clock.now += 30
    health.allow("p")

    succeed(health)

    assert (health.state("p"), health.allow("p"), health.allow("p")) == ("closed", True, True)


def test_failed_probe_reopens_for_a_new_cool_down(health: Health, clock: Clock) -> None:
    fail(health, times=3)
    clock.now += 30
    health.allow("p")

    fail(health)

    assert (health.state("p"), health.opened_at("p"), health.allow("p")) == (
        "open",
        clock.now,
        False,
    )


def test_released_probe_lets_the_next_caller_probe(health: Health, clock: Clock) -> None:
    fail(health, times=3)
    clock.now += 30
    health.allow("p")

    health.release("p")

    assert health.allow("p") is True


def test_forced_attempt_passes_an_open_circuit_as_a_probe(health: Health) -> None:
    fail(health, times=3)

    assert health.allow("p", force=True) is True
    assert health.state("p") == "half_open"


def test_snapshot_reports_state_error_rate_median_latency_and_calls(health: Health) -> None:
    for latency in (100, 300, 200):
        succeed(health, "a", latency_ms=latency)
    fail(health, "a")

    rows = health.snapshot(["a", "b"])

    assert rows == [
        {
            "provider": "a",
            "state": "closed",
            "error_rate": 0.25,
            "p50_latency_ms": 200,
            "calls": 4,
            "failures": 1,
        },
        {
            "provider": "b",
            "state": "closed",
            "error_rate": 0.0,
            "p50_latency_ms": None,
            "calls": 0,
            "failures": 0,
        },
    ]


# --- the router consults it ----------------------------------------------------------------------


class Scripted:
    """A provider replaying errors from a list, then answering."""

    simulated = False

    def __init__(self, name: str, errors: list[BaseException] | None = None) -> None:
        self.name = name
        self.errors = list(errors or [])
        self.calls = 0

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return ProviderResponse("fine", Usage(input_tokens=10, output_tokens=5), request.model)


CHAIN = ["anthropic:claude-haiku-4-5", "openai:gpt-5-nano"]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "agentfirm.sqlite3")
    await opened.open()
    yield opened
    await opened.close()


async def call(router: object, task_id: str) -> str:
    result = await router.call(tier="utility", messages=MESSAGES, task_id=task_id)  # type: ignore[attr-defined]
    return str(result.provider)


async def test_open_provider_is_skipped_without_an_attempt(
    store: SQLiteStore, health: Health
) -> None:
    fail(health, "anthropic", times=3)
    first, second = Scripted("anthropic"), Scripted("openai")
    router = router_for(store, {"anthropic": first, "openai": second}, CHAIN, health=health)
    task_id = await funded_task(store)

    served_by = await call(router, task_id)

    assert (served_by, first.calls) == ("openai", 0)
    assert [row.provider for row in await store.list_ledger(task_id)] == ["openai"]


async def test_first_failure_that_opens_the_circuit_is_not_retried(
    store: SQLiteStore, health: Health
) -> None:
    fail(health, "anthropic", times=2)
    first = Scripted("anthropic", [RetryableProviderError("503"), RetryableProviderError("503")])
    second = Scripted("openai")
    router = router_for(store, {"anthropic": first, "openai": second}, CHAIN, health=health)
    task_id = await funded_task(store)

    served_by = await call(router, task_id)

    assert (served_by, first.calls, health.state("anthropic")) == ("openai", 1, "open")


async def test_every_entry_open_tries_the_one_opened_longest_ago(
    store: SQLiteStore, health: Health, clock: Clock
) -> None:
    fail(health, "openai", times=3)
    clock.now += 5
    fail(health, "anthropic", times=3)
    first, second = Scripted("anthropic"), Scripted("openai")
    router = router_for(store, {"anthropic": first, "openai": second}, CHAIN, health=health)
    task_id = await funded_task(store)

    served_by = await call(router, task_id)

    assert (served_by, first.calls, health.state("openai")) == ("openai", 0, "closed")


async def test_every_entry_open_and_failing_raises_naming_the_open_circuits(
    store: SQLiteStore, health: Health
) -> None:
    fail(health, "anthropic", times=3)
    first = Scripted("anthropic", [RetryableProviderError("503")] * 2)
    router = router_for(store, {"anthropic": first}, CHAIN[:1], health=health)
    task_id = await funded_task(store)

    with pytest.raises(ProviderError, match="circuit open"):
        await call(router, task_id)

    assert first.calls == 2  # the forced try and its one retry


async def test_refused_requests_do_not_count_against_health(
    store: SQLiteStore, health: Health
) -> None:
    first = Scripted("anthropic", [FatalProviderError("bad request")] * 3)
    router = router_for(store, {"anthropic": first}, CHAIN[:1], health=health)
    task_id = await funded_task(store)

    for _ in range(3):
        with pytest.raises(FatalProviderError):
            await call(router, task_id)

    assert health.snapshot(["anthropic"])[0]["failures"] == 0
    assert health.state("anthropic") == "closed"


async def test_router_health_snapshot_covers_every_provider(
    store: SQLiteStore, health: Health
) -> None:
    first = Scripted("anthropic", [RetryableProviderError("503")])
    router = router_for(
        store, {"anthropic": first, "openai": Scripted("openai")}, CHAIN, health=health
    )
    task_id = await funded_task(store)
    await call(router, task_id)

    rows = router.health_snapshot()

    assert [
        (r["provider"], r["state"], r["calls"], r["failures"], r["key_refused"]) for r in rows
    ] == [
        ("anthropic", "closed", 2, 1, False),
        ("openai", "closed", 0, 0, False),
    ]
