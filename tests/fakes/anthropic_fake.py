"""Anthropic Messages API (``POST /v1/messages``) on loopback."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.fakes.http_fake import Recorded, Reply, Responder
from tests.fakes.provider_fake import ProviderFake

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
        tokens = usage if isinstance(usage, AnthropicUsage) else AnthropicUsage()
        content: list[dict[str, Any]]
        forced = (body.get("tool_choice") or {}).get("name")
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

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = _ERROR_TYPES.get(status, "api_error")
        return {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
        }

    def overloaded(self) -> Reply:
        return self.error(529, "Overloaded")

    def searched(self, text: str, *, url: str, title: str, query: str = "search") -> Responder:
        """An answer after one server-side web search: the ``server_tool_use`` and
        ``web_search_tool_result`` blocks, then ``text`` citing the page, as the API returns
        them."""

        def respond(request: Recorded) -> Reply:
            body = self.success_body(request, text=text, data=None, usage=None)
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
            ]
            return Reply(200, body)

        return respond
