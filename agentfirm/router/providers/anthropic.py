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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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
            content: Any = [_block(message, cached)] if cached else message.content
            turns.append({"role": message.role, "content": content})
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": turns,
    }
    if system:
        params["system"] = system
    if request.output_schema is not None:
        params["tools"] = [
            {
                "name": OUTPUT_TOOL,
                "description": "Record your answer: one object matching the input schema.",
                "input_schema": request.output_schema,
            }
        ]
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
    max_web_searches = MAX_WEB_SEARCHES

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
            return ProviderResponse(text_of(reply), usage_of(reply.usage), reply.model)
        except (AttributeError, TypeError, ValueError) as exc:
            # The SDK builds a 200's reply without checking its shape: one missing its content
            # or usage fails only here, and is as malformed as a body cut short.
            raise malformed(NAME, exc) from exc

    async def _close_client(self, client: AsyncAnthropic) -> None:
        await client.close()
