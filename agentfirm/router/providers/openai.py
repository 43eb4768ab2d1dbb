"""``openai`` and ``openai_compat``: Chat Completions through the official SDK
(``openai.AsyncOpenAI``).

``openai_compat`` is any OpenAI-compatible server (Ollama, vLLM, llama.cpp) at
``AGENTFIRM_OPENAI_COMPAT_BASE_URL``; its key is optional. Structured output uses
``response_format`` ``json_schema``, ``strict`` when the schema has the shape strict mode demands
(every object closed, every property required); otherwise the schema still guides the model and
the router validates the reply.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentfirm.router.base import ProviderRequest, ProviderResponse, Usage
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
from agentfirm.router.tokens import estimate_messages, estimate_tokens

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types import CompletionUsage

OPENAI = "openai"
OPENAI_COMPAT = "openai_compat"
OPENAI_KEYS = ("OPENAI_API_KEY",)
COMPAT_KEYS = ("AGENTFIRM_OPENAI_COMPAT_API_KEY",)
NO_KEY = "no-key"
"""Sent to an OpenAI-compatible server that needs no key: the SDK insists on some bearer token,
and local servers ignore it."""
SCHEMA_NAME = "output"


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


def request_params(request: ProviderRequest, *, legacy_max_tokens: bool) -> dict[str, Any]:
    """The ``chat.completions.create`` arguments for ``request`` (timeout aside).
    ``legacy_max_tokens`` sends ``max_tokens`` (what compatible servers know) instead of
    ``max_completion_tokens`` (what OpenAI's reasoning models require)."""
    params: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "max_tokens" if legacy_max_tokens else "max_completion_tokens": request.max_tokens,
    }
    if request.output_schema is not None:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": SCHEMA_NAME,
                "schema": request.output_schema,
                "strict": strict_compatible(request.output_schema),
            },
        }
    return params


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
    ) -> None:
        # Load the SDK now rather than on the first call: an import there would block the event
        # loop and eat into that call's timeout.
        importlib.import_module("openai")
        self.name = name
        self._base_url = base_url
        self._key_required = key_required
        self._keys = KeySource(name, get_secret, key_names, ttl_s=key_ttl_s, clock=clock)
        self._clients: ClientCache[AsyncOpenAI] = ClientCache(self._new_client)

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

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        return await self._keys.call(
            lambda key, key_env: self._send(request, key, key_env), required=self._key_required
        )

    async def _send(
        self, request: ProviderRequest, key: str | None, key_env: str
    ) -> ProviderResponse:
        import openai

        client = self._clients.get(key or NO_KEY)
        params = request_params(request, legacy_max_tokens=self.name == OPENAI_COMPAT)
        try:
            reply = await client.chat.completions.create(**params, timeout=request.timeout_s)
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
        try:
            if not reply.choices:
                raise ValueError("the reply has no choices")
            message = reply.choices[0].message
            text = message.content or message.refusal or ""
            return ProviderResponse(text, usage_of(reply.usage, request, text), reply.model)
        except (AttributeError, TypeError, ValueError) as exc:
            # The SDK builds a 200's reply without checking its shape: one missing its choices
            # or message fails only here, and is as malformed as a body cut short.
            raise malformed(self.name, exc) from exc

    async def aclose(self) -> None:
        """Close every HTTP client this provider opened."""
        for client in self._clients.drain():
            await client.close()
