"""``openai`` and ``openai_compat``: Chat Completions through the official SDK
(``openai.AsyncOpenAI``).

``openai_compat`` is any OpenAI-compatible server (Ollama, vLLM, llama.cpp) at
``AGENTFIRM_OPENAI_COMPAT_BASE_URL``; its key is optional. Structured output uses
``response_format`` ``json_schema``, ``strict`` when the schema has the shape strict mode demands
(every object closed, every property required); otherwise the schema still guides the model and
the router validates the reply. ``openai_compat`` negotiates down from there when the server
refuses that shape (``openai_compat.negotiate``).

Web search: a request that allows it, to an OpenAI model with the tool, goes through the
Responses API with OpenAI's ``web_search`` tool instead (``openai_responses``).

Stored completions (``store_calls``, the ``openai_store`` setting; OpenAI only): each Chat
Completions request is sent with ``store: true`` and ``metadata: {"agentfirm_call_id": <the
ledger's call id>}``, so OpenAI keeps it and ``lookup_usage`` can list it by that id later (``GET
/v1/chat/completions?metadata[agentfirm_call_id]=…``): what a call abandoned after it was sent
really cost (``router.reconcile``), and ``lookup_response`` what it answered, so a turn whose
answer a crash cut off is not asked twice. The id is a random ledger id, nothing of the request. Web
search calls (the Responses API) are not kept: nothing lists responses by metadata.

Tools: function calling. Each ``ToolSpec`` is a ``function`` tool (never ``strict``: MCP servers'
schemas rarely have the shape strict mode demands); an assistant message's tool calls go back as
its ``tool_calls`` and each result as a ``tool`` message. Arguments arrive as a JSON string: one
that does not parse is kept raw (``ToolCall.arguments`` None) for the caller to ask for a repair.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Awaitable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from agentfirm.domain.tools import ToolCall
from agentfirm.errors import ProviderError
from agentfirm.router.base import Message, ProviderRequest, ProviderResponse, Usage
from agentfirm.router.providers._common import (
    ClientCache,
    Clock,
    GetSecret,
    KeySource,
    connection_failed,
    malformed,
    retry_after_s,
    status_error,
    timed_out,
)
from agentfirm.router.providers.openai_compat import (
    Mode,
    ModeMemory,
    negotiate,
    response_format,
    with_instruction,
)
from agentfirm.router.providers.openai_responses import (
    MAX_WEB_SEARCHES,
    response_of,
    responses_params,
    searches_on,
)
from agentfirm.router.tokens import estimate_messages, estimate_tokens

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types import CompletionUsage
    from openai.types.chat import ChatCompletion, ChatCompletionMessage

_T = TypeVar("_T")

OPENAI = "openai"
OPENAI_COMPAT = "openai_compat"
OPENAI_KEYS = ("OPENAI_API_KEY",)
COMPAT_KEYS = ("AGENTFIRM_OPENAI_COMPAT_API_KEY",)
CALL_ID_KEY = "agentfirm_call_id"
"""The metadata key a stored completion carries the ledger's call id under."""
LOOKUP_TIMEOUT_S = 30.0
"""How long one list request of stored completions may take."""
NO_KEY = "no-key"
"""Sent to an OpenAI-compatible server that needs no key: the SDK insists on some bearer token,
and local servers ignore it."""


def _subschemas(schema: Mapping[str, Any]) -> list[Any]:
    found: list[Any] = []
    for key in ("properties", "$defs", "definitions"):
        value = schema.get(key)
        if isinstance(value, Mapping):
            found.extend(value.values())
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        value = schema.get(key)
        if isinstance(value, list):
            found.extend(value)
    for key in ("items", "additionalProperties", "not"):
        value = schema.get(key)
        if isinstance(value, Mapping):
            found.append(value)
    return found


def strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict mode accepts ``schema``'s shape: every object schema lists all its
    properties as required and sets ``additionalProperties: false``."""
    if not isinstance(schema, Mapping):
        return True
    properties = schema.get("properties")
    if schema.get("type") == "object" or isinstance(properties, Mapping):
        names = set(properties) if isinstance(properties, Mapping) else set()
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required") or ()) != names:
            return False
    return all(strict_compatible(sub) for sub in _subschemas(schema))


def request_params(
    request: ProviderRequest, *, legacy_max_tokens: bool, mode: Mode = "json_schema"
) -> dict[str, Any]:
    """The ``chat.completions.create`` arguments for ``request`` (timeout aside).
    ``legacy_max_tokens`` sends ``max_tokens`` (what compatible servers know) instead of
    ``max_completion_tokens`` (what OpenAI's reasoning models require). ``mode``: how a
    structured output is asked for (see ``openai_compat``); the schema instruction of the modes
    that need one is already in ``request``'s messages."""
    params: dict[str, Any] = {
        "model": request.model,
        "messages": [turn for m in request.messages for turn in _turns(m)],
        "max_tokens" if legacy_max_tokens else "max_completion_tokens": request.max_tokens,
    }
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": spec.name,
                    "description": spec.description,
                    "parameters": spec.input_schema,
                },
            }
            for spec in request.tools
        ]
    if request.output_schema is not None:
        fmt = response_format(
            mode, request.output_schema, strict=strict_compatible(request.output_schema)
        )
        if fmt is not None:
            params["response_format"] = fmt
    return params


def _turns(message: Message) -> list[dict[str, Any]]:
    """The chat messages for one of ours: a ``tool`` message is one message per result."""
    if message.role == "tool":
        return [
            {"role": "tool", "tool_call_id": r.call_id, "content": r.content}
            for r in message.tool_results
        ]
    turn: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        turn["content"] = message.content or None
        turn["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {
                    "name": c.name,
                    "arguments": c.raw_arguments or json.dumps(c.arguments, ensure_ascii=False),
                },
            }
            for c in message.tool_calls
        ]
    return [turn]


def tool_calls_of(message: ChatCompletionMessage) -> tuple[ToolCall, ...]:
    """The function calls of a reply; arguments that are not a JSON object are kept raw."""
    calls = []
    for call in message.tool_calls or ():
        if call.type != "function":
            continue
        raw = call.function.arguments or ""
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except ValueError:
            parsed = None
        arguments = parsed if isinstance(parsed, dict) else None
        calls.append(ToolCall(call.id, call.function.name, arguments, raw))
    return tuple(calls)


def usage_of(usage: CompletionUsage | None, request: ProviderRequest, text: str) -> Usage:
    """OpenAI's ``prompt_tokens`` already includes cached tokens. A compatible server that
    reports no usage gets estimates, so the call is never priced as free."""
    if usage is None:
        return Usage(
            input_tokens=estimate_messages(request.messages), output_tokens=estimate_tokens(text)
        )
    details = usage.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details is not None else 0
    return Usage(
        input_tokens=usage.prompt_tokens,
        cached_input_tokens=cached,
        output_tokens=usage.completion_tokens,
    )


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        return str(body["message"])
    return str(getattr(exc, "message", exc))


class OpenAIProvider:
    """Calls an OpenAI-protocol server with the key ``get_secret`` returns at call time. The
    SDK's own retries are off (the router retries and falls back); each call has an explicit
    timeout. ``openai_compat()`` builds the key-optional variant for compatible servers."""

    simulated = False

    def __init__(
        self,
        *,
        get_secret: GetSecret,
        base_url: str | None = None,
        name: str = OPENAI,
        key_names: tuple[str, ...] = OPENAI_KEYS,
        key_required: bool = True,
        key_ttl_s: float = 0.0,
        clock: Clock = time.monotonic,
        store_calls: bool = False,
    ) -> None:
        # Load the SDK now rather than on the first call: an import there would block the event
        # loop and eat into that call's timeout.
        importlib.import_module("openai")
        self.name = name
        self._base_url = base_url
        self._key_required = key_required
        self._keys = KeySource(name, get_secret, key_names, ttl_s=key_ttl_s, clock=clock)
        self._clients: ClientCache[AsyncOpenAI] = ClientCache(self._new_client)
        # Which structured-output mode each model of a compatible server accepts (per process).
        self._modes = ModeMemory() if name == OPENAI_COMPAT else None
        # Compatible servers do not keep completions: only OpenAI's own are stored.
        self._store_calls = store_calls and name == OPENAI

    def max_web_searches(self, model: str) -> int:
        """The searches the router reserves for a call to ``model`` allowed to search: OpenAI's
        own search (the Responses API) caps them at ``MAX_WEB_SEARCHES``, for the models that
        have the tool; the others (gpt-4.1-nano, any compatible server) run none."""
        return MAX_WEB_SEARCHES if self._searches(model) else 0

    def _searches(self, model: str) -> bool:
        return self.name == OPENAI and searches_on(model)

    @classmethod
    def openai_compat(
        cls, *, get_secret: GetSecret, base_url: str, key_ttl_s: float = 0.0
    ) -> OpenAIProvider:
        """The ``openai_compat`` provider for the server at ``base_url`` (key optional)."""
        return cls(
            get_secret=get_secret,
            base_url=base_url,
            name=OPENAI_COMPAT,
            key_names=COMPAT_KEYS,
            key_required=False,
            key_ttl_s=key_ttl_s,
        )

    def _new_client(self, key: str) -> AsyncOpenAI:
        from openai import AsyncOpenAI

        return AsyncOpenAI(api_key=key, base_url=self._base_url, max_retries=0)

    def keeps_record(self, request: ProviderRequest) -> bool:
        """Whether ``request`` is sent stored, under its call id (``reconcile.UsageLookup``)."""
        return self._store_calls and not (request.web_search and self._searches(request.model))

    async def lookup_usage(self, call_ids: Sequence[str]) -> Mapping[str, Usage]:
        """The usage OpenAI stored for each of ``call_ids`` it kept (``reconcile.UsageLookup``):
        one list request per id, filtered on its metadata (the filter takes one value). Calls
        made while ``openai_store`` was on are found whatever it is now. Raises
        ``ProviderError`` when OpenAI cannot be asked (no key, refused, unreachable)."""
        if self.name != OPENAI:
            raise ProviderError(f"{self.name} keeps no record of its calls")
        found: dict[str, Usage] = {}
        for call_id in call_ids:
            usage = await self._keys.call(
                partial(self._stored, call_id), required=self._key_required
            )
            if usage is not None:
                found[call_id] = usage
        return found

    async def _stored(self, call_id: str, key: str | None, key_env: str) -> Usage | None:
        """The usage of the completion stored under ``call_id``; None when there is none."""
        probe = ProviderRequest(model="", messages=(), max_tokens=0, tier="utility")
        completion = await self._completion(call_id, probe, key, key_env)
        if completion is None or completion.usage is None:
            return None
        return usage_of(completion.usage, probe, "")

    async def lookup_response(
        self, call_id: str, request: ProviderRequest
    ) -> ProviderResponse | None:
        """The answer OpenAI stored for ``call_id`` (``reconcile.ResponseLookup``), read as
        ``complete`` reads a live one; None when it kept none (not sent, cut short, or not
        listed yet). Raises ``ProviderError`` when OpenAI cannot be asked."""
        if self.name != OPENAI:
            return None

        async def stored(key: str | None, key_env: str) -> ProviderResponse | None:
            completion = await self._completion(call_id, request, key, key_env)
            return None if completion is None else self._response_of(completion, request)

        return await self._keys.call(stored, required=self._key_required)

    async def _completion(
        self, call_id: str, request: ProviderRequest, key: str | None, key_env: str
    ) -> ChatCompletion | None:
        """The completion stored under ``call_id``; None when there is none."""
        client = self._clients.get(key or NO_KEY)
        page = await self._sdk(
            client.chat.completions.list(
                metadata={CALL_ID_KEY: call_id}, limit=1, timeout=LOOKUP_TIMEOUT_S
            ),
            request,
            key_env,
        )
        return next(iter(page.data), None)

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        return await self._keys.call(
            lambda key, key_env: self._send(request, key, key_env), required=self._key_required
        )

    async def _send(
        self, request: ProviderRequest, key: str | None, key_env: str
    ) -> ProviderResponse:
        client = self._clients.get(key or NO_KEY)
        if request.web_search and self._searches(request.model):
            return await self._search(client, request, key_env)
        if self._modes is None or request.output_schema is None:
            return await self._create(client, request, "json_schema", key_env)

        async def send(request: ProviderRequest, mode: Mode) -> ProviderResponse:
            asked = request if mode == "json_schema" else with_instruction(request)
            return await self._create(client, asked, mode, key_env)

        return await negotiate(self._modes, self._base_url or "", request, send)

    async def _create(
        self, client: AsyncOpenAI, request: ProviderRequest, mode: Mode, key_env: str
    ) -> ProviderResponse:
        """One Chat Completions request; the SDK's errors become the router's."""
        params = request_params(request, legacy_max_tokens=self.name == OPENAI_COMPAT, mode=mode)
        if self._store_calls and request.call_id:
            params["store"] = True
            params["metadata"] = {CALL_ID_KEY: request.call_id}
        reply = await self._sdk(
            client.chat.completions.create(**params, timeout=request.timeout_s), request, key_env
        )
        return self._response_of(reply, request)

    def _response_of(self, reply: ChatCompletion, request: ProviderRequest) -> ProviderResponse:
        """Our response for a Chat Completion: the one answered now, or one stored earlier."""
        try:
            if not reply.choices:
                raise ValueError("the reply has no choices")
            message = reply.choices[0].message
            text = message.content or message.refusal or ""
            return ProviderResponse(
                text, usage_of(reply.usage, request, text), reply.model, tool_calls_of(message)
            )
        except (AttributeError, TypeError, ValueError) as exc:
            # The SDK builds a 200's reply without checking its shape: one missing its choices
            # or message fails only here, and is as malformed as a body cut short.
            raise malformed(self.name, exc) from exc

    async def _search(
        self, client: AsyncOpenAI, request: ProviderRequest, key_env: str
    ) -> ProviderResponse:
        """One Responses API request with OpenAI's ``web_search`` tool (``openai_responses``)."""
        schema = request.output_schema
        params = responses_params(request, strict=schema is not None and strict_compatible(schema))
        reply = await self._sdk(
            client.responses.create(**params, timeout=request.timeout_s), request, key_env
        )
        try:
            return response_of(reply, request)
        except (AttributeError, TypeError, ValueError) as exc:
            raise malformed(self.name, exc) from exc

    async def _sdk(self, call: Awaitable[_T], request: ProviderRequest, key_env: str) -> _T:
        """``call``'s answer; the SDK's errors become the router's."""
        import openai

        try:
            return await call
        except openai.APIStatusError as exc:
            raise status_error(
                provider=self.name,
                status=exc.status_code,
                message=_api_message(exc),
                key_env=key_env,
                retry_after=retry_after_s(exc.response.headers),
            ) from exc
        except openai.APITimeoutError as exc:
            raise timed_out(self.name, request.timeout_s) from exc
        except openai.APIConnectionError as exc:
            raise connection_failed(self.name, exc.__cause__ or exc) from exc
        except (openai.APIResponseValidationError, json.JSONDecodeError) as exc:
            raise malformed(self.name, exc) from exc

    async def aclose(self) -> None:
        """Close every HTTP client this provider opened."""
        for client in self._clients.drain():
            await client.close()
