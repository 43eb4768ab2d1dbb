"""How ``openai_compat`` asks a local OpenAI-compatible server for structured output.

Each server takes structured output its own way: vLLM and Ollama (0.5+) take ``response_format``
``json_schema`` (vLLM refuses, 400, a schema its grammar backend cannot compile);
llama-cpp-python's server and older llama.cpp builds take only ``json_object`` (optionally with
the schema in ``response_format.schema``) and answer ``json_schema`` with a 500; LM Studio takes
``json_schema`` only. So a structured call is negotiated, best mode first:

1. ``json_schema``: the schema in ``response_format`` (as for OpenAI);
2. ``json_object``: JSON mode, the schema in ``response_format.schema`` (llama-cpp-python and
   llama.cpp compile it into a grammar; others ignore the key) and in the system prompt;
3. ``prompt``: no ``response_format`` at all, the schema in the system prompt only.

In every mode the router validates the reply against the schema and asks for one repair, so mode
3 still yields schema-valid data or a clear ``SchemaError``. A mode the server refuses (an HTTP
400/422/500 whose message is about the response format) moves on to the next at once, and
``ModeMemory`` remembers per server and model which mode worked, so later calls go straight to
it. A refused request is not billed by any of these servers (no tokens were generated), so the
ledger's row for the call is the accepted attempt's."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal

import structlog

from agentfirm.router.base import Message, ProviderRequest, ProviderResponse
from agentfirm.router.errors import FatalProviderError, RetryableProviderError

__all__ = ["MODES", "Mode", "ModeMemory", "is_format_refusal", "negotiate", "schema_instruction"]

log = structlog.get_logger(__name__)

Mode = Literal["json_schema", "json_object", "prompt"]
MODES: tuple[Mode, ...] = ("json_schema", "json_object", "prompt")

# Statuses a server refuses a request shape with: 400 (vLLM, Ollama, LM Studio), 422 (FastAPI's
# validation error, when not wrapped) and 500 (llama-cpp-python's route handler and older
# llama.cpp turn a rejected ``response_format`` into an internal error).
_REFUSAL_STATUSES = frozenset({400, 422, 500})
# Words of the servers' refusals of a structured-output shape: "response_format type must be one
# of ..." (llama.cpp), "Input should be 'text' or 'json_object'" (llama-cpp-python's pydantic),
# "The provided JSON schema contains features not supported by xgrammar" (vLLM), "invalid
# format" / "json_schema" (Ollama, LM Studio).
_REFUSAL_WORDS = (
    "response_format",
    "json_schema",
    "json_object",
    "json schema",
    "grammar",
    "guided",
    "invalid format",
)


def is_format_refusal(error: Exception) -> bool:
    """Whether ``error`` is the server refusing the structured-output shape, not the call: a
    400/422/500 whose message is about the response format. A 500 about anything else (the
    server failing) stays a failure for the router to retry."""
    if not isinstance(error, FatalProviderError | RetryableProviderError):
        return False
    if error.status not in _REFUSAL_STATUSES:
        return False
    message = str(error).lower()
    return any(word in message for word in _REFUSAL_WORDS)


def schema_instruction(schema: dict[str, Any]) -> str:
    """What the system prompt says in modes 2 and 3: answer with one JSON object only."""
    return (
        "Answer with one JSON object and nothing else (no prose, no code fence). "
        "It must be valid against this JSON Schema:\n"
        + json.dumps(schema, ensure_ascii=False, separators=(",", ":"))
    )


def with_instruction(request: ProviderRequest) -> ProviderRequest:
    """``request`` with the schema instruction in its system prompt: added to the first system
    message (chat templates of local models often allow a system message only first), or as a
    new first message when there is none."""
    assert request.output_schema is not None
    instruction = schema_instruction(request.output_schema)
    messages = list(request.messages)
    if messages and messages[0].role == "system":
        first = messages[0]
        messages[0] = replace(first, content=f"{first.content}\n\n{instruction}")
    else:
        messages.insert(0, Message("system", instruction))
    return replace(request, messages=tuple(messages))


def response_format(mode: Mode, schema: dict[str, Any], *, strict: bool) -> dict[str, Any] | None:
    """The ``response_format`` of ``mode``; None for ``prompt`` (none sent)."""
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": strict},
        }
    if mode == "json_object":
        return {"type": "json_object", "schema": schema}
    return None


class ModeMemory:
    """Which structured-output mode each server (base URL) and model accepted, for this process.
    A provider owns one; nothing is shared between providers."""

    def __init__(self) -> None:
        self._modes: dict[tuple[str, str], Mode] = {}

    def get(self, base_url: str, model: str) -> Mode:
        return self._modes.get((base_url, model), MODES[0])

    def remember(self, base_url: str, model: str, mode: Mode) -> None:
        self._modes[(base_url, model)] = mode


Send = Callable[[ProviderRequest, Mode], Awaitable[ProviderResponse]]


async def negotiate(
    memory: ModeMemory, base_url: str, request: ProviderRequest, send: Send
) -> ProviderResponse:
    """``send`` ``request`` in the mode ``memory`` holds for the server and model, moving on to
    the next mode each time the server refuses the format (``is_format_refusal``); the mode that
    was accepted is remembered. The last mode's failure, or any other failure, is raised."""
    start = MODES.index(memory.get(base_url, request.model))
    for mode in MODES[start:]:
        try:
            response = await send(request, mode)
        except (FatalProviderError, RetryableProviderError) as exc:
            if mode == MODES[-1] or not is_format_refusal(exc):
                raise
            log.info(
                "structured_output_mode_refused",
                base_url=base_url,
                model=request.model,
                mode=mode,
                status=exc.status,
            )
            memory.remember(base_url, request.model, MODES[MODES.index(mode) + 1])
            continue
        return response
    raise AssertionError("unreachable: the last mode returns or raises")
