"""OpenAI Chat Completions (``POST /v1/chat/completions``) on loopback; also what an
OpenAI-compatible server (Ollama, vLLM, llama.cpp) speaks. And the Responses API (``POST
/v1/responses``), which OpenAI's own web search tool needs: the same helpers answer in its
shape when a request comes there, and ``searched`` scripts an answer after web searches.

A reasoning model (o-series, GPT-5) answering on the Responses API reasons before it calls a
function: the reply carries a ``reasoning`` item before the calls (its ``encrypted_content`` only
when ``include`` asks for it), and the fake refuses, with the real API's words, what the real API
refuses in the next turn's ``input``: a call whose reasoning item is not sent back before it, a
reasoning item without its encrypted content when nothing is stored, a reasoning item with no
call after it, and ``include`` of encrypted reasoning for a model that does not reason."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.http_fake import Recorded, Reply, Responder
from tests.fakes.metering import SCHEMA_PROMPT_TOKENS, Billed, prompt_tokens
from tests.fakes.provider_fake import ProviderFake, ScriptedCall

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class OpenAIUsage:
    """As OpenAI reports it: ``prompt_tokens`` INCLUDES ``cached_tokens``."""

    prompt_tokens: int = 28
    completion_tokens: int = 9
    cached_tokens: int = 0


def _usage(tokens: OpenAIUsage) -> dict[str, Any]:
    """A Chat Completion's ``usage``."""
    return {
        "prompt_tokens": tokens.prompt_tokens,
        "completion_tokens": tokens.completion_tokens,
        "total_tokens": tokens.prompt_tokens + tokens.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": tokens.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


RESPONSES = re.compile(r"(/v1)?/responses")
ENCRYPTED = "reasoning.encrypted_content"
_REASONING_MODELS = ("o1", "o3", "o4", "gpt-5")


def reasoning_model(model: str) -> bool:
    return model.startswith(_REASONING_MODELS) and not model.startswith("gpt-5-chat")


def _responses(request: Recorded) -> bool:
    return RESPONSES.fullmatch(request.path) is not None


CHAT = re.compile(r"(/v1)?/chat/completions")
_METADATA = re.compile(r"metadata\[(.+)\]")


class OpenAIFake(ProviderFake):
    """``stored``: the Chat Completions sent with ``store: true``, kept on receipt as they are
    billed, with the answer given (whether or not the client stays to read it), listed as OpenAI
    lists them (``GET /v1/chat/completions``: ``metadata[key]=value`` and ``model`` filters,
    ``after``/``limit`` pages, ``order``)."""

    route = re.compile(r"(/v1)?/(chat/completions|responses)")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stored: list[dict[str, Any]] = []
        # call_id → (id, encrypted content) of the reasoning item issued before that call
        self.reasoning: dict[str, tuple[str, str | None]] = {}
        self.lookups = 0
        """List requests answered."""

    @property
    def stored(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._stored)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._stored.clear()
            self.lookups = 0
            self.reasoning.clear()

    def _kept(self, request: Recorded, reply: Reply, billed: Billed) -> None:
        body = request.body
        if not CHAT.fullmatch(request.path) or body.get("store") is not True:
            return
        # What it answered, as OpenAI keeps it: the client may never read it, and asks later.
        answered = reply.body if isinstance(reply.body, dict) and "choices" in reply.body else None
        with self._lock:
            number = len(self._stored) + 1
            self._stored.append(
                {
                    **(answered or self.success_body(request, text="", data=None, usage=None)),
                    "id": f"chatcmpl-stored{number:06d}",
                    "created": 1741570283 + number,
                    "metadata": dict(body.get("metadata") or {}),
                    "request_id": f"req_{number:06d}",
                    "usage": _usage(
                        OpenAIUsage(
                            billed.input_tokens, billed.output_tokens, billed.cached_input_tokens
                        )
                    ),
                }
            )

    def _direct(self, request: Recorded) -> Reply | None:
        if request.method != "GET" or not CHAT.fullmatch(request.path):
            return None
        query = parse_qs(request.query)
        wanted = {
            m.group(1): values[-1]
            for name, values in query.items()
            if (m := _METADATA.fullmatch(name)) is not None
        }
        model = query.get("model", [None])[-1]
        with self._lock:
            self.lookups += 1
            found = [
                c
                for c in self._stored
                if all(c["metadata"].get(k) == v for k, v in wanted.items())
                and (model is None or c["model"] == model)
            ]
        if query.get("order", ["asc"])[-1] == "desc":
            found.reverse()
        after = query.get("after", [None])[-1]
        if after is not None:
            ids = [c["id"] for c in found]
            found = found[ids.index(after) + 1 :] if after in ids else []
        limit = int(query.get("limit", ["20"])[-1])
        page = found[:limit]
        return Reply(
            200,
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(found) > limit,
            },
        )

    def shape_refusal(self, request: Recorded) -> Reply | None:
        body = request.body
        if not _responses(request) or not isinstance(body, dict):
            return None
        if ENCRYPTED in (body.get("include") or ()) and not reasoning_model(self.model_of(request)):
            return self.error(400, "Encrypted content is not supported with this model.")
        items = [i for i in body.get("input") or () if isinstance(i, dict)]
        problem = self._reasoning_problem(items, stored=body.get("store", True) is not False)
        return None if problem is None else self.error(*problem)

    def _reasoning_problem(
        self, items: list[dict[str, Any]], *, stored: bool
    ) -> tuple[int, str] | None:
        """What the real API says of reasoning items out of place in ``input``, or None."""
        run: set[str] = set()  # reasoning ids since the last item other than a function call
        for n, item in enumerate(items):
            kind = item.get("type")
            if kind == "reasoning":
                rs_id = str(item.get("id"))
                issued = dict(self.reasoning.values())
                if not stored and item.get("encrypted_content") is None:
                    return 404, (
                        f"Item with id '{rs_id}' not found. Items are not persisted when `store` "
                        "is set to false. Try again with `store` set to true, or remove this item "
                        "from your input."
                    )
                if rs_id in issued and item.get("encrypted_content") != issued[rs_id]:
                    return 400, f"The encrypted content for item {rs_id} could not be verified."
                following = items[n + 1].get("type") if n + 1 < len(items) else None
                if following not in ("reasoning", "function_call", "message"):
                    return 400, (
                        f"Item '{rs_id}' of type 'reasoning' was provided without its required "
                        "following item."
                    )
                run.add(rs_id)
            elif kind == "function_call":
                expected = self.reasoning.get(str(item.get("call_id")))
                if expected is not None and expected[0] not in run:
                    return 400, (
                        f"Item 'fc_{item.get('call_id')}' of type 'function_call' was provided "
                        f"without its required 'reasoning' item: '{expected[0]}'."
                    )
            else:
                run = set()
        return None

    def success_body(
        self, request: Recorded, *, text: str | None, data: dict[str, Any] | None, usage: Any
    ) -> dict[str, Any]:
        if _responses(request):
            return self.response_body(request, text=text, data=data, usage=usage)
        content = json.dumps(data) if data is not None else text
        if isinstance(usage, OpenAIUsage):
            tokens = usage
        else:
            metered = self.metered(request, content or "")
            tokens = OpenAIUsage(metered.input_tokens, metered.output_tokens)
        return {
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "object": "chat.completion",
            "created": 1741570283,
            "model": self.model_of(request),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(tokens),
            "service_tier": "default",
            "system_fingerprint": "fp_fc9f1d7035",
        }

    def tool_call_body(self, request: Recorded, calls: list[ScriptedCall]) -> dict[str, Any]:
        if _responses(request):
            return self.response_body(request, text=None, data=None, calls=calls)
        body = self.success_body(request, text=None, data=None, usage=None)
        choice = body["choices"][0]
        choice["message"]["content"] = None
        choice["message"]["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
            for call_id, name, args in calls
        ]
        choice["finish_reason"] = "tool_calls"
        return body

    def input_tokens(self, body: dict[str, Any]) -> int:
        if "input" in body:
            return self._response_input_tokens(body)
        texts = [
            text
            for m in body.get("messages", ())
            for text in (
                m.get("content") or "",
                json.dumps(m["tool_calls"]) if m.get("tool_calls") else "",
            )
        ]
        definitions = [
            *(body.get("tools") or ()),
            *([body["response_format"]] if "response_format" in body else []),
        ]
        extra = SCHEMA_PROMPT_TOKENS if definitions else 0
        return prompt_tokens([t for t in texts if isinstance(t, str)], definitions, extra=extra)

    def max_output(self, body: dict[str, Any]) -> int:
        return int(
            body.get("max_completion_tokens")
            or body.get("max_tokens")
            or body.get("max_output_tokens")
            or 0
        )

    def billed_of(self, request: Recorded, reply: dict[str, Any]) -> Billed | None:
        usage = reply.get("usage")
        if not isinstance(usage, dict):
            return None
        if _responses(request):
            details = usage.get("input_tokens_details") or {}
            searches = [i for i in reply.get("output", ()) if i["type"] == "web_search_call"]
            return Billed(
                model=self.model_of(request),
                input_tokens=usage["input_tokens"],
                output_tokens=usage["output_tokens"],
                cached_input_tokens=details.get("cached_tokens") or 0,
                web_searches=len(searches),
            )
        details = usage.get("prompt_tokens_details") or {}
        return Billed(
            model=self.model_of(request),
            input_tokens=usage["prompt_tokens"],
            output_tokens=usage["completion_tokens"],
            cached_input_tokens=details.get("cached_tokens") or 0,
        )

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind, code = _ERROR_TYPES.get(status, ("server_error", None))
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    # -- the Responses API -------------------------------------------------------------------
    SEARCH_INPUT_TOKENS = 1_500
    """Input tokens one search adds (the pages it read, which OpenAI bills as input)."""

    def searched(
        self,
        data: dict[str, Any] | None = None,
        *,
        text: str = "",
        searches: int = 1,
        pages: tuple[tuple[str, str], ...] = (),
        calls: tuple[ScriptedCall, ...] = (),
        usage: OpenAIUsage | None = None,
    ) -> Responder:
        """A Responses answer after ``searches`` web searches: ``data`` as structured output, or
        ``text`` citing ``pages`` (title, url), or asking for ``calls``."""

        def respond(request: Recorded) -> Reply:
            body = self.response_body(
                request,
                text=text,
                data=data,
                usage=usage,
                calls=list(calls),
                searches=searches,
                pages=pages,
            )
            return Reply(200, body)

        return respond

    def response_body(
        self,
        request: Recorded,
        *,
        text: str | None,
        data: dict[str, Any] | None,
        usage: Any = None,
        calls: list[ScriptedCall] | None = None,
        searches: int = 0,
        pages: tuple[tuple[str, str], ...] = (),
    ) -> dict[str, Any]:
        """A ``Response`` object as ``POST /v1/responses`` returns it."""
        output: list[dict[str, Any]] = [
            {
                "id": f"ws_{n}",
                "type": "web_search_call",
                "status": "completed",
                "action": {"type": "search", "query": "scripted query", "sources": None},
            }
            for n in range(searches)
        ]
        content = json.dumps(data) if data is not None else (text or "")
        body = request.body if isinstance(request.body, dict) else {}
        if calls and reasoning_model(self.model_of(request)):
            # It reasons before it calls: one reasoning item ahead of the calls it made.
            rs_id = f"rs_{calls[0][0]}"
            encrypted = f"gAAAA-{calls[0][0]}" if ENCRYPTED in (body.get("include") or ()) else None
            for call_id, _, _ in calls:
                self.reasoning[call_id] = (rs_id, encrypted)
            output.insert(
                0,
                {
                    "id": rs_id,
                    "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": "Look up the price first."}],
                    "encrypted_content": encrypted,
                },
            )
        if calls:
            output += [
                {
                    "id": f"fc_{call_id}",
                    "type": "function_call",
                    "call_id": call_id,
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                    "status": "completed",
                }
                for call_id, name, args in calls
            ]
            content = ""
        if content:
            annotations = [
                {
                    "type": "url_citation",
                    "start_index": 0,
                    "end_index": len(content),
                    "title": title,
                    "url": url,
                }
                for title, url in pages
            ]
            output.append(
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [
                        {"type": "output_text", "text": content, "annotations": annotations}
                    ],
                }
            )
        if isinstance(usage, OpenAIUsage):
            tokens = usage
        else:
            metered = self.metered(request, content or json.dumps(output))
            tokens = OpenAIUsage(
                metered.input_tokens + searches * self.SEARCH_INPUT_TOKENS, metered.output_tokens
            )
        return {
            "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
            "object": "response",
            "created_at": 1741476542,
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "model": self.model_of(request),
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "store": body.get("store", True),
            "temperature": 1.0,
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": body.get("tools") or [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": {
                "input_tokens": tokens.prompt_tokens,
                "input_tokens_details": {
                    "cached_tokens": tokens.cached_tokens,
                    "cache_write_tokens": 0,
                },
                "output_tokens": tokens.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": tokens.prompt_tokens + tokens.completion_tokens,
            },
            "metadata": {},
        }

    def _response_input_tokens(self, body: dict[str, Any]) -> int:
        texts = []
        for item in body.get("input", ()):
            if not isinstance(item, dict):
                continue
            for key in ("content", "arguments", "output"):
                value = item.get(key)
                if isinstance(value, str):
                    texts.append(value)
        fmt = (body.get("text") or {}).get("format")
        definitions = [*(body.get("tools") or ()), *([fmt] if fmt else [])]
        extra = SCHEMA_PROMPT_TOKENS if definitions else 0
        return prompt_tokens(texts, definitions, extra=extra)
