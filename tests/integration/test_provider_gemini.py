"""The gemini provider: the real ``google-genai`` SDK against a loopback Gemini API."""

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
from agentfirm.router.providers.gemini import GeminiProvider
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.gemini_fake import GeminiFake, GeminiUsage
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

KEY = "AIzaSyTest-Key-000000000000001"
MODEL = "gemini-2.5-flash"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"headline": {"type": "string"}, "risks": {"type": "array"}},
    "required": ["headline", "risks"],
}
MESSAGES = (
    Message("system", "You are a market analyst."),
    Message("user", "Size the market for electric cargo bikes."),
    Message("assistant", "In which region?"),
    Message("user", "Europe."),
)


GEMINI: ProviderUnderTest[GeminiFake, GeminiProvider] = ProviderUnderTest(
    name="gemini",
    key_env="GEMINI_API_KEY",
    key=KEY,
    model=MODEL,
    messages=MESSAGES,
    start_fake=GeminiFake,
    open=lambda secrets, fake: GeminiProvider(get_secret=secrets, base_url=fake.url),
)
_fake_server, fake, keys, provider = provider_fixtures(GEMINI)
request = GEMINI.request


# --- success -------------------------------------------------------------------------------------


async def test_reply_text_and_model_come_back(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.script(fake.ok("About 2 billion EUR."))

    response = await provider.complete(request())

    assert (response.text, response.model) == ("About 2 billion EUR.", MODEL)


async def test_usage_keeps_cached_tokens_inside_the_input_and_bills_thoughts_as_output(
    provider: GeminiProvider, fake: GeminiFake
) -> None:
    fake.script(fake.ok(usage=GeminiUsage(prompt=1800, candidates=60, cached=1024, thoughts=200)))

    response = await provider.complete(request())

    assert response.usage == Usage(input_tokens=1800, cached_input_tokens=1024, output_tokens=260)


async def test_request_carries_the_key_turns_system_instruction_and_limit(
    provider: GeminiProvider, fake: GeminiFake
) -> None:
    await provider.complete(request())

    [sent] = fake.requests
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.body["systemInstruction"]["parts"] == [{"text": MESSAGES[0].content}]
    assert [(c["role"], c["parts"][0]["text"]) for c in sent.body["contents"]] == [
        ("user", MESSAGES[1].content),
        ("model", MESSAGES[2].content),
        ("user", MESSAGES[3].content),
    ]
    assert sent.body["generationConfig"]["maxOutputTokens"] == 512


async def test_sdk_retries_are_off(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.script(fake.unavailable(), fake.ok())

    with pytest.raises(RetryableProviderError):
        await provider.complete(request())

    assert len(fake.requests) == 1


async def test_google_api_key_serves_when_gemini_api_key_is_unset(fake: GeminiFake) -> None:
    provider = GeminiProvider(get_secret={"GOOGLE_API_KEY": KEY}.get, base_url=fake.url)
    try:
        await provider.complete(request())
    finally:
        await provider.aclose()

    assert fake.requests[0].headers["x-goog-api-key"] == KEY


async def test_rotated_key_is_used_on_the_next_call(
    provider: GeminiProvider, fake: GeminiFake, keys: dict[str, str]
) -> None:
    await provider.complete(request())
    keys["GEMINI_API_KEY"] = "AIzaSyRotated-Key-0000000002"
    await provider.complete(request())

    assert [r.headers["x-goog-api-key"] for r in fake.requests] == [
        KEY,
        "AIzaSyRotated-Key-0000000002",
    ]


# --- structured output ---------------------------------------------------------------------------


async def test_structured_output_uses_json_mode_with_the_schema(
    provider: GeminiProvider, fake: GeminiFake
) -> None:
    data = {"headline": "Growing 12% a year", "risks": ["subsidies end"]}
    fake.script(fake.structured(data))

    response = await provider.complete(request(output_schema=SCHEMA))

    [sent] = fake.requests
    config = sent.body["generationConfig"]
    assert (config["responseMimeType"], config["responseJsonSchema"]) == (
        "application/json",
        SCHEMA,
    )
    assert json.loads(response.text) == data


# --- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status"), [(GeminiFake.server_error, 500), (GeminiFake.unavailable, 503)]
)
async def test_server_errors_are_retryable(
    provider: GeminiProvider, fake: GeminiFake, fault: Any, status: int
) -> None:
    fake.script(fault(fake))

    with pytest.raises(RetryableProviderError, match=f"gemini returned {status}") as caught:
        await provider.complete(request())

    assert caught.value.status == status


async def test_rate_limit_is_retryable_with_the_retry_delay_gemini_sends(
    provider: GeminiProvider, fake: GeminiFake
) -> None:
    fake.script(fake.rate_limited(retry_after=13))

    with pytest.raises(RetryableProviderError, match="gemini returned 429") as caught:
        await provider.complete(request())

    assert caught.value.retry_after == 13.0


async def test_hang_past_the_timeout_is_retryable(
    provider: GeminiProvider, fake: GeminiFake
) -> None:
    fake.script(fake.hang(HANG_S))

    with pytest.raises(RetryableProviderError, match=r"did not answer within 0\.2s"):
        await provider.complete(request(timeout_s=0.2))


async def test_connection_reset_is_retryable(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.script(fake.connection_reset())

    with pytest.raises(RetryableProviderError, match="connection failed"):
        await provider.complete(request())


async def test_malformed_body_is_retryable(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.script(fake.malformed())

    with pytest.raises(RetryableProviderError, match="malformed response"):
        await provider.complete(request())


async def test_bad_request_is_fatal_with_the_providers_message(
    provider: GeminiProvider, fake: GeminiFake
) -> None:
    fake.script(fake.bad_request('Invalid JSON payload received. Unknown name "foo"'))

    with pytest.raises(FatalProviderError, match=r"\(400\): Invalid JSON payload"):
        await provider.complete(request())


@pytest.mark.parametrize(
    "fault", [GeminiFake.invalid_key, GeminiFake.unauthorized, GeminiFake.forbidden]
)
async def test_rejected_key_is_an_auth_error_naming_the_variable(
    provider: GeminiProvider, fake: GeminiFake, fault: Any
) -> None:
    fake.script(fault(fake))

    with pytest.raises(ProviderAuthError) as caught:
        await provider.complete(request())

    assert caught.value.key_env == "GEMINI_API_KEY"
    assert KEY not in str(caught.value)


# --- through the router: ledger rows and exact cost ----------------------------------------------


async def test_router_ledgers_a_cached_call_at_the_exact_list_price(
    provider: GeminiProvider, fake: GeminiFake, store: SQLiteStore
) -> None:
    usage = GeminiUsage(prompt=4000, candidates=150, cached=3000, thoughts=90)
    fake.script(fake.structured({"headline": "h", "risks": []}, usage=usage))
    task_id = await funded_task(store)

    result = await GEMINI.route(store, provider, task_id, output_schema=SCHEMA)

    await assert_billed_once(
        store,
        task_id,
        result,
        provider="gemini",
        model=MODEL,
        tokens=(4000, 3000, 240),
        cost_nano=list_price_nano(
            MODEL, "google", input_tokens=4000, cache_read_tokens=3000, output_tokens=240
        ),
    )


@pytest.mark.parametrize(
    ("fault", "error", "timeout_s"),
    GEMINI.transient_faults(rate_limit_says="Resource has been exhausted"),
)
async def test_router_ledgers_a_transient_fault_at_zero_then_the_retry_at_list_price(
    provider: GeminiProvider,
    fake: GeminiFake,
    store: SQLiteStore,
    fault: Any,
    error: str,
    timeout_s: float,
) -> None:
    fault_reply: Reply = fault(fake)
    fake.script(fault_reply, fake.ok(usage=GeminiUsage(prompt=30, candidates=12)))
    task_id = await funded_task(store)

    await GEMINI.route(store, provider, task_id, timeout_s=timeout_s)

    await assert_failed_then_served(
        store,
        task_id,
        error=error,
        served_cost_nano=list_price_nano(MODEL, "google", input_tokens=30, output_tokens=12),
    )


async def test_router_ledgers_a_bad_request_and_raises_it(
    provider: GeminiProvider, fake: GeminiFake, store: SQLiteStore
) -> None:
    fake.script(fake.bad_request("* GenerateContentRequest.contents: contents is not specified"))
    task_id = await funded_task(store)

    with pytest.raises(FatalProviderError, match="contents is not specified"):
        await GEMINI.route(store, provider, task_id)

    row = await only_failed_row(store, task_id)
    assert row.error is not None
    assert row.error.startswith("FatalProviderError: gemini refused the request (400): ")


async def test_router_ledgers_an_invalid_key_and_names_it(
    provider: GeminiProvider, fake: GeminiFake, store: SQLiteStore
) -> None:
    fake.script(fake.invalid_key())
    task_id = await funded_task(store)

    with pytest.raises(ProviderError, match="GEMINI_API_KEY"):
        await GEMINI.route(store, provider, task_id)

    row = await only_failed_row(store, task_id)
    assert row.error == (
        "ProviderAuthError: gemini rejected its API key (400): API key not valid. Please pass a "
        "valid API key. (set a valid GEMINI_API_KEY: agentfirm secrets set GEMINI_API_KEY)"
    )
