"""The offline provider: deterministic, schema-true, readable, within max_tokens."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from agentfirm.router.base import Message, ProviderRequest
from agentfirm.router.providers.offline import OfflineProvider
from agentfirm.router.schema_output import extract_json
from agentfirm.router.tokens import estimate_messages, estimate_tokens

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"

FINDINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": {
        "Source": {
            "type": "object",
            "properties": {
                "title": {"type": "string", "maxLength": 80},
                "url": {"type": "string", "format": "uri"},
                "year": {"type": "integer", "minimum": 1990, "maximum": 2025},
            },
            "required": ["title", "year"],
            "additionalProperties": False,
        },
        "Finding": {
            "type": "object",
            "properties": {
                "claim": {"type": "string", "minLength": 40},
                "confidence": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "verdict": {"enum": ["novel", "anticipated", "unclear"]},
                "critical": {"type": "boolean"},
                "sources": {
                    "type": "array",
                    "items": {"$ref": "#/$defs/Source"},
                    "minItems": 1,
                    "maxItems": 2,
                },
                "scores": {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "integer", "minimum": 7}},
                },
            },
            "required": ["claim", "confidence", "verdict", "critical", "sources"],
            "additionalProperties": False,
        },
    },
    "properties": {
        "summary": {"type": "string"},
        "findings": {
            "type": "array",
            "items": {"$ref": "#/$defs/Finding"},
            "minItems": 4,
            "maxItems": 6,
        },
        "tags": {
            "type": "array",
            "items": {"type": "string", "enum": ["chemistry", "materials", "legal"]},
            "uniqueItems": True,
        },
        "next_step": {"type": ["string", "null"]},
        "priority": {"anyOf": [{"type": "null"}, {"type": "integer", "exclusiveMaximum": 3}]},
    },
    "required": ["summary", "findings", "tags"],
    "additionalProperties": False,
}


def _request(
    schema: dict[str, Any] | None = FINDINGS_SCHEMA, *, text: str = REQUEST, max_tokens: int = 4096
) -> ProviderRequest:
    return ProviderRequest(
        model="claude-sonnet-4-5",
        messages=(Message("system", "You are a patent analyst."), Message("user", text)),
        max_tokens=max_tokens,
        tier="execution",
        output_schema=schema,
    )


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


async def test_structured_reply_satisfies_a_nested_schema_with_refs() -> None:
    response = await OfflineProvider().complete(_request())

    data = extract_json(response.text)
    errors = list(Draft202012Validator(FINDINGS_SCHEMA).iter_errors(data))
    assert errors == []
    assert 4 <= len(data["findings"]) <= 6


async def test_same_prompt_gives_the_same_reply() -> None:
    provider = OfflineProvider()

    first = await provider.complete(_request())
    second = await provider.complete(_request())

    assert first == second


async def test_a_different_prompt_gives_a_different_reply() -> None:
    provider = OfflineProvider()

    first = await provider.complete(_request())
    other = await provider.complete(_request(text="Market sizing for electric cargo bikes"))

    assert first.text != other.text


async def test_free_text_strings_are_marked_simulated_and_use_the_prompts_words() -> None:
    response = await OfflineProvider().complete(_request())

    data = extract_json(response.text)
    assert data["summary"].startswith("[simulated] ")
    assert {"solder", "alloy"} <= set(" ".join(_strings(data)).lower().split())


async def test_reply_without_schema_is_a_marked_markdown_paragraph_about_the_prompt() -> None:
    response = await OfflineProvider().complete(_request(None))

    assert response.text.startswith("**[simulated]**")
    assert "solder" in response.text
    assert "\n" not in response.text.strip()


async def test_usage_estimates_input_from_the_messages_and_output_from_the_reply() -> None:
    request = _request()

    response = await OfflineProvider().complete(request)

    assert response.usage.input_tokens == estimate_messages(request.messages)
    assert response.usage.output_tokens == estimate_tokens(response.text)
    assert response.usage.cached_input_tokens == 0


async def test_paragraph_is_truncated_to_max_tokens() -> None:
    response = await OfflineProvider().complete(_request(None, max_tokens=12))

    assert estimate_tokens(response.text) <= 12
    assert response.usage.output_tokens <= 12


async def test_structured_reply_shrinks_to_fit_max_tokens_and_stays_valid() -> None:
    full = await OfflineProvider().complete(_request())
    budget = full.usage.output_tokens // 2

    response = await OfflineProvider().complete(_request(max_tokens=budget))

    assert estimate_tokens(response.text) <= budget
    assert (
        list(Draft202012Validator(FINDINGS_SCHEMA).iter_errors(extract_json(response.text))) == []
    )


async def test_structured_reply_too_big_to_fit_stays_valid_and_reports_max_tokens() -> None:
    response = await OfflineProvider().complete(_request(max_tokens=5))

    assert (
        list(Draft202012Validator(FINDINGS_SCHEMA).iter_errors(extract_json(response.text))) == []
    )
    assert response.usage.output_tokens == 5


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 5}}},
        {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}}},
        {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[0-9]+$"}}},
        {"type": "object", "properties": {"k": {"const": "fixed"}}, "required": ["k"]},
        {"type": "object", "minProperties": 2, "additionalProperties": {"type": "boolean"}},
        {"properties": {"pair": {"prefixItems": [{"type": "integer"}, {"type": "string"}]}}},
        {"type": "object", "allOf": [{"properties": {"a": {"type": "string"}}, "required": ["a"]}]},
    ],
)
async def test_structured_reply_honours_less_common_keywords(schema: dict[str, Any]) -> None:
    response = await OfflineProvider().complete(_request(schema))

    assert list(Draft202012Validator(schema).iter_errors(extract_json(response.text))) == []


async def test_simulated_latency_is_drawn_within_the_range_and_awaited() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    provider = OfflineProvider(latency_ms=(200, 800), sleep=fake_sleep)
    prompts = [f"{REQUEST}, variant {n}" for n in range(20)]

    for prompt in prompts:
        await provider.complete(_request(text=prompt))

    assert len(slept) == 20
    assert all(0.2 <= s <= 0.8 for s in slept)
    assert len(set(slept)) > 1


async def test_simulated_latency_is_the_same_for_the_same_prompt() -> None:
    provider = OfflineProvider(latency_ms=(0, 10_000))
    request = _request()

    assert provider.latency_for(request) == provider.latency_for(dataclasses.replace(request))


def test_offline_provider_is_labelled_as_a_simulation() -> None:
    provider = OfflineProvider()

    assert (provider.name, provider.simulated) == ("offline", True)


async def test_a_list_of_objects_covers_every_value_of_their_enum_property() -> None:
    checklist = ["Cites publication numbers", "Addresses three references", "Claims are structured"]
    schema = {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "minItems": len(checklist),
                "maxItems": len(checklist),
                "items": {
                    "type": "object",
                    "properties": {"item": {"enum": checklist}, "passed": {"type": "boolean"}},
                    "required": ["item", "passed"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["items"],
        "additionalProperties": False,
    }

    response = await OfflineProvider().complete(_request(schema))

    data = extract_json(response.text)
    assert sorted(entry["item"] for entry in data["items"]) == sorted(checklist)
