"""The openai and openai_compat providers: the real ``openai`` SDK against a loopback Chat
Completions server."""

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
from agentfirm.router.providers.openai import OpenAIProvider, strict_compatible
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.http_fake import Reply
from tests.fakes.openai_fake import OpenAIFake, OpenAIUsage
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

KEY = "sk-proj-test-key-0000000001"
MODEL = "gpt-5-mini"
NO_SECRETS: dict[str, str] = {}
STRICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"headline": {"type": "string"}, "risks": {"type": "array"}},
    "required": ["headline", "risks"],
    "additionalProperties": False,
}
LOOSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"headline": {"type": "string"}, "note": {"type": "string"}},
    "required": ["headline"],
}
MESSAGES = (
    Message("system", "You are a market analyst."),
    Message("user", "Size the market for electric cargo bikes."),
)


OPENAI: ProviderUnderTest[OpenAIFake, OpenAIProvider] = ProviderUnderTest(
    name="openai",
    key_env="OPENAI_API_KEY",
    key=KEY,
    model=MODEL,
    messages=MESSAGES,
    start_fake=OpenAIFake,
    open=lambda secrets, fake: OpenAIProvider(get_secret=secrets, base_url=f"{fake.url}/v1"),
)
_fake_server, fake, keys, provider = provider_fixtures(OPENAI)
request = OPENAI.request


# --- success -------------------------------------------------------------------------------------


async def test_reply_text_and_model_come_back(provider: OpenAIProvider, fake: OpenAIFake) -> None:
    fake.script(fake.ok("About 2 billion EUR."))

    response = await provider.complete(request())

    assert (response.text, response.model) == ("About 2 billion EUR.", MODEL)


async def test_usage_keeps_cached_tokens_inside_the_input_total(
    provider: OpenAIProvider, fake: OpenAIFake
) -> None:
    fake.script(
        fake.ok(usage=OpenAIUsage(prompt_tokens=1500, completion_tokens=40, cached_tokens=1024))
    )

    response = await provider.complete(request())

    assert response.usage == Usage(input_tokens=1500, cached_input_tokens=1024, output_tokens=40)


async def test_request_carries_the_key_messages_and_completion_limit(
    provider: OpenAIProvider, fake: OpenAIFake
) -> None:
    await provider.complete(request())

    [sent] = fake.requests
    assert (sent.path, sent.headers["authorization"]) == ("/v1/chat/completions", f"Bearer {KEY}")
    assert sent.body["messages"] == [
        {"role": "system", "content": MESSAGES[0].content},
        {"role": "user", "content": MESSAGES[1].content},
    ]
    assert (sent.body["model"], sent.body["max_completion_tokens"]) == (MODEL, 512)
    assert "max_tokens" not in sent.body


async def test_sdk_retries_are_off(provider: OpenAIProvider, fake: OpenAIFake) -> None:
    fake.script(fake.unavailable(), fake.ok())

    with pytest.raises(RetryableProviderError):
        await provider.complete(request())

    assert len(fake.requests) == 1


async def test_rotated_key_is_used_on_the_next_call(
    provider: OpenAIProvider, fake: OpenAIFake, keys: dict[str, str]
) -> None:
    await provider.complete(request())
    keys["OPENAI_API_KEY"] = "sk-proj-rotated-key-000000002"
    await provider.complete(request())

    assert [r.headers["authorization"] for r in fake.requests] == [
        f"Bearer {KEY}",
        "Bearer sk-proj-rotated-key-000000002",
    ]


# --- structured output ---------------------------------------------------------------------------


async def test_structured_output_uses_a_strict_json_schema_response_format(
    provider: OpenAIProvider, fake: OpenAIFake
) -> None:
    data = {"headline": "Growing 12% a year", "risks": []}
    fake.script(fake.structured(data))

    response = await provider.complete(request(output_schema=STRICT_SCHEMA))

    [sent] = fake.requests
    assert sent.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": STRICT_SCHEMA, "strict": True},
    }
    assert json.loads(response.text) == data


async def test_schema_strict_mode_would_reject_is_sent_non_strict(
    provider: OpenAIProvider, fake: OpenAIFake
) -> None:
    await provider.complete(request(output_schema=LOOSE_SCHEMA))

    [sent] = fake.requests
    assert sent.body["response_format"]["json_schema"]["strict"] is False


def test_nested_open_object_is_not_strict_compatible() -> None:
    nested = {
        **STRICT_SCHEMA,
        "properties": {
            "headline": {"type": "string"},
            "risks": {"type": "array", "items": {"type": "object", "properties": {}}},
        },
    }

    assert strict_compatible(STRICT_SCHEMA) is True
    assert strict_compatible(nested) is False


# --- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status"), [(OpenAIFake.server_error, 500), (OpenAIFake.unavailable, 503)]
)
async def test_server_errors_are_retryable(
    provider: OpenAIProvider, fake: OpenAIFake, fault: Any, status: int
) -> None:
    fake.script(fault(fake))

    with pytest.raises(RetryableProviderError, match=f"openai returned {status}") as caught:
        await provider.complete(request())

    assert caught.value.status == status


async def test_rate_limit_is_retryable_with_the_servers_retry_after(
    provider: OpenAIProvider, fake: OpenAIFake
) -> None:
    fake.script(fake.rate_limited(retry_after=3))

    with pytest.raises(
        RetryableProviderError, match="openai returned 429: Rate limit exceeded"
    ) as caught:
        await provider.complete(request())

    assert caught.value.retry_after == 3.0


async def test_hang_past_the_timeout_is_retryable(
    provider: OpenAIProvider, fake: OpenAIFake
) -> None:
    fake.script(fake.hang(HANG_S))

    with pytest.raises(RetryableProviderError, match=r"did not answer within 0\.2s"):
        await provider.complete(request(timeout_s=0.2))


async def test_connection_reset_is_retryable(provider: OpenAIProvider, fake: OpenAIFake) -> None:
    fake.script(fake.connection_reset())

    with pytest.raises(RetryableProviderError, match="connection failed"):
        await provider.complete(request())


async def test_malformed_body_is_retryable(provider: OpenAIProvider, fake: OpenAIFake) -> None:
    fake.script(fake.malformed())

    with pytest.raises(RetryableProviderError, match="malformed response"):
        await provider.complete(request())


async def test_bad_request_is_fatal_with_the_providers_message(
    provider: OpenAIProvider, fake: OpenAIFake
) -> None:
    fake.script(fake.bad_request("Invalid schema for response_format 'output'"))

    with pytest.raises(
        FatalProviderError, match=r"openai refused the request \(400\): Invalid schema"
    ):
        await provider.complete(request())


@pytest.mark.parametrize("fault", [OpenAIFake.unauthorized, OpenAIFake.forbidden])
async def test_rejected_key_is_an_auth_error_naming_the_variable(
    provider: OpenAIProvider, fake: OpenAIFake, fault: Any
) -> None:
    fake.script(fault(fake))

    with pytest.raises(ProviderAuthError) as caught:
        await provider.complete(request())

    assert caught.value.key_env == "OPENAI_API_KEY"
    assert KEY not in str(caught.value)


# --- openai_compat -------------------------------------------------------------------------------


async def test_compatible_server_without_a_key_is_called_with_a_placeholder(
    fake: OpenAIFake,
) -> None:
    compat = OpenAIProvider.openai_compat(get_secret=NO_SECRETS.get, base_url=f"{fake.url}/v1")
    try:
        response = await compat.complete(request(model="llama3.1:8b"))
    finally:
        await compat.aclose()

    [sent] = fake.requests
    assert response.model == "llama3.1:8b"
    assert sent.headers["authorization"] == "Bearer no-key"
    assert (sent.body["max_tokens"], "max_completion_tokens" in sent.body) == (512, False)


async def test_compatible_server_gets_its_own_key_when_set(fake: OpenAIFake) -> None:
    secrets = {"AGENTFIRM_OPENAI_COMPAT_API_KEY": "vllm-local-token-01", "OPENAI_API_KEY": KEY}
    compat = OpenAIProvider.openai_compat(get_secret=secrets.get, base_url=f"{fake.url}/v1")
    try:
        await compat.complete(request(model="llama3.1:8b"))
    finally:
        await compat.aclose()

    assert fake.requests[0].headers["authorization"] == "Bearer vllm-local-token-01"


async def test_compatible_server_rejecting_its_key_names_the_compat_variable(
    fake: OpenAIFake,
) -> None:
    fake.script(fake.unauthorized())
    compat = OpenAIProvider.openai_compat(get_secret=NO_SECRETS.get, base_url=f"{fake.url}/v1")
    try:
        with pytest.raises(ProviderAuthError, match="AGENTFIRM_OPENAI_COMPAT_API_KEY"):
            await compat.complete(request(model="llama3.1:8b"))
    finally:
        await compat.aclose()


# --- through the router: ledger rows and exact cost ----------------------------------------------


async def test_router_ledgers_a_cached_call_at_the_exact_list_price(
    provider: OpenAIProvider, fake: OpenAIFake, store: SQLiteStore
) -> None:
    usage = OpenAIUsage(prompt_tokens=3000, completion_tokens=220, cached_tokens=2048)
    fake.script(fake.structured({"headline": "h", "risks": []}, usage=usage))
    task_id = await funded_task(store)

    result = await OPENAI.route(store, provider, task_id, output_schema=STRICT_SCHEMA)

    await assert_billed_once(
        store,
        task_id,
        result,
        provider="openai",
        model=MODEL,
        tokens=(3000, 2048, 220),
        cost_nano=list_price_nano(
            MODEL, "openai", input_tokens=3000, cache_read_tokens=2048, output_tokens=220
        ),
    )


@pytest.mark.parametrize(
    ("fault", "error", "timeout_s"), OPENAI.transient_faults(rate_limit_says="Rate limit")
)
async def test_router_ledgers_a_transient_fault_at_zero_then_the_retry_at_list_price(
    provider: OpenAIProvider,
    fake: OpenAIFake,
    store: SQLiteStore,
    fault: Any,
    error: str,
    timeout_s: float,
) -> None:
    fault_reply: Reply = fault(fake)
    fake.script(fault_reply, fake.ok(usage=OpenAIUsage(prompt_tokens=30, completion_tokens=12)))
    task_id = await funded_task(store)

    await OPENAI.route(store, provider, task_id, timeout_s=timeout_s)

    await assert_failed_then_served(
        store,
        task_id,
        error=error,
        served_cost_nano=list_price_nano(MODEL, "openai", input_tokens=30, output_tokens=12),
    )


async def test_router_ledgers_a_bad_request_and_raises_it(
    provider: OpenAIProvider, fake: OpenAIFake, store: SQLiteStore
) -> None:
    fake.script(fake.bad_request("Unsupported parameter: 'temperature'"))
    task_id = await funded_task(store)

    with pytest.raises(FatalProviderError, match="Unsupported parameter"):
        await OPENAI.route(store, provider, task_id)

    row = await only_failed_row(store, task_id)
    assert row.error == (
        "FatalProviderError: openai refused the request (400): Unsupported parameter: 'temperature'"
    )


async def test_router_ledgers_a_refused_key_and_names_it(
    provider: OpenAIProvider, fake: OpenAIFake, store: SQLiteStore
) -> None:
    fake.script(fake.unauthorized())
    task_id = await funded_task(store)

    with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
        await OPENAI.route(store, provider, task_id)

    row = await only_failed_row(store, task_id)
    assert row.error == (
        "ProviderAuthError: openai rejected its API key (401): invalid x-api-key "
        "(set a valid OPENAI_API_KEY: agentfirm secrets set OPENAI_API_KEY)"
    )
