"""The router with tools: calls asking for tools skip the schema check, what leaves the process is
redacted, and the reservation covers the tool definitions sent."""

from __future__ import annotations

import pytest

from agentfirm.domain.tools import ToolCall, ToolResult, ToolSpec
from agentfirm.errors import BudgetExceeded
from agentfirm.router.base import Message, ProviderResponse, Usage
from agentfirm.router.tokens import estimate_messages, estimate_tools
from agentfirm.store.sqlite import SQLiteStore
from tests.unit.test_router import (
    MESSAGES,
    SCHEMA,
    ScriptedProvider,
    call,
    funded_task,
    make_router,
    store,
)

__all__ = ["store"]

FETCH = ToolSpec(
    "fetch_url",
    "Fetch a page.",
    {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]},
)
ASKS = ProviderResponse(
    "",
    Usage(input_tokens=20, output_tokens=5),
    "m",
    (ToolCall("c1", "fetch_url", {"url": "http://a"}, '{"url": "http://a"}'),),
)


async def test_a_reply_asking_for_tools_is_not_checked_against_the_schema(
    store: SQLiteStore,
) -> None:
    alpha = ScriptedProvider("alpha", [ASKS])
    task_id = await funded_task(store)
    result = await call(make_router(store, alpha), task_id, output_schema=SCHEMA, tools=[FETCH])
    assert result.data is None
    assert [c.name for c in result.tool_calls] == ["fetch_url"]
    assert len(alpha.requests) == 1  # no repair was asked for
    assert alpha.requests[0].tools == (FETCH,)


async def test_tool_results_and_arguments_are_redacted_before_sending(
    store: SQLiteStore,
) -> None:
    alpha = ScriptedProvider("alpha")
    task_id = await funded_task(store)
    secret = "sk-live-SECRET123"
    router = make_router(store, alpha, redact=lambda s: s.replace(secret, "[redacted]"))
    messages = [
        *MESSAGES,
        Message(
            "assistant",
            "",
            tool_calls=(ToolCall("c1", "fetch_url", {"url": f"http://a/?k={secret}"}, ""),),
        ),
        Message("tool", "", tool_results=(ToolResult("c1", "fetch_url", f"key: {secret}"),)),
    ]
    await router.call(tier="execution", messages=messages, task_id=task_id, tools=[FETCH])
    sent = alpha.requests[0].messages
    assert sent[-1].tool_results[0].content == "key: [redacted]"
    assert sent[-2].tool_calls[0].arguments == {"url": "http://a/?k=[redacted]"}


def test_tool_calls_results_and_definitions_count_as_input() -> None:
    plain = [*MESSAGES, Message("assistant", "")]
    with_calls = [
        *MESSAGES,
        Message("assistant", "", tool_calls=ASKS.tool_calls),
        Message("tool", "", tool_results=(ToolResult("c1", "fetch_url", "x" * 4000),)),
    ]
    assert estimate_messages(with_calls) > estimate_messages(plain) + 1000
    assert estimate_tools([FETCH]) > 0


async def test_the_reservation_covers_the_tool_definitions(store: SQLiteStore) -> None:
    """A ceiling that fits the call without tools refuses it with a large tool schema: the
    schemas are input the provider bills."""
    big = ToolSpec("big", "d" * 40_000, {"type": "object"})
    alpha = ScriptedProvider("alpha")
    # $1/Mtok: the chat (~30 tokens) and 2048 output tokens fit in 3 µ$; 10k tokens do not.
    task_id = await funded_task(store, ceiling_nano=3_000_000)
    router = make_router(store, alpha)
    await call(router, task_id)
    with pytest.raises(BudgetExceeded):
        await call(router, task_id, tools=[big])
    assert len(alpha.requests) == 1
