"""OpenAI's own web search: a request that allows search (``ProviderRequest.web_search``), to an
OpenAI model that has the tool, goes through the Responses API (``client.responses.create``)
with the ``web_search`` tool, since Chat Completions offers search only on dedicated models.

The chat becomes Responses input items (an assistant's tool calls ``function_call`` items, each
result a ``function_call_output``); function tools and the structured output (``text.format``,
``json_schema``) are the same as on Chat Completions. ``max_tool_calls`` bounds the built-in
tool calls a response may make, so the router can reserve their fees (``MAX_WEB_SEARCHES``);
each ``web_search_call`` in the output is billed as a search (genai-prices' per-search fee).
A free-text answer keeps the pages it cites as markdown links; a structured one, whose text must
stay the JSON, carries them in ``ProviderResponse.sources``. Nothing is stored at OpenAI
(``store: false``): every turn sends the whole chat, as on Chat Completions.

Reasoning models (o-series, GPT-5) think before they call a function, and want that reasoning
back with the call in the next turn of a tool loop (OpenAI's reasoning guide): without it they
reason again from scratch, or refuse the call's output. With nothing stored, a reasoning item is
only usable with its ``encrypted_content``, asked for with ``include``. The reasoning items that
came before a function call travel with it as its ``ToolCall.signature`` (JSON, under
``REASONING_KEY``; journaled with the call, so a resumed loop sends them too) and go back in
``input`` just before it. Only reasoning models get ``include``: the others refuse it. The
``web_search_call`` items are not sent back: their ids are unknown to a stateless API.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agentfirm.domain.tools import ToolCall
from agentfirm.router.base import Message, ProviderRequest, ProviderResponse, Usage
from agentfirm.router.providers._common import markdown_links

if TYPE_CHECKING:
    from openai.types.responses import Response

MAX_WEB_SEARCHES = 3
"""The most built-in tool calls (searches) one response may make (``max_tool_calls``)."""
WEB_SEARCH_TOOL = {"type": "web_search"}
_SEARCH_MODELS = ("gpt-4o", "gpt-4.1", "gpt-5", "o3", "o4")
_NO_SEARCH = ("gpt-4.1-nano", "gpt-4o-audio", "gpt-4o-realtime", "gpt-4o-transcribe")


REASONING_KEY = "openai_reasoning"
"""The key under which a ``ToolCall.signature`` carries the reasoning items before the call."""
ENCRYPTED_REASONING = "reasoning.encrypted_content"
_REASONING_MODELS = ("o1", "o3", "o4", "gpt-5")
_NOT_REASONING = ("gpt-5-chat",)


def reasons(model: str) -> bool:
    """Whether ``model`` is a reasoning model, whose reasoning items a tool loop hands back."""
    return model.startswith(_REASONING_MODELS) and not model.startswith(_NOT_REASONING)


def _reasoning_of(signature: str) -> list[dict[str, Any]]:
    """The reasoning items a call's signature carries; none for another provider's signature
    (a turn served by Gemini before a fallback) or none at all."""
    if not signature.startswith("{"):
        return []
    try:
        carried = json.loads(signature)
    except ValueError:
        return []
    items = carried.get(REASONING_KEY) if isinstance(carried, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def searches_on(model: str) -> bool:
    """Whether OpenAI's ``web_search`` tool serves ``model`` (OpenAI's tool guide: the GPT-4o,
    GPT-4.1 and GPT-5 families and the o3/o4 reasoning models, not gpt-4.1-nano)."""
    return model.startswith(_SEARCH_MODELS) and not model.startswith(_NO_SEARCH)


def _items(message: Message) -> list[dict[str, Any]]:
    """The Responses input items for one of our messages."""
    if message.role == "tool":
        return [
            {"type": "function_call_output", "call_id": r.call_id, "output": r.content}
            for r in message.tool_results
        ]
    items: list[dict[str, Any]] = []
    if message.content or not message.tool_calls:
        items.append({"role": message.role, "content": message.content})
    for call in message.tool_calls:
        items += _reasoning_of(call.signature)
        arguments = call.raw_arguments or json.dumps(call.arguments, ensure_ascii=False)
        items.append(
            {"type": "function_call", "call_id": call.id, "name": call.name, "arguments": arguments}
        )
    return items


def responses_params(request: ProviderRequest, *, strict: bool) -> dict[str, Any]:
    """The ``responses.create`` arguments for ``request`` (timeout aside), web search on.
    ``strict``: the output schema has the shape strict mode demands."""
    tools: list[dict[str, Any]] = [
        {
            "type": "function",
            "name": spec.name,
            "description": spec.description,
            "parameters": spec.input_schema,
            "strict": False,
        }
        for spec in request.tools
    ]
    tools.append(dict(WEB_SEARCH_TOOL))
    params: dict[str, Any] = {
        "model": request.model,
        "input": [item for m in request.messages for item in _items(m)],
        "max_output_tokens": request.max_tokens,
        "tools": tools,
        "max_tool_calls": MAX_WEB_SEARCHES,
        "store": False,
    }
    if reasons(request.model):
        params["include"] = [ENCRYPTED_REASONING]
    if request.output_schema is not None:
        params["text"] = {
            "format": {
                "type": "json_schema",
                "name": "output",
                "schema": request.output_schema,
                "strict": strict,
            }
        }
    return params


def _call(item: Any, reasoning: list[dict[str, Any]]) -> ToolCall:
    raw = item.arguments or ""
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except ValueError:
        parsed = None
    signature = json.dumps({REASONING_KEY: reasoning}) if reasoning else ""
    arguments = parsed if isinstance(parsed, dict) else None
    return ToolCall(item.call_id, item.name, arguments, raw, signature)


def _reasoning_item(item: Any) -> dict[str, Any]:
    """A reasoning output item as an input item: what the API needs to recognise it statelessly
    (its id, summary and encrypted content; ``status`` and plain ``content`` are output only)."""
    return {
        "type": "reasoning",
        "id": item.id,
        "summary": [{"type": "summary_text", "text": part.text} for part in item.summary],
        "encrypted_content": item.encrypted_content,
    }


def response_of(reply: Response, request: ProviderRequest) -> ProviderResponse:
    """Our response for a Responses API reply: its text (with the pages cited, for a free-text
    answer), the pages cited (``sources``), the function calls it asks for (each with the
    reasoning before it), and its usage with one search per ``web_search_call``. Raises
    ``ValueError`` (or ``AttributeError``/``TypeError``) for a reply not in shape."""
    texts: list[str] = []
    pages: list[tuple[str | None, str]] = []
    calls: list[ToolCall] = []
    reasoning: list[dict[str, Any]] = []
    searches = 0
    for item in reply.output or ():
        if item.type == "web_search_call":
            searches += 1
        elif item.type == "reasoning" and item.encrypted_content is not None:
            # Without its encrypted content a reasoning item cannot go back (nothing is stored:
            # the API answers 404 for it), and a call without its reasoning is still accepted.
            reasoning.append(_reasoning_item(item))
        elif item.type == "function_call":
            calls.append(_call(item, reasoning))
            reasoning = []
        elif item.type == "message":
            for part in item.content:
                if part.type == "output_text":
                    texts.append(part.text)
                    pages += [
                        (a.title, a.url) for a in part.annotations if a.type == "url_citation"
                    ]
                elif part.type == "refusal":
                    texts.append(part.refusal)
    text = "".join(texts)
    links = markdown_links(pages)
    if links and request.output_schema is None:
        text += "\n\nSources: " + "; ".join(links)
    usage = reply.usage
    if usage is None:
        raise ValueError("the reply has no usage")
    details = usage.input_tokens_details
    return ProviderResponse(
        text,
        Usage(
            input_tokens=usage.input_tokens,
            cached_input_tokens=(details.cached_tokens or 0) if details is not None else 0,
            output_tokens=usage.output_tokens,
            web_searches=searches,
        ),
        reply.model,
        tuple(calls),
        tuple(links),
    )
