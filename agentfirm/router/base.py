"""Router contracts: messages, the ``Provider`` seam, and what a call returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from agentfirm.domain import Tier


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Usage:
    """Token counts of one call. ``input_tokens`` is the TOTAL input, cached tokens included
    (genai-prices' convention; providers that report cache reads separately add them first)."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0


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


@dataclass(frozen=True)
class ProviderRequest:
    model: str
    messages: tuple[Message, ...]
    max_tokens: int
    tier: Tier
    output_schema: dict[str, Any] | None = None
    timeout_s: float = 120.0


@dataclass(frozen=True)
class ProviderResponse:
    text: str
    usage: Usage
    model: str
    """The model the provider says served the call (may be a dated variant)."""


class Provider(Protocol):
    """One LLM provider. Implementations import their SDK inside their own module only, and turn
    SDK errors into ``ProviderError`` subclasses of ``router.errors`` (retryable or not)."""

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
