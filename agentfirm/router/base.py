"""Router contracts: messages, the ``Provider`` seam, and what a call returns."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from agentfirm.domain import Tier


@dataclass(frozen=True)
class Message:
    """One chat message. ``cache`` marks the end of a prefix that other calls repeat (the
    upstream context sibling sub-agents share): providers with prompt caching cache everything up
    to and including it. When no message is marked, the last system message is the breakpoint."""

    role: Literal["system", "user", "assistant"]
    content: str
    cache: bool = False


@dataclass(frozen=True)
class Usage:
    """Token counts of one call. ``input_tokens`` is the TOTAL input, cached tokens included
    (genai-prices' convention; providers that report cache reads separately add them first)."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    """Input tokens read from a prompt cache (priced at the cached rate)."""
    output_tokens: int = 0
    cache_write_tokens: int = 0
    """Input tokens written to a prompt cache (Anthropic prices them above plain input); part of
    ``input_tokens`` like ``cached_input_tokens``."""
    web_searches: int = 0
    """Server-side web searches the provider ran for the call (billed per search)."""


@dataclass(frozen=True)
class ChainEntry:
    """One ``provider:model`` link of a tier's fallback chain. ``price_as`` names the provider
    whose list price applies when it differs from the one serving the call (the offline provider
    simulating ``anthropic:claude-sonnet-4-5`` is priced as Anthropic's model)."""

    provider: str
    model: str
    price_as: str | None = None

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.model}"


NATIVE_WEB_SEARCH = frozenset({"anthropic", "gemini"})
"""Providers that can search the web themselves (a server-side tool) when a request allows it:
Anthropic's ``web_search_20250305`` tool, Gemini's ``google_search`` grounding."""

_WEB_SEARCH: ContextVar[bool] = ContextVar("agentfirm_web_search", default=False)


@contextlib.contextmanager
def web_search_allowed() -> Iterator[None]:
    """Calls made inside this block (and the tasks it starts) let providers with native web
    search use it. A context variable rather than a ``Router.call`` argument: the router passes
    requests through untouched, so only the caller that wants search (the research agent) and
    the providers that offer it need to know about it."""
    token = _WEB_SEARCH.set(True)
    try:
        yield
    finally:
        _WEB_SEARCH.reset(token)


@dataclass(frozen=True)
class ProviderRequest:
    model: str
    messages: tuple[Message, ...]
    max_tokens: int
    tier: Tier
    output_schema: dict[str, Any] | None = None
    timeout_s: float = 120.0
    web_search: bool = field(default_factory=_WEB_SEARCH.get)
    """Whether the provider may search the web for this call (see ``web_search_allowed``);
    providers without native search ignore it."""


@dataclass(frozen=True)
class ProviderResponse:
    text: str
    usage: Usage
    model: str
    """The model the provider says served the call (may be a dated variant)."""


class Provider(Protocol):
    """One LLM provider. Implementations import their SDK inside their own module only, and turn
    SDK errors into ``ProviderError`` subclasses of ``router.errors`` (retryable or not).

    Optional: ``writes_cache = True`` on a provider whose calls may write a prompt cache (priced
    above plain input), so the router reserves input at the cache-write rate; ``async def
    aclose()`` to release its HTTP clients, called by ``Router.aclose``; ``max_web_searches``,
    the most searches (billed per search) one call allowed to search may run, so the router
    reserves their fees."""

    name: str
    simulated: bool

    async def complete(self, request: ProviderRequest) -> ProviderResponse: ...


@dataclass(frozen=True)
class CallResult:
    call_id: str
    tier: Tier
    provider: str
    model: str
    text: str
    data: dict[str, Any] | None
    """The parsed, schema-valid JSON when an ``output_schema`` was given."""
    usage: Usage
    cost_nano: int
    latency_ms: int
    simulated: bool
    attempts: list[str] = field(default_factory=list)
    """``provider:model`` of every attempt, in order (fallbacks included)."""
