"""``openai_compat`` negotiating structured output with local servers: the real ``openai`` SDK
against loopback servers shaped like llama-cpp-python's, Ollama's and vLLM's, and a scripted one
for the shapes none of them refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentfirm.router.base import Message, ProviderRequest, ProviderResponse
from agentfirm.router.errors import RetryableProviderError
from agentfirm.router.providers.openai import OpenAIProvider
from tests.fakes.compat_servers import (
    SCHEMA_MARK,
    CompatServer,
    LlamaCppPythonServer,
    OllamaServer,
    VLLMServer,
)
from tests.fakes.http_fake import running
from tests.fakes.openai_fake import OpenAIFake

pytestmark = pytest.mark.integration

MODEL = "llama3.1:8b"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "headline": {"type": "string", "minLength": 3},
        "risks": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["headline", "risks"],
}
MESSAGES = (
    Message("system", "You are a market analyst."),
    Message("user", "Size the market for electric cargo bikes."),
)
ANSWER = {"headline": "A growing niche", "risks": ["battery costs"]}


def _request(**changes: Any) -> ProviderRequest:
    fields: dict[str, Any] = {
        "model": MODEL,
        "messages": MESSAGES,
        "max_tokens": 512,
        "tier": "execution",
        "output_schema": SCHEMA,
        "timeout_s": 10.0,
    }
    return ProviderRequest(**{**fields, **changes})


def _compat(fake: OpenAIFake) -> OpenAIProvider:
    return OpenAIProvider.openai_compat(get_secret={}.get, base_url=f"{fake.url}/v1")


async def _complete(fake: OpenAIFake, calls: int) -> list[ProviderResponse]:
    """``calls`` structured calls, one after another, by one provider (so one mode memory)."""
    compat = _compat(fake)
    try:
        return [await compat.complete(_request()) for _ in range(calls)]
    finally:
        await compat.aclose()


def _system_prompt(body: dict[str, Any]) -> str:
    [system] = [m["content"] for m in body["messages"] if m["role"] == "system"]
    assert isinstance(system, str)
    return system


@pytest.mark.parametrize(
    ("server", "settled"),
    [
        (LlamaCppPythonServer, "json_object"),
        (OllamaServer, "json_schema"),
        (VLLMServer, "json_object"),
    ],
)
async def test_each_server_gets_the_shape_it_takes_and_later_calls_go_straight_to_it(
    server: type[CompatServer], settled: str
) -> None:
    with running(server()) as fake:
        first, second = await _complete(fake, 2)
        shapes = list(fake.shapes)

    refused = [] if settled == "json_schema" else [("json_schema", False)]
    assert shapes == [*refused, (settled, True), (settled, True)]
    for response in (first, second):
        value = json.loads(response.text)
        assert set(value) >= {"headline", "risks"}


async def test_json_object_carries_the_schema_in_the_format_and_in_the_system_prompt() -> None:
    with running(LlamaCppPythonServer()) as fake:
        await _complete(fake, 1)
        refused, accepted = (r.body for r in fake.requests)

    assert refused["response_format"]["type"] == "json_schema"
    assert SCHEMA_MARK not in _system_prompt(refused)
    assert accepted["response_format"] == {"type": "json_object", "schema": SCHEMA}
    system = _system_prompt(accepted)
    # One system message, first: the analyst's role, then the schema to answer with.
    assert system.startswith("You are a market analyst.")
    assert json.loads(system.split(SCHEMA_MARK, 1)[1]) == SCHEMA


async def test_a_server_refusing_both_formats_gets_the_schema_by_prompt_alone() -> None:
    fake = OpenAIFake()
    with running(fake):
        fake.script(
            fake.error(500, 'response_format type must be one of "text", got: json_schema'),
            fake.error(400, "'response_format.type' must be 'json_schema' or 'text'"),
            fake.structured(ANSWER),
            fake.structured(ANSWER),
        )
        first, second = await _complete(fake, 2)
        bodies = [r.body for r in fake.requests]

    assert [b.get("response_format", {}).get("type") for b in bodies] == [
        "json_schema",
        "json_object",
        None,
        None,
    ]
    assert all(SCHEMA_MARK in _system_prompt(b) for b in bodies[1:])
    assert json.loads(first.text) == json.loads(second.text) == ANSWER


async def test_a_server_error_that_is_not_about_the_format_is_not_a_refusal() -> None:
    fake = OpenAIFake()
    with running(fake):
        fake.script(fake.server_error(), fake.structured(ANSWER))
        compat = _compat(fake)
        try:
            with pytest.raises(RetryableProviderError, match="returned 500"):
                await compat.complete(_request())
            await compat.complete(_request())
        finally:
            await compat.aclose()
        bodies = [r.body for r in fake.requests]

    # The failing server is for the router to retry; the shape stays json_schema.
    assert [b["response_format"]["type"] for b in bodies] == ["json_schema", "json_schema"]
