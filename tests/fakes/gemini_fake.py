"""Gemini API (``POST /v1beta/models/{model}:generateContent``) on loopback.

Search beside functions: it refuses a request declaring functions with the ``googleSearch`` tool
to a model before Gemini 3, and to Gemini 3 unless ``toolConfig.includeServerSideToolInvocations``
is set; ``searched_call`` answers such a request with its search as ``toolCall``/``toolResponse``
parts before the function call, and a later request that sends that call back without those
parts (unchanged, signatures and all) just before it is refused. The refusals' wording is the
fake's own; what they refuse is what Google's tool-combination guide requires."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.fakes.http_fake import Recorded, Reply, Responder
from tests.fakes.metering import SCHEMA_PROMPT_TOKENS, Billed, prompt_tokens
from tests.fakes.provider_fake import ProviderFake, ScriptedCall

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

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # function call id → the server-side tool parts issued before it
        self.server_parts: dict[str, list[dict[str, Any]]] = {}

    def reset(self) -> None:
        super().reset()
        self.server_parts.clear()

    def shape_refusal(self, request: Recorded) -> Reply | None:
        body = request.body
        if not self.route.fullmatch(request.path) or not isinstance(body, dict):
            return None
        if searches(request) and _declared(request):
            if not self.model_of(request).startswith("gemini-3"):
                return self.error(400, "Tool use with function calling is unsupported")
            config = body.get("toolConfig") or {}
            if config.get("includeServerSideToolInvocations") is not True:
                return self.error(
                    400,
                    "Built-in tools combined with function calling need "
                    "tool_config.include_server_side_tool_invocations set to true",
                )
        for content in body.get("contents") or ():
            parts = [p for p in (content or {}).get("parts") or () if isinstance(p, dict)]
            for n, part in enumerate(parts):
                call_id = (part.get("functionCall") or {}).get("id")
                issued = self.server_parts.get(str(call_id))
                before = [server_part(p) for p in parts[max(n - len(issued or ()), 0) : n]]
                if issued and before != issued:
                    return self.error(
                        400,
                        f"Function call {call_id} must be preceded by the server-side tool call "
                        "and response parts returned with it, unchanged",
                    )
        return None

    def searched_call(self, call: ScriptedCall, *, query: str, uri: str, title: str) -> Responder:
        """Gemini 3 searching beside functions: one Google search, shown as server-side
        ``toolCall``/``toolResponse`` parts, then ``call``; grounded on the page found."""

        def respond(request: Recorded) -> Reply:
            call_id = call[0]
            body = self.tool_call_body(request, [call])
            server = [
                {
                    "toolCall": {
                        "id": "srv_1",
                        "toolType": "GOOGLE_SEARCH_WEB",
                        "args": {"queries": [query]},
                    },
                    "thoughtSignature": "c2VydmVyLWNhbGw=",
                },
                {
                    "toolResponse": {
                        "id": "srv_1",
                        "toolType": "GOOGLE_SEARCH_WEB",
                        "response": {"results": [{"title": title, "uri": uri}]},
                    },
                    "thoughtSignature": "c2VydmVyLXJlc3BvbnNl",
                },
            ]
            self.server_parts[call_id] = server
            candidate = body["candidates"][0]
            candidate["content"]["parts"] = server + candidate["content"]["parts"]
            candidate["groundingMetadata"] = {
                "webSearchQueries": [query],
                "groundingChunks": [{"web": {"uri": uri, "title": title}}],
            }
            return Reply(200, body)

        return respond

    def model_of(self, request: Recorded) -> str:
        match = re.search(r"/models/([^/:]+):", request.path)
        return match[1] if match else "unknown-model"

    def success_body(
        self, request: Recorded, *, text: str | None, data: dict[str, Any] | None, usage: Any
    ) -> dict[str, Any]:
        content = json.dumps(data) if data is not None else text
        if isinstance(usage, GeminiUsage):
            tokens = usage
        else:
            metered = self.metered(request, content or "")
            tokens = GeminiUsage(metered.input_tokens, metered.output_tokens)
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

    def tool_call_body(self, request: Recorded, calls: list[ScriptedCall]) -> dict[str, Any]:
        """``functionCall`` parts (each with a thought signature, as Gemini 3 sends); args are an
        object on this protocol, so a string stands for an object the schema refuses."""
        body = self.success_body(request, text=None, data=None, usage=None)
        body["candidates"][0]["content"]["parts"] = [
            {
                "functionCall": {
                    "id": call_id,
                    "name": name,
                    "args": args if isinstance(args, dict) else {"input": args},
                },
                "thoughtSignature": "c2lnLTE=",
            }
            for call_id, name, args in calls
        ]
        return body

    def structured(self, data: dict[str, Any], *, usage: Any = None) -> Responder:
        """Structured output as Gemini returns it: JSON text in JSON mode, or the
        ``emit_output`` function call when the request offered functions."""

        def respond(request: Recorded) -> Reply:
            body = self.success_body(request, text=None, data=data, usage=usage)
            declared = _declared(request)
            if "emit_output" in declared:
                body["candidates"][0]["content"]["parts"] = [
                    {"functionCall": {"name": "emit_output", "args": data}}
                ]
            return Reply(200, body)

        return respond

    def input_tokens(self, body: dict[str, Any]) -> int:
        turns = [body.get("systemInstruction") or {}, *body.get("contents", ())]
        # A function call or response counts as what was sent of it.
        parts = [p for turn in turns for p in turn.get("parts", ())]
        texts = [p["text"] if "text" in p else json.dumps(p) for p in parts]
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        definitions = [*(body.get("tools") or ()), *([schema] if schema is not None else [])]
        extra = SCHEMA_PROMPT_TOKENS if definitions else 0
        return prompt_tokens(texts, definitions, extra=extra)

    def max_output(self, body: dict[str, Any]) -> int:
        return int((body.get("generationConfig") or {}).get("maxOutputTokens") or 0)

    def billed_of(self, request: Recorded, reply: dict[str, Any]) -> Billed | None:
        usage = reply.get("usageMetadata")
        if not isinstance(usage, dict):
            return None
        candidates = reply.get("candidates") or [{}]
        grounding = candidates[0].get("groundingMetadata")
        model = self.model_of(request)
        searches = 0
        if grounding is not None:
            queries = len(grounding.get("webSearchQueries") or ())
            searches = max(queries, 1) if model.startswith("gemini-3") else 1
        return Billed(
            model=model,
            input_tokens=usage.get("promptTokenCount", 0),
            output_tokens=usage.get("candidatesTokenCount", 0) + usage.get("thoughtsTokenCount", 0),
            cached_input_tokens=usage.get("cachedContentTokenCount", 0),
            web_searches=searches,
        )

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


def _declared(request: Recorded) -> set[str]:
    """The function names a request declares."""
    body = request.body if isinstance(request.body, dict) else {}
    names: set[str] = set()
    for tool in body.get("tools") or []:
        for declaration in (tool or {}).get("functionDeclarations") or []:
            names.add(str(declaration.get("name")))
    return names


def searches(request: Recorded) -> bool:
    """Whether ``request`` carries the ``google_search`` grounding tool."""
    body = request.body if isinstance(request.body, dict) else {}
    tools = body.get("tools") or []
    return any(isinstance(tool, dict) and "googleSearch" in tool for tool in tools)


_CAMEL = {"tool_call": "toolCall", "tool_response": "toolResponse", "tool_type": "toolType"}
_CAMEL["thought_signature"] = "thoughtSignature"


def server_part(part: dict[str, Any]) -> dict[str, Any]:
    """A server-side tool part with its field names as the API writes them: its JSON parser
    takes the proto's snake_case names too (the SDK sends ``tool_type`` inside a ``toolCall``),
    while the arguments and response inside stay as they are."""
    named = {_CAMEL.get(k, k): v for k, v in part.items()}
    for key in ("toolCall", "toolResponse"):
        if isinstance(named.get(key), dict):
            named[key] = {_CAMEL.get(k, k): v for k, v in named[key].items()}
    return named
