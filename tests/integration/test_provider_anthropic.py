"""The anthropic provider: the real ``anthropic`` SDK against a loopback Messages API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentfirm.router.base import Message, ProviderRequest, Usage
from agentfirm.router.errors import (
    FatalProviderError,
    ProviderAuthError,
    ProviderError,
    RetryableProviderError,
)
from agentfirm.router.providers.anthropic import AnthropicProvider
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.anthropic_fake import AnthropicFake, AnthropicUsage, sent_key
from tests.fakes.http_fake import Reply, running
from tests.fakes.routing import funded_task, list_price_nano, router_for

pytestmark = pytest.mark.integration

KEY = "sk-ant-api03-test-key-0001"
MODEL = "claude-sonnet-4-6"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"headline": {"type": "string"}, "risks": {"type": "array"}},
    "required": ["headline", "risks"],
}
MESSAGES = (
    Message("system", "You are a market analyst."),
    Message("user", "Size the market for electric cargo bikes."),
)


@pytest.fixture(scope="module")
def fake() -> Iterator[AnthropicFake]:
    with running(AnthropicFake()) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: AnthropicFake) -> None:
    fake.reset()


@pytest.fixture
def keys() -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": KEY}


@pytest.fixture
async def provider(fake: AnthropicFake, keys: dict[str, str]) -> AsyncIterator[AnthropicProvider]:
    opened = AnthropicProvider(get_secret=keys.get, base_url=fake.url)
    yield opened
    await opened.aclose()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "agentfirm.sqlite3")
    await opened.open()
    yield opened
    await opened.close()


def request(**changes: Any) -> ProviderRequest:
    fields: dict[str, Any] = {
        "model": MODEL,
        "messages": MESSAGES,
        "max_tokens": 512,
        "tier": "execution",
        "timeout_s": 0.2,
    }
    return ProviderRequest(**{**fields, **changes})


# --- success -------------------------------------------------------------------------------------


async def test_reply_text_and_model_come_back(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    fake.script(fake.ok("About 2 billion EUR."))

    response = await provider.complete(request())

    assert (response.text, response.model) == ("About 2 billion EUR.", MODEL)


async def test_usage_input_is_the_total_including_cache_reads_and_writes(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    usage = AnthropicUsage(
        input_tokens=40,
        output_tokens=25,
        cache_read_input_tokens=1200,
        cache_creation_input_tokens=300,
    )
    fake.script(fake.ok(usage=usage))

    response = await provider.complete(request())

    assert response.usage == Usage(
        input_tokens=1540, cached_input_tokens=1200, output_tokens=25, cache_write_tokens=300
    )


async def test_request_carries_the_key_model_and_limits(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    await provider.complete(request())

    [sent] = fake.requests
    assert (sent.path, sent_key(sent)) == ("/v1/messages", KEY)
    assert (sent.body["model"], sent.body["max_tokens"]) == (MODEL, 512)
    assert sent.body["messages"] == [{"role": "user", "content": MESSAGES[1].content}]


async def test_sdk_retries_are_off(provider: AnthropicProvider, fake: AnthropicFake) -> None:
    fake.script(fake.unavailable(), fake.ok())

    with pytest.raises(RetryableProviderError):
        await provider.complete(request())

    assert len(fake.requests) == 1


async def test_rotated_key_is_used_on_the_next_call(
    provider: AnthropicProvider, fake: AnthropicFake, keys: dict[str, str]
) -> None:
    await provider.complete(request())
    keys["ANTHROPIC_API_KEY"] = "sk-ant-api03-rotated-0002"
    await provider.complete(request())

    assert [sent_key(r) for r in fake.requests] == [KEY, "sk-ant-api03-rotated-0002"]


async def test_key_removed_after_start_is_an_auth_error_naming_it(
    provider: AnthropicProvider, fake: AnthropicFake, keys: dict[str, str]
) -> None:
    del keys["ANTHROPIC_API_KEY"]

    with pytest.raises(ProviderAuthError, match="ANTHROPIC_API_KEY"):
        await provider.complete(request())

    assert fake.requests == []


# --- prompt caching ------------------------------------------------------------------------------


async def test_system_prompt_is_the_cache_breakpoint_when_nothing_is_marked(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    await provider.complete(request())

    [sent] = fake.requests
    assert sent.body["system"] == [
        {
            "type": "text",
            "text": MESSAGES[0].content,
            "cache_control": {"type": "ephemeral"},
        }
    ]


async def test_marked_message_is_the_cache_breakpoint(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    shared = Message("user", "# Upstream outputs\n\n(long shared context)", cache=True)
    messages = (MESSAGES[0], shared, Message("user", "Now write your module."))

    await provider.complete(request(messages=messages))

    [sent] = fake.requests
    assert "cache_control" not in sent.body["system"][0]
    assert sent.body["messages"][0]["content"] == [
        {"type": "text", "text": shared.content, "cache_control": {"type": "ephemeral"}}
    ]
    assert sent.body["messages"][1]["content"] == "Now write your module."


# --- structured output ---------------------------------------------------------------------------


async def test_structured_output_is_a_forced_tool_call_with_the_schema(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    data = {"headline": "Growing 12% a year", "risks": ["subsidies end"]}
    fake.script(fake.structured(data))

    response = await provider.complete(request(output_schema=SCHEMA))

    [sent] = fake.requests
    [tool] = sent.body["tools"]
    assert tool["input_schema"] == SCHEMA
    assert sent.body["tool_choice"] == {"type": "tool", "name": tool["name"]}
    assert json.loads(response.text) == data


# --- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "says"),
    [
        (AnthropicFake.server_error, 500, "anthropic returned 500: Internal server error."),
        (AnthropicFake.unavailable, 503, "anthropic returned 503"),
        (AnthropicFake.overloaded, 529, "anthropic returned 529: Overloaded"),
    ],
)
async def test_server_errors_are_retryable(
    provider: AnthropicProvider, fake: AnthropicFake, fault: Any, status: int, says: str
) -> None:
    fake.script(fault(fake))

    with pytest.raises(RetryableProviderError, match=says) as caught:
        await provider.complete(request())

    assert caught.value.status == status


async def test_rate_limit_is_retryable_with_the_servers_retry_after(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    fake.script(fake.rate_limited(retry_after=7))

    with pytest.raises(RetryableProviderError, match="429") as caught:
        await provider.complete(request())

    assert caught.value.retry_after == 7.0


async def test_hang_past_the_timeout_is_retryable(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    fake.script(fake.hang(0.5))

    with pytest.raises(RetryableProviderError, match=r"did not answer within 0\.2s"):
        await provider.complete(request(timeout_s=0.2))


async def test_connection_reset_is_retryable(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    fake.script(fake.connection_reset())

    with pytest.raises(RetryableProviderError, match="connection failed"):
        await provider.complete(request())


async def test_malformed_body_is_retryable(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    fake.script(fake.malformed())

    with pytest.raises(RetryableProviderError, match="malformed response"):
        await provider.complete(request())


async def test_bad_request_is_fatal_with_the_providers_message(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    fake.script(fake.bad_request("max_tokens: 100000 > 64000, the maximum for this model"))

    with pytest.raises(FatalProviderError, match=r"\(400\): max_tokens: 100000 > 64000"):
        await provider.complete(request())


@pytest.mark.parametrize("fault", [AnthropicFake.unauthorized, AnthropicFake.forbidden])
async def test_rejected_key_is_an_auth_error_naming_the_variable(
    provider: AnthropicProvider, fake: AnthropicFake, fault: Any
) -> None:
    fake.script(fault(fake))

    with pytest.raises(ProviderAuthError) as caught:
        await provider.complete(request())

    assert caught.value.key_env == "ANTHROPIC_API_KEY"
    assert "set a valid ANTHROPIC_API_KEY" in str(caught.value)
    assert KEY not in str(caught.value)


# --- through the router: ledger rows and exact cost ----------------------------------------------


async def test_router_ledgers_a_cached_call_at_the_exact_list_price(
    provider: AnthropicProvider, fake: AnthropicFake, store: SQLiteStore
) -> None:
    usage = AnthropicUsage(
        input_tokens=40,
        output_tokens=180,
        cache_read_input_tokens=2048,
        cache_creation_input_tokens=512,
    )
    fake.script(fake.structured({"headline": "h", "risks": []}, usage=usage))
    task_id = await funded_task(store)
    router = router_for(store, {"anthropic": provider}, [f"anthropic:{MODEL}"])

    result = await router.call(
        tier="execution", messages=MESSAGES, task_id=task_id, output_schema=SCHEMA
    )

    [row] = await store.list_ledger(task_id)
    expected = list_price_nano(
        MODEL,
        "anthropic",
        input_tokens=2600,
        cache_read_tokens=2048,
        cache_write_tokens=512,
        output_tokens=180,
    )
    assert (row.outcome, row.provider, row.model, row.simulated) == (
        "ok",
        "anthropic",
        MODEL,
        False,
    )
    assert (row.input_tokens, row.cached_input_tokens, row.output_tokens) == (2600, 2048, 180)
    assert row.cost_nano == result.cost_nano == expected
    budget = await store.get_budget(task_id)
    assert (budget.spent_nano, budget.reserved_nano) == (expected, 0)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (lambda f: f.rate_limited(1), "RetryableProviderError: anthropic returned 429: Rate limit"),
        (lambda f: f.server_error(), "RetryableProviderError: anthropic returned 500"),
        (lambda f: f.unavailable(), "RetryableProviderError: anthropic returned 503"),
        (lambda f: f.hang(0.5), "RetryableProviderError: anthropic"),  # its timeout or ours
        (lambda f: f.connection_reset(), "RetryableProviderError: anthropic connection failed"),
        (lambda f: f.malformed(), "RetryableProviderError: anthropic returned a malformed"),
    ],
)
async def test_router_ledgers_a_transient_fault_at_zero_then_the_retry_at_list_price(
    provider: AnthropicProvider, fake: AnthropicFake, store: SQLiteStore, fault: Any, error: str
) -> None:
    usage = AnthropicUsage(input_tokens=30, output_tokens=12, cache_read_input_tokens=0)
    fault_reply: Reply = fault(fake)
    fake.script(fault_reply, fake.ok(usage=usage))
    task_id = await funded_task(store)
    router = router_for(store, {"anthropic": provider}, [f"anthropic:{MODEL}"])

    await router.call(tier="execution", messages=MESSAGES, task_id=task_id)

    failed, served = await store.list_ledger(task_id)
    assert (failed.outcome, failed.cost_nano, failed.output_tokens) == ("error", 0, 0)
    assert failed.error is not None
    assert failed.error.startswith(error)
    assert (served.outcome, served.cost_nano) == (
        "ok",
        list_price_nano(MODEL, "anthropic", input_tokens=30, output_tokens=12),
    )
    assert (await store.get_budget(task_id)).reserved_nano == 0


async def test_router_ledgers_a_bad_request_and_raises_it(
    provider: AnthropicProvider, fake: AnthropicFake, store: SQLiteStore
) -> None:
    fake.script(fake.bad_request("messages: text content blocks must be non-empty"))
    task_id = await funded_task(store)
    router = router_for(store, {"anthropic": provider}, [f"anthropic:{MODEL}"])

    with pytest.raises(FatalProviderError, match="must be non-empty"):
        await router.call(tier="execution", messages=MESSAGES, task_id=task_id)

    [row] = await store.list_ledger(task_id)
    assert (row.outcome, row.cost_nano) == ("error", 0)
    assert row.error == (
        "FatalProviderError: anthropic refused the request (400): "
        "messages: text content blocks must be non-empty"
    )


async def test_router_ledgers_a_refused_key_once_and_names_it(
    provider: AnthropicProvider, fake: AnthropicFake, store: SQLiteStore
) -> None:
    fake.script(fake.unauthorized())
    task_id = await funded_task(store)
    router = router_for(store, {"anthropic": provider}, [f"anthropic:{MODEL}"])

    with pytest.raises(ProviderError, match="ANTHROPIC_API_KEY"):
        await router.call(tier="execution", messages=MESSAGES, task_id=task_id)

    [row] = await store.list_ledger(task_id)
    assert row.error == (
        "ProviderAuthError: anthropic rejected its API key (401): invalid x-api-key "
        "(set a valid ANTHROPIC_API_KEY: agentfirm secrets set ANTHROPIC_API_KEY)"
    )
