"""``anthropic``: the Messages API through the official SDK (``anthropic.AsyncAnthropic``).

Structured output is a forced tool call whose ``input_schema`` is the caller's schema: it works on
every Claude model and with any object schema (the native ``output_config`` format needs a
strict-shaped schema and a recent model). Prompt caching: every ``Message(cache=True)`` becomes an
ephemeral ``cache_control`` breakpoint (at most four, the last ones); with none marked, the last
system message is the breakpoint, so sibling sub-agents sharing a system prompt share its cache.
Web search: a free-text request that allows it (``ProviderRequest.web_search``) carries the
server tool ``web_search_20250305``; the answer's web citations are appended to its text. A
structured request never searches: its forced output tool would be the model's first and only
move.

Tools: each ``ToolSpec`` becomes a client tool; an assistant message's tool calls become
``tool_use`` blocks and a ``tool`` message's results one user turn of ``tool_result`` blocks. With
tools and an output schema the output tool is offered beside them and the model must use one of
them (``tool_choice: any``): it either asks for tools or records its answer. With web search too
the choice is left to the model, which may search first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentfirm.domain.tools import ToolCall, ToolSpec
from agentfirm.router.base import Message, ProviderRequest, ProviderResponse, Usage
from agentfirm.router.providers._common import (
    SdkProvider,
    connection_failed,
    malformed,
    markdown_links,
    retry_after_s,
    status_error,
    timed_out,
)

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from anthropic.types import Message as AnthropicMessage
    from anthropic.types import TextBlock
    from anthropic.types import Usage as AnthropicUsage

NAME = "anthropic"
KEY_NAMES = ("ANTHROPIC_API_KEY",)
OUTPUT_TOOL = "emit_output"
MAX_BREAKPOINTS = 4
"""Anthropic refuses a request with more than four ``cache_control`` blocks."""
MAX_WEB_SEARCHES = 3
WEB_SEARCH_TOOL = {
    "type": "web_search_20250305",
    "name": "web_search",
    "max_uses": MAX_WEB_SEARCHES,
}
"""The server-side search tool. ``max_uses`` bounds the searches (billed per search) a call
may make."""
_EPHEMERAL = {"type": "ephemeral"}


def cache_breakpoints(messages: Sequence[Message]) -> set[int]:
    """Indices of the messages that end a cacheable prefix (see the module docstring)."""
    marked = [i for i, m in enumerate(messages) if m.cache]
    if not marked:
        marked = [i for i, m in enumerate(messages) if m.role == "system"][-1:]
    return set(marked[-MAX_BREAKPOINTS:])


def _block(message: Message, cached: bool) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": message.content}
    if cached:
        block["cache_control"] = dict(_EPHEMERAL)
    return block


def _turn(message: Message, cached: bool) -> dict[str, Any]:
    """One user or assistant turn; tool calls become ``tool_use`` blocks, tool results
    ``tool_result`` blocks of a user turn."""
    if message.role == "tool":
        blocks: list[dict[str, Any]] = [
            {
                "type": "tool_result",
                "tool_use_id": r.call_id,
                "content": r.content,
                "is_error": r.is_error,
            }
            for r in message.tool_results
        ]
        if cached and blocks:
            blocks[-1]["cache_control"] = dict(_EPHEMERAL)
        return {"role": "user", "content": blocks}
    if message.tool_calls:
        blocks = [_block(message, cached)] if message.content else []
        blocks += [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments or {}}
            for c in message.tool_calls
        ]
        return {"role": message.role, "content": blocks}
    content: Any = [_block(message, cached)] if cached else message.content
    return {"role": message.role, "content": content}


def _tool(spec: ToolSpec) -> dict[str, Any]:
    return {"name": spec.name, "description": spec.description, "input_schema": spec.input_schema}


def _output_tool(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": OUTPUT_TOOL,
        "description": "Record your answer: one object matching the input schema.",
        "input_schema": schema,
    }


def request_params(request: ProviderRequest) -> dict[str, Any]:
    """The ``messages.create`` arguments for ``request`` (timeout aside)."""
    breakpoints = cache_breakpoints(request.messages)
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(request.messages):
        cached = index in breakpoints
        if message.role == "system":
            system.append(_block(message, cached))
        else:
            turns.append(_turn(message, cached))
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": turns,
    }
    if system:
        params["system"] = system
    if request.tools:
        tools = [_tool(spec) for spec in request.tools]
        if request.web_search:
            tools.append(dict(WEB_SEARCH_TOOL))
        if request.output_schema is not None:
            tools.append(_output_tool(request.output_schema))
            if not request.web_search:
                params["tool_choice"] = {"type": "any"}
        params["tools"] = tools
    elif request.output_schema is not None:
        params["tools"] = [_output_tool(request.output_schema)]
        params["tool_choice"] = {"type": "tool", "name": OUTPUT_TOOL}
    elif request.web_search:
        params["tools"] = [dict(WEB_SEARCH_TOOL)]
    return params


def usage_of(usage: AnthropicUsage) -> Usage:
    """Anthropic's ``input_tokens`` excludes cache reads and writes; ours is the total. Web
    searches (billed per search) are ``server_tool_use.web_search_requests``."""
    read = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    server_tools = usage.server_tool_use
    return Usage(
        input_tokens=usage.input_tokens + read + written,
        cached_input_tokens=read,
        output_tokens=usage.output_tokens,
        cache_write_tokens=written,
        web_searches=server_tools.web_search_requests if server_tools is not None else 0,
    )


def _with_citations(block: TextBlock) -> str:
    """A text block with the web pages it cites appended as markdown links, so the sources
    survive into the plain text a caller keeps."""
    links = markdown_links(
        (c.title, c.url) for c in block.citations or () if c.type == "web_search_result_location"
    )
    return block.text + (" (" + "; ".join(links) + ")" if links else "")


def tool_calls_of(message: AnthropicMessage) -> tuple[ToolCall, ...]:
    """The client tools the model asked for (the output tool is the answer, not a call). An
    input that is not an object is kept raw, for the caller to ask for a repair."""
    calls = []
    for block in message.content:
        if block.type == "tool_use" and block.name != OUTPUT_TOOL:
            raw = json.dumps(block.input, ensure_ascii=False)
            arguments = block.input if isinstance(block.input, dict) else None
            calls.append(ToolCall(block.id, block.name, arguments, raw))
    return tuple(calls)


def sources_of(message: AnthropicMessage) -> tuple[str, ...]:
    """Every web page the reply's text cites, as markdown links: a structured answer (the
    forced tool's input) cannot carry the citations of the text said before it."""
    return tuple(
        markdown_links(
            (c.title, c.url)
            for block in message.content
            if block.type == "text"
            for c in block.citations or ()
            if c.type == "web_search_result_location"
        )
    )


def text_of(message: AnthropicMessage) -> str:
    """The forced tool call's input as JSON when there is one, else the text blocks (with their
    web citations, after a search)."""
    for block in message.content:
        if block.type == "tool_use" and block.name == OUTPUT_TOOL:
            return json.dumps(block.input)
    return "".join(_with_citations(block) for block in message.content if block.type == "text")


class AnthropicProvider(SdkProvider["AsyncAnthropic"]):
    """Calls Anthropic with the key ``get_secret`` returns at call time. The SDK's own retries
    are off (the router retries and falls back); each call has an explicit timeout."""

    name = NAME
    sdk_module = "anthropic"
    key_names = KEY_NAMES
    writes_cache = True

    def max_web_searches(self, model: str) -> int:
        """Every Claude model has the search tool; ``max_uses`` bounds it."""
        return MAX_WEB_SEARCHES

    def _new_client(self, key: str) -> AsyncAnthropic:
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(api_key=key, base_url=self._base_url, max_retries=0)

    async def _send(
        self, request: ProviderRequest, client: AsyncAnthropic, key_env: str
    ) -> ProviderResponse:
        import anthropic

        try:
            reply = await client.messages.create(
                **request_params(request), timeout=request.timeout_s
            )
        except anthropic.APIStatusError as exc:
            raise status_error(
                provider=NAME,
                status=exc.status_code,
                message=exc.api_message or exc.message,
                key_env=key_env,
                retry_after=retry_after_s(exc.response.headers),
            ) from exc
        except anthropic.APITimeoutError as exc:
            raise timed_out(NAME, request.timeout_s) from exc
        except anthropic.APIConnectionError as exc:
            raise connection_failed(NAME, exc.__cause__ or exc) from exc
        except (anthropic.APIResponseValidationError, json.JSONDecodeError) as exc:
            raise malformed(NAME, exc) from exc
        try:
            return ProviderResponse(
                text_of(reply),
                usage_of(reply.usage),
                reply.model,
                tool_calls_of(reply),
                sources_of(reply),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            # The SDK builds a 200's reply without checking its shape: one missing its content
            # or usage fails only here, and is as malformed as a body cut short.
            raise malformed(NAME, exc) from exc

    async def _close_client(self, client: AsyncAnthropic) -> None:
        await client.close()
