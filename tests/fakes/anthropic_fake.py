"""Anthropic Messages API (``POST /v1/messages``) on loopback."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.fakes.http_fake import Recorded, Reply, Responder
from tests.fakes.metering import TOOL_PROMPT_TOKENS, Billed, prompt_tokens
from tests.fakes.provider_fake import ProviderFake, ScriptedCall

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def sent_key(request: Recorded) -> str | None:
    """The API key a request carried: ``x-api-key``, or a bearer token (newer SDKs send that)."""
    if "x-api-key" in request.headers:
        return request.headers["x-api-key"]
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else None


@dataclass(frozen=True)
class AnthropicUsage:
    """As Anthropic reports it: ``input_tokens`` EXCLUDES cache reads and writes."""

    input_tokens: int = 31
    output_tokens: int = 12
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    web_search_requests: int = 1
    """Reported (as ``server_tool_use``) only when the request carried the web search tool."""


class AnthropicFake(ProviderFake):
    route = re.compile(r"/v1/messages")

    def success_body(
        self, request: Recorded, *, text: str | None, data: dict[str, Any] | None, usage: Any
    ) -> dict[str, Any]:
        body = request.body if isinstance(request.body, dict) else {}
        if isinstance(usage, AnthropicUsage):
            tokens = usage
        else:
            metered = self.metered(request, json.dumps(data) if data is not None else text or "")
            tokens = AnthropicUsage(metered.input_tokens, metered.output_tokens)
        content: list[dict[str, Any]]
        offered = {tool.get("name") for tool in body.get("tools") or ()}
        forced = (body.get("tool_choice") or {}).get("name") or (
            "emit_output" if "emit_output" in offered else None
        )
        if data is not None and forced:
            content = [{"type": "tool_use", "id": "toolu_01A", "name": forced, "input": data}]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": json.dumps(data) if data is not None else text}]
            stop = "end_turn"
        reply: dict[str, Any] = {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": self.model_of(request),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": tokens.input_tokens,
                "output_tokens": tokens.output_tokens,
                "cache_read_input_tokens": tokens.cache_read_input_tokens,
                "cache_creation_input_tokens": tokens.cache_creation_input_tokens,
                "service_tier": "standard",
            },
        }
        if any(tool.get("type", "").startswith("web_search_") for tool in body.get("tools", ())):
            reply["usage"]["server_tool_use"] = {
                "web_search_requests": tokens.web_search_requests,
                "web_fetch_requests": 0,
            }
        return reply

    def tool_call_body(self, request: Recorded, calls: list[ScriptedCall]) -> dict[str, Any]:
        """``tool_use`` blocks; Anthropic's input is always an object, so a string stands for an
        object the tool's schema refuses (``{"input": the string}``)."""
        body = self.success_body(request, text="Let me look that up.", data=None, usage=None)
        body["content"] = [{"type": "text", "text": "Let me look that up."}] + [
            {
                "type": "tool_use",
                "id": call_id,
                "name": name,
                "input": args if isinstance(args, dict) else {"input": args},
            }
            for call_id, name, args in calls
        ]
        body["stop_reason"] = "tool_use"
        return body

    def input_tokens(self, body: dict[str, Any]) -> int:
        tools = body.get("tools") or []
        texts = [
            *_texts(body.get("system")),
            *(t for m in body.get("messages", ()) for t in _texts(m.get("content"))),
        ]
        return prompt_tokens(texts, tools, extra=TOOL_PROMPT_TOKENS if tools else 0)

    def max_output(self, body: dict[str, Any]) -> int:
        return int(body.get("max_tokens", 0))

    def billed_of(self, request: Recorded, reply: dict[str, Any]) -> Billed | None:
        usage = reply.get("usage")
        if not isinstance(usage, dict):
            return None
        read = usage.get("cache_read_input_tokens") or 0
        written = usage.get("cache_creation_input_tokens") or 0
        server_tools = usage.get("server_tool_use") or {}
        return Billed(
            model=self.model_of(request),
            input_tokens=usage["input_tokens"] + read + written,
            output_tokens=usage["output_tokens"],
            cached_input_tokens=read,
            cache_write_tokens=written,
            web_searches=server_tools.get("web_search_requests", 0),
        )

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = _ERROR_TYPES.get(status, "api_error")
        return {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
        }

    def overloaded(self) -> Reply:
        return self.error(529, "Overloaded")

    def searched(
        self,
        text: str,
        *,
        url: str,
        title: str,
        query: str = "search",
        data: dict[str, Any] | None = None,
    ) -> Responder:
        """An answer after one server-side web search: the ``server_tool_use`` and
        ``web_search_tool_result`` blocks, then ``text`` citing the page, as the API returns
        them; with ``data``, then the forced output tool's call carrying it."""

        def respond(request: Recorded) -> Reply:
            body = self.success_body(request, text=text, data=data, usage=None)
            answer = [b for b in body["content"] if b["type"] == "tool_use"]
            body["content"] = [
                {
                    "type": "server_tool_use",
                    "id": "srvtoolu_01WYG3ziw53XMcoyKL4XcZmE",
                    "name": "web_search",
                    "input": {"query": query},
                },
                {
                    "type": "web_search_tool_result",
                    "tool_use_id": "srvtoolu_01WYG3ziw53XMcoyKL4XcZmE",
                    "content": [
                        {
                            "type": "web_search_result",
                            "url": url,
                            "title": title,
                            "encrypted_content": "EqgfCioIARgBIiQ3YTAwMjY1Mi1mZjM5",
                            "page_age": "April 30, 2025",
                        }
                    ],
                },
                {
                    "type": "text",
                    "text": text,
                    "citations": [
                        {
                            "type": "web_search_result_location",
                            "url": url,
                            "title": title,
                            "encrypted_index": "Eo8BCioIAhgBIiQyYjQ0OWJmZi1lNm",
                            "cited_text": text[:150],
                        }
                    ],
                },
                *answer,
            ]
            return Reply(200, body)

        return respond


def _texts(content: Any) -> list[str]:
    """The texts of a ``system`` or message ``content``: a string, or a list of blocks."""
    if isinstance(content, str):
        return [content]
    # A tool call or result counts as what was sent of it.
    blocks = [b for b in content or () if isinstance(b, dict)]
    return [b["text"] if "text" in b else json.dumps(b) for b in blocks]
