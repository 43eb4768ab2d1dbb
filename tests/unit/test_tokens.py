"""The reservation's input bound holds for any text a real BPE vocabulary counts: dense text,
other scripts, schemas — where four characters a token did not."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentfirm.domain.tools import ToolCall, ToolResult, ToolSpec
from agentfirm.router.base import Message, ProviderRequest
from agentfirm.router.tokens import estimate_messages, input_bound, json_len
from tests.fakes.metering import count_tokens, json_tokens

JAPANESE = (
    "四半期の売上は前年同期比で一二パーセント増加し、特に関東地域での新規顧客獲得が寄与した。" * 40
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "risks": {"type": "array"}},
    "required": ["summary", "risks"],
}


def request(*texts: str, schema: dict[str, Any] | None = None) -> ProviderRequest:
    messages = tuple(Message("user", t) for t in texts)
    return ProviderRequest("m", messages, 100, "execution", output_schema=schema)


def test_characters_by_four_under_counts_japanese_and_the_bound_does_not() -> None:
    tokens = count_tokens(JAPANESE)
    assert estimate_messages([Message("user", JAPANESE)]) < tokens
    assert input_bound(request(JAPANESE)) >= tokens


def test_the_schema_sent_is_part_of_the_bound() -> None:
    without, with_schema = input_bound(request("hi")), input_bound(request("hi", schema=SCHEMA))
    assert with_schema - without >= json_len(SCHEMA) >= json_tokens(SCHEMA)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=400), min_size=1, max_size=4))
def test_no_text_counts_more_tokens_than_its_bound(texts: list[str]) -> None:
    assert input_bound(request(*texts)) >= sum(count_tokens(t) for t in texts)


def test_tool_definitions_calls_and_results_are_part_of_the_bound() -> None:
    spec = ToolSpec("fetch_url", "Fetch a page.", {"type": "object", "properties": {}})
    result = Message("tool", "", tool_results=(ToolResult("c1", "fetch_url", "ページ" * 500),))
    plain = ProviderRequest("m", (Message("user", "hi"),), 100, "execution")
    offered = ProviderRequest("m", (Message("user", "hi"),), 100, "execution", tools=(spec,))
    answered = ProviderRequest("m", (Message("user", "hi"), result), 100, "execution")

    assert input_bound(offered) - input_bound(plain) >= json_len(spec.input_schema)
    assert input_bound(answered) - input_bound(plain) >= count_tokens("ページ" * 500)


def test_what_a_call_carries_back_to_its_provider_is_part_of_the_bound() -> None:
    """A call's signature goes back in the next request (an OpenAI reasoning model's reasoning
    items, Gemini 3's server-side search parts with their results), billed as input."""
    carried = json.dumps({"gemini_server_parts": [{"tool_response": {"response": "ページ" * 500}}]})
    bare = ToolCall("c1", "fetch_url", {"url": "https://example.com"})
    signed = ToolCall("c1", "fetch_url", {"url": "https://example.com"}, signature=carried)
    asked = [
        ProviderRequest(
            "m",
            (Message("user", "hi"), Message("assistant", "", tool_calls=(c,))),
            100,
            "execution",
        )
        for c in (bare, signed)
    ]

    assert input_bound(asked[1]) - input_bound(asked[0]) >= count_tokens(carried)


def test_a_schema_is_measured_in_utf8_bytes_of_its_compact_json() -> None:
    schema = {"type": "object", "description": "Prix en €, 四半期\n", "enum": [1, True, None, '"']}
    compact = json.dumps(schema, ensure_ascii=False, separators=(",", ":"))
    assert json_len(schema) == len(compact.encode("utf-8"))
