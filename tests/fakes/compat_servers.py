"""Loopback servers shaped like three local OpenAI-compatible endpoints, each taking structured
output the way its documentation and code say, with its own error bodies:

- llama-cpp-python's server: ``response_format.type`` is ``text`` or ``json_object`` (an optional
  ``schema`` key becomes a grammar); anything else fails its request model's validation, which
  its route handler answers with a 500 ``internal_server_error``.
- Ollama (0.5+): ``json_schema`` (its ``schema`` becomes the ``format``) and ``json_object``
  (``format: "json"``, any ``schema`` key ignored); a bad request is a 400
  ``invalid_request_error``. No cached-token details in its usage.
- vLLM (0.8, xgrammar backend): ``json_schema`` and ``json_object``; a schema using a keyword
  xgrammar cannot compile is a 400 in vLLM's flat ``ErrorResponse`` shape.

Behind each sits a cooperative model: it answers a structured request with a value valid for the
schema it was given, wherever the request carries it (``response_format`` or the system prompt),
and the planner with the template unchanged."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from agentfirm.router.providers.offline import OfflineProvider
from tests.fakes.http_fake import Recorded, Reply
from tests.fakes.openai_fake import OpenAIFake

SCHEMA_MARK = "valid against this JSON Schema:\n"
"""Where ``openai_compat``'s system prompt gives the schema in the modes without
``json_schema``; the model reads it from there as a person would."""

# vllm/model_executor/guided_decoding/utils.py (0.8): the keywords xgrammar refuses.
XGRAMMAR_UNSUPPORTED = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "format",
        "minProperties",
        "maxProperties",
        "propertyNames",
        "patternProperties",
    }
)


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def cooperative_answer(schema: dict[str, Any], text: str, max_tokens: int) -> dict[str, Any]:
    """What a cooperative model answers to ``text`` asked for ``schema``: the template unchanged
    for the planner, else a value the offline generator builds for the schema."""
    if "# Template modules" in text and "modules" in schema.get("properties", {}):
        template = text.split("# Template modules\n\n", 1)[1].split("\n\n# ", 1)[0]
        return {
            "rationale": "The template fits as it is.",
            "modules": json.loads(template),
            "uncovered": [],
        }
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    words = text.split()[:40] or ["telemetry"]
    value = json.loads(OfflineProvider._structured(schema, words, seed, max_tokens or 4096))
    assert isinstance(value, dict)
    return value


def prompted_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The schema a system message gives, if any."""
    for message in body.get("messages") or []:
        content = message.get("content")
        if message.get("role") == "system" and isinstance(content, str) and SCHEMA_MARK in content:
            schema = json.loads(content.split(SCHEMA_MARK, 1)[1].split("\n", 1)[0])
            return schema if isinstance(schema, dict) else None
    return None


def _keywords(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        return set(schema) | {k for v in schema.values() for k in _keywords(v)}
    if isinstance(schema, list):
        return {k for v in schema for k in _keywords(v)}
    return set()


class CompatServer(OpenAIFake):
    """An OpenAI-compatible server: ``refusal`` says how it refuses a request's structured-output
    shape (None: it takes it); ``format_schema`` is the schema its grammar enforces (None: no
    schema, the model reads the prompt). ``shapes``: each ``response_format`` type received, in
    order, with whether it was accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[str, bool]] = []
        self.respond_with(self._cooperate)

    def refusal(self, fmt: dict[str, Any]) -> Reply | None:
        return None

    def format_schema(self, fmt: dict[str, Any]) -> dict[str, Any] | None:
        if fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema")
            return schema if isinstance(schema, dict) else None
        return None

    def _cooperate(self, request: Recorded) -> Reply:
        body = request.body if isinstance(request.body, dict) else {}
        fmt = body.get("response_format")
        fmt = fmt if isinstance(fmt, dict) else {}
        refused = self.refusal(fmt) if fmt else None
        if fmt:
            self.shapes.append((str(fmt.get("type")), refused is None))
        if refused is not None:
            return refused
        schema = self.format_schema(fmt) or prompted_schema(body)
        if schema is None:
            return self.ok("A short answer.")(request)
        max_tokens = int(body.get("max_tokens") or 4096)
        data = cooperative_answer(schema, last_user_text(body), max_tokens)
        return self.structured(data)(request)


class LlamaCppPythonServer(CompatServer):
    """``llama_cpp.server``: ``CreateChatCompletionRequest.response_format`` is
    ``{"type": "text" | "json_object", "schema"?: ...}``; its ``RouteErrorHandler`` turns the
    validation error into a 500."""

    def refusal(self, fmt: dict[str, Any]) -> Reply | None:
        kind = fmt.get("type")
        if kind in ("text", "json_object"):
            return None
        message = (
            "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n"
            "  Input should be 'text' or 'json_object' "
            f"[type=literal_error, input_value={kind!r}, input_type=str]"
        )
        return Reply(500, self.error_body(500, message))

    def format_schema(self, fmt: dict[str, Any]) -> dict[str, Any] | None:
        schema = fmt.get("schema") if fmt.get("type") == "json_object" else None
        return schema if isinstance(schema, dict) else None

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = "internal_server_error" if status == 500 else "invalid_request_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class OllamaServer(CompatServer):
    """Ollama's ``/v1/chat/completions`` (openai/openai.go): ``json_object`` → ``format:
    "json"``, ``json_schema`` → its schema as the ``format``; a ``json_schema`` without a schema
    is refused (400)."""

    def refusal(self, fmt: dict[str, Any]) -> Reply | None:
        kind = fmt.get("type")
        if kind == "json_object" or (kind == "json_schema" and self.format_schema(fmt)):
            return None
        if kind in (None, "text"):
            return None
        return Reply(400, self.error_body(400, f"invalid format: {kind!r}"))

    def success_body(
        self, request: Recorded, *, text: str | None, data: dict[str, Any] | None, usage: Any
    ) -> dict[str, Any]:
        body = super().success_body(request, text=text, data=data, usage=usage)
        body["system_fingerprint"] = "fp_ollama"
        del body["service_tier"], body["usage"]["prompt_tokens_details"]
        del body["usage"]["completion_tokens_details"]
        return body

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = "invalid_request_error" if status < 500 else "api_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class VLLMServer(CompatServer):
    """vLLM's OpenAI server with the xgrammar backend: a ``json_schema`` using a keyword
    xgrammar cannot compile is refused (400, vLLM's ``ErrorResponse``)."""

    def refusal(self, fmt: dict[str, Any]) -> Reply | None:
        schema = self.format_schema(fmt)
        if fmt.get("type") == "json_schema" and _keywords(schema) & XGRAMMAR_UNSUPPORTED:
            message = "The provided JSON schema contains features not supported by xgrammar."
            return Reply(400, self.error_body(400, message))
        return None

    def success_body(
        self, request: Recorded, *, text: str | None, data: dict[str, Any] | None, usage: Any
    ) -> dict[str, Any]:
        body = super().success_body(request, text=text, data=data, usage=usage)
        body["usage"]["prompt_tokens_details"] = None
        del body["usage"]["completion_tokens_details"], body["service_tier"]
        return body

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = "BadRequestError" if status < 500 else "InternalServerError"
        return {"object": "error", "message": message, "type": kind, "param": None, "code": status}


SERVERS: dict[str, Callable[[], CompatServer]] = {
    "llama-cpp-python": LlamaCppPythonServer,
    "ollama": OllamaServer,
    "vllm": VLLMServer,
}
