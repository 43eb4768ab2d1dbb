"""The anthropic provider: the real ``anthropic`` SDK against a loopback Messages API."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentfirm.router.base import Message, Usage
from agentfirm.router.errors import (
    FatalProviderError,
    ProviderAuthError,
    ProviderError,
    RetryableProviderError,
)
from agentfirm.router.providers.anthropic import AnthropicProvider
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.anthropic_fake import AnthropicFake, AnthropicUsage, sent_key
from tests.fakes.http_fake import Reply
from tests.fakes.provider_harness import (
    HANG_S,
    ProviderUnderTest,
    assert_billed_once,
    assert_failed_then_served,
    only_failed_row,
    provider_fixtures,
)
from tests.fakes.routing import funded_task, list_price_nano

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


ANTHROPIC: ProviderUnderTest[AnthropicFake, AnthropicProvider] = ProviderUnderTest(
    name="anthropic",
    key_env="ANTHROPIC_API_KEY",
    key=KEY,
    model=MODEL,
    messages=MESSAGES,
    start_fake=AnthropicFake,
    open=lambda secrets, fake: AnthropicProvider(get_secret=secrets, base_url=fake.url),
)
_fake_server, fake, keys, provider = provider_fixtures(ANTHROPIC)
request = ANTHROPIC.request


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
    fake.script(fake.hang(HANG_S))

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

    result = await ANTHROPIC.route(store, provider, task_id, output_schema=SCHEMA)

    await assert_billed_once(
        store,
        task_id,
        result,
        provider="anthropic",
        model=MODEL,
        tokens=(2600, 2048, 180),
        cost_nano=list_price_nano(
            MODEL,
            "anthropic",
            input_tokens=2600,
            cache_read_tokens=2048,
            cache_write_tokens=512,
            output_tokens=180,
        ),
    )


@pytest.mark.parametrize(
    ("fault", "error", "timeout_s"), ANTHROPIC.transient_faults(rate_limit_says="Rate limit")
)
async def test_router_ledgers_a_transient_fault_at_zero_then_the_retry_at_list_price(
    provider: AnthropicProvider,
    fake: AnthropicFake,
    store: SQLiteStore,
    fault: Any,
    error: str,
    timeout_s: float,
) -> None:
    usage = AnthropicUsage(input_tokens=30, output_tokens=12, cache_read_input_tokens=0)
    fault_reply: Reply = fault(fake)
    fake.script(fault_reply, fake.ok(usage=usage))
    task_id = await funded_task(store)

    await ANTHROPIC.route(store, provider, task_id, timeout_s=timeout_s)

    await assert_failed_then_served(
        store,
        task_id,
        error=error,
        served_cost_nano=list_price_nano(MODEL, "anthropic", input_tokens=30, output_tokens=12),
    )


async def test_router_ledgers_a_bad_request_and_raises_it(
    provider: AnthropicProvider, fake: AnthropicFake, store: SQLiteStore
) -> None:
    fake.script(fake.bad_request("messages: text content blocks must be non-empty"))
    task_id = await funded_task(store)

    with pytest.raises(FatalProviderError, match="must be non-empty"):
        await ANTHROPIC.route(store, provider, task_id)

    row = await only_failed_row(store, task_id)
    assert row.error == (
        "FatalProviderError: anthropic refused the request (400): "
        "messages: text content blocks must be non-empty"
    )


async def test_router_ledgers_a_refused_key_once_and_names_it(
    provider: AnthropicProvider, fake: AnthropicFake, store: SQLiteStore
) -> None:
    fake.script(fake.unauthorized())
    task_id = await funded_task(store)

    with pytest.raises(ProviderError, match="ANTHROPIC_API_KEY"):
        await ANTHROPIC.route(store, provider, task_id)

    row = await only_failed_row(store, task_id)
    assert row.error == (
        "ProviderAuthError: anthropic rejected its API key (401): invalid x-api-key "
        "(set a valid ANTHROPIC_API_KEY: agentfirm secrets set ANTHROPIC_API_KEY)"
    )
