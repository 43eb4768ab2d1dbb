"""Token counts for text we have not sent yet.

``input_bound``: the most input tokens a request can be billed for, used for budget
reservations. It counts UTF-8 bytes: every token of a byte-level BPE vocabulary (OpenAI's,
Anthropic's) or of a SentencePiece vocabulary with byte fallback (Gemini's) stands for at least
one byte of the text, so a text of N bytes is at most N tokens in any script — Japanese, code,
base64 or digits alike. On top come the tokens a provider adds that the text does not show:
role markers per message, a system prompt when tools or structured output are in play, and for a
searched call the result pages it reads (an allowance: those pages are not known in advance).
``bench/reservation_bound.py`` measures how pessimistic the bound is on the shipped personas.

``estimate_*``: about four characters a token, as for English with common BPE vocabularies —
the offline provider's simulated usage and plan estimates, never a reservation. Providers' own
counts replace both once a call has run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic_core import to_json

from agentfirm.domain.tools import ToolSpec
from agentfirm.router.base import Message, ProviderRequest

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
"""Role markers and separators each chat message costs on top of its content (estimates)."""
TOOL_OVERHEAD_TOKENS = 8
"""What each tool definition, tool call or tool result costs on top of its text (the
protocol's wrapping: ids, type markers, the name)."""

BOUND_MESSAGE_OVERHEAD_TOKENS = 8
"""Role markers and separators a message may cost at most, on top of its bytes."""
BOUND_REQUEST_OVERHEAD_TOKENS = 16
"""Start and end markers of the whole prompt."""
BOUND_TOOL_OVERHEAD_TOKENS = 16
"""The wrapping of one tool definition, call or result (ids, type markers), on top of its
bytes."""
BOUND_TOOLS_OVERHEAD_TOKENS = 512
"""The system prompt a provider adds when a request carries tools or a schema to answer with
(Anthropic documents 346 tokens for a forced tool call on its current models)."""
BOUND_SEARCH_INPUT_TOKENS = 10_000
"""Input each web search may add (the result pages the model reads). Not a bound — the pages are
unknown in advance — but an allowance: a searched call that reads more is booked in full all the
same, and the router reports the overrun."""


def estimate_tokens(text: str) -> int:
    """About ``len(text) / 4`` tokens, rounded up; at least 1."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def _message_tokens(message: Message) -> int:
    tokens = estimate_tokens(message.content) + MESSAGE_OVERHEAD_TOKENS
    for call in message.tool_calls:
        arguments = call.raw_arguments or json.dumps(call.arguments, ensure_ascii=False)
        tokens += estimate_tokens(call.name + arguments) + TOOL_OVERHEAD_TOKENS
    for result in message.tool_results:
        tokens += estimate_tokens(result.content) + TOOL_OVERHEAD_TOKENS
    return tokens


def estimate_messages(messages: Iterable[Message]) -> int:
    """Input tokens of a chat: every message's content, tool calls and tool results, plus a
    small per-message overhead."""
    return sum(_message_tokens(m) for m in messages)


def estimate_tools(tools: Iterable[ToolSpec]) -> int:
    """Input tokens the tool definitions of a request cost: each one's name, description and
    argument schema as sent."""
    return sum(
        estimate_tokens(t.name + t.description + json.dumps(t.input_schema, ensure_ascii=False))
        + TOOL_OVERHEAD_TOKENS
        for t in tools
    )


def utf8_len(text: str) -> int:
    """The UTF-8 size of ``text`` in bytes (without encoding it when it is ASCII)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def json_len(value: Any) -> int:
    """The UTF-8 size of ``value`` as compact JSON: a schema or a tool's definition as sent.

    Serialised by pydantic-core, some seven times faster than ``json.dumps`` (a module's schema
    took 70-100 us a call that way, a fifth of what the router added): the same bytes but for
    a float's notation, a byte or two either way. What it cannot serialise ``json`` tries."""
    try:
        return len(to_json(value))
    except ValueError:  # pydantic-core's serialisation error is one
        return utf8_len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _message_bound(message: Message) -> int:
    tokens = utf8_len(message.content) + BOUND_MESSAGE_OVERHEAD_TOKENS
    for call in message.tool_calls:
        arguments = call.raw_arguments or json.dumps(call.arguments, ensure_ascii=False)
        # The signature goes back too (reasoning items, Gemini 3's search parts): billed input.
        tokens += utf8_len(call.id + call.name + arguments + call.signature)
        tokens += BOUND_TOOL_OVERHEAD_TOKENS
    for result in message.tool_results:
        tokens += utf8_len(result.call_id + result.content) + BOUND_TOOL_OVERHEAD_TOKENS
    return tokens


def input_bound(
    request: ProviderRequest, *, searches: int = 0, schema_size: int | None = None
) -> int:
    """The most input tokens ``request`` can be billed for, whichever tokenizer counts them: its
    messages' bytes (tool calls and results included), its tools' definitions and output schema
    as JSON, per-message and per-request overheads, the tool-use system prompt when it carries
    tools or a schema, and ``searches`` web searches' allowance (``BOUND_SEARCH_INPUT_TOKENS``
    each, with the search tool's own definition). ``schema_size``: the output schema's
    ``json_len``, when the caller knows it already."""
    tokens = BOUND_REQUEST_OVERHEAD_TOKENS + sum(_message_bound(m) for m in request.messages)
    for tool in request.tools:
        definition = json_len(tool.input_schema) + utf8_len(tool.name + tool.description)
        tokens += definition + BOUND_TOOL_OVERHEAD_TOKENS
    if request.output_schema is not None:
        tokens += json_len(request.output_schema) if schema_size is None else schema_size
    if request.output_schema is not None or request.tools:
        tokens += BOUND_TOOLS_OVERHEAD_TOKENS
    if searches:
        tokens += BOUND_TOOLS_OVERHEAD_TOKENS + searches * BOUND_SEARCH_INPUT_TOKENS
    return tokens
