"""Gemini API (``POST /v1beta/models/{model}:generateContent``) on loopback."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.fakes.http_fake import Recorded, Reply, Responder
from tests.fakes.provider_fake import ProviderFake

_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True)
class GeminiUsage:
    """As Gemini reports it: ``prompt`` INCLUDES ``cached``; ``thoughts`` are billed as output."""

    prompt: int = 27
    candidates: int = 11
    cached: int = 0
    thoughts: int = 0


class GeminiFake(ProviderFake):
    route = re.compile(r"/v1beta/models/[^/:]+:generateContent")

    def model_of(self, request: Recorded) -> str:
        match = re.search(r"/models/([^/:]+):", request.path)
        return match[1] if match else "unknown-model"

    def success_body(
        self, request: Recorded, *, text: str | None, data: dict[str, Any] | None, usage: Any
    ) -> dict[str, Any]:
        tokens = usage if isinstance(usage, GeminiUsage) else GeminiUsage()
        content = json.dumps(data) if data is not None else text
        metadata: dict[str, Any] = {
            "promptTokenCount": tokens.prompt,
            "candidatesTokenCount": tokens.candidates,
            "totalTokenCount": tokens.prompt + tokens.candidates + tokens.thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens.prompt}],
        }
        if tokens.cached:
            metadata["cachedContentTokenCount"] = tokens.cached
            metadata["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": tokens.cached}]
        if tokens.thoughts:
            metadata["thoughtsTokenCount"] = tokens.thoughts
        return {
            "candidates": [
                {
                    "content": {"parts": [{"text": content}], "role": "model"},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": metadata,
            "modelVersion": self.model_of(request),
            "responseId": "mAitaLmkHPPlz7IPvtfUqQ4",
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {
            "error": {
                "code": status,
                "message": message,
                "status": _STATUSES.get(status, "UNKNOWN"),
            }
        }

    def rate_limited(self, retry_after: float | None = 2) -> Reply:
        """Gemini says when to retry in a ``RetryInfo`` detail rather than a header."""
        body = self.error_body(429, "Resource has been exhausted (e.g. check quota).")
        if retry_after is not None:
            body["error"]["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{retry_after:g}s",
                }
            ]
        return Reply(429, body)

    def invalid_key(self) -> Reply:
        """What Gemini really answers to a bad key: 400 with reason ``API_KEY_INVALID``."""
        body = self.error_body(400, "API key not valid. Please pass a valid API key.")
        body["error"]["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ]
        return Reply(400, body)

    def grounded(
        self,
        text: str,
        *,
        uri: str,
        title: str,
        query: str = "search",
        queries: int = 1,
        usage: GeminiUsage | None = None,
    ) -> Responder:
        """An answer grounded by Google Search: ``text`` with the page and ``queries`` search
        queries in the candidate's ``groundingMetadata``, as the API returns it. Like the API,
        it grounds only a request that carries the ``google_search`` tool: any other gets the
        plain answer."""

        def respond(request: Recorded) -> Reply:
            body = self.success_body(request, text=text, data=None, usage=usage)
            if not searches(request):
                return Reply(200, body)
            body["candidates"][0]["groundingMetadata"] = {
                "webSearchQueries": [query] + [f"{query} ({n})" for n in range(2, queries + 1)],
                "groundingChunks": [{"web": {"uri": uri, "title": title}}],
                "groundingSupports": [
                    {
                        "segment": {"startIndex": 0, "endIndex": len(text), "text": text},
                        "groundingChunkIndices": [0],
                    }
                ],
            }
            return Reply(200, body)

        return respond


def searches(request: Recorded) -> bool:
    """Whether ``request`` carries the ``google_search`` grounding tool."""
    body = request.body if isinstance(request.body, dict) else {}
    tools = body.get("tools") or []
    return any(isinstance(tool, dict) and "googleSearch" in tool for tool in tools)
