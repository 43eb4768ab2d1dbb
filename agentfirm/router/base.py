"""Router contracts: messages, the ``Provider`` seam, what a call returns, and what callers (the
Master and the Build Master) may ask of the router (``RouterLike``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from agentfirm.domain.models import Tier
from agentfirm.domain.tools import ToolCall, ToolResult, ToolSpec
from agentfirm.errors import ProviderError


@dataclass(frozen=True)
class Message:
    """One chat message. ``cache`` marks the end of a prefix that other calls repeat (the
    upstream context sibling sub-agents share): providers with prompt caching cache everything up
    to and including it. When no message is marked, the last system message is the breakpoint.

    Tool use: an ``assistant`` message carries the ``tool_calls`` the model asked for (its
    ``content`` is any text it said with them); the next message, role ``tool``, carries one
    ``ToolResult`` per call in ``tool_results`` (its ``content`` is unused). Each provider turns
    the pair into its native protocol."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    cache: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()


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
"""Providers whose every model can search the web itself (a server-side tool) when a request
allows it: Anthropic's ``web_search_20250305`` tool, Gemini's ``google_search`` grounding.
OpenAI's ``web_search`` tool serves some of its models (``searches_natively``)."""


def searches_beside_tools(provider: str, model: str) -> bool:
    """Whether ``provider:model`` can search the web itself in a request that also offers
    function tools. Gemini before 3 cannot: ``google_search`` and function declarations do not
    combine in one ``generateContent`` request (Gemini 3 combines them, its server-side tool
    parts handed back each turn: ``providers.gemini``). The agent loop gives such a model a
    ``web_search`` function instead, answered by a grounded call of its own."""
    if provider == "gemini":
        from agentfirm.router.providers.gemini import searches_beside_functions

        return searches_beside_functions(model)
    return searches_natively(provider, model)


def searches_natively(provider: str, model: str) -> bool:
    """Whether ``provider:model`` searches the web itself when a request allows it."""
    if provider in NATIVE_WEB_SEARCH:
        return True
    if provider == "openai":
        from agentfirm.router.providers.openai_responses import searches_on

        return searches_on(model)
    return False


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
    tools: tuple[ToolSpec, ...] = ()
    """Tools the model may ask for this turn. With an ``output_schema`` too, the model either
    asks for tools or answers with the structured output."""
    call_id: str = ""
    """The ledger's id of this attempt: a provider that keeps a record of its calls
    (``reconcile.UsageLookup``) tags the request with it, to look its usage up later."""


@dataclass(frozen=True)
class ProviderResponse:
    text: str
    usage: Usage
    model: str
    """The model the provider says served the call (may be a dated variant)."""
    tool_calls: tuple[ToolCall, ...] = ()
    """The tools the model asked for, in its order (several at once: run them all). Non-empty:
    ``text`` is only what it said alongside, not the answer."""
    sources: tuple[str, ...] = ()
    """The web pages the answer cites after a native search, as ``[title](url)`` links. A
    free-text answer also lists them in ``text``; a structured one cannot (its text must stay
    the JSON), so this is where its sources survive."""


class Provider(Protocol):
    """One LLM provider. Implementations import their SDK inside their own module only, and turn
    SDK errors into ``ProviderError`` subclasses of ``router.errors`` (retryable or not).

    Optional: ``writes_cache = True`` on a provider whose calls may write a prompt cache (priced
    above plain input), so the router reserves input at the cache-write rate; ``async def
    aclose()`` to release its HTTP clients, called by ``Router.aclose``; ``def
    max_web_searches(model) -> int``, the most searches (billed per search) one call to
    ``model`` allowed to search may run, so the router reserves their fees (see
    ``web_search_allowance``); ``keeps_record(request)`` and ``lookup_usage(call_ids)``, a
    provider that can say later what it billed for a call whose answer never came
    (``reconcile.UsageLookup``); ``lookup_response(call_id, request)``, one that can give back
    the whole answer of such a call (``reconcile.ResponseLookup``)."""

    name: str
    simulated: bool

    async def complete(self, request: ProviderRequest) -> ProviderResponse: ...


def web_search_allowance(provider: object, model: str) -> int:
    """The most searches one call to ``provider``'s ``model`` may run when it is allowed to
    search: what the router reserves fees (and result pages) for. Per model, not per provider:
    a model the provider's search tool does not serve runs none, so a small model is not
    refused for fees it can never incur."""
    limit = getattr(provider, "max_web_searches", None)
    return 0 if limit is None else int(limit(model))


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
    tool_calls: tuple[ToolCall, ...] = ()
    """The tools the model asked for instead of answering (``data`` is None then)."""
    sources: tuple[str, ...] = ()
    """The pages the answer cites (``ProviderResponse.sources``)."""


@dataclass(frozen=True)
class SentCall:
    """An attempt about to be sent: its ledger id and the chain entry it goes to. A caller that
    keeps it (the agent loop's journal) can hand it back to ``RouterLike.call`` as ``recover``
    after a crash cut the answer off."""

    call_id: str
    provider: str
    model: str
    at: datetime | None = None
    """When it was about to be sent, as its keeper recorded it (None: not known): how long its
    provider's record of it may still be on its way is counted from then."""
    repair: bool = False
    """An attempt of the call's repair ask (the second, after an answer that failed its
    schema), not of its first."""
    repaired: SentCall | None = None
    """Handed back as ``recover``: the attempt of the repair sent after this one's answer, cut
    off too (None: none was)."""


Sent = Callable[[SentCall], Awaitable[object]]
"""Told of each attempt of a call (its repair's marked ``repair``) before its request leaves
(``RouterLike.call``'s ``sent``): a crash from then on may leave the provider with a request
nobody read the answer of."""


class RouterLike(Protocol):
    """What the Build Master needs from the Model Router. ``call`` raises ``BudgetExceeded`` when
    the budget refuses the call (nothing was spent) and ``ProviderError`` when providers fail.
    ``sent`` and ``recover``: see ``Router.call``."""

    async def call(
        self,
        *,
        tier: Tier,
        messages: Sequence[Message],
        task_id: str,
        module_id: str | None = None,
        output_schema: dict[str, Any] | None = None,
        max_tokens: int = 2048,
        tools: Sequence[ToolSpec] = (),
        sent: Sent | None = None,
        recover: SentCall | None = None,
    ) -> CallResult: ...


def structured_output(result: CallResult, *, module_id: str) -> dict[str, Any]:
    """The call's JSON object. Raises ``ProviderError`` (retryable by the Build Master) when the
    provider returned none."""
    if result.data is not None:
        return result.data
    try:
        parsed = json.loads(result.text)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ProviderError(
            f"{result.provider}:{result.model} returned no JSON object for {module_id}",
            hint="retry, or put a model with structured output first in that tier's chain",
        )
    return parsed


class Notify(Protocol):
    """Where the router says what a task's people should hear of (``Bus.publish`` fits):
    ``budget.overrun`` when a call cost more than it reserved, ``provider.key_refused`` when a
    provider refused its key and another took over."""

    def __call__(
        self,
        task_id: str,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        module_id: str | None = None,
    ) -> Awaitable[object]: ...


async def notify_nobody(
    task_id: str, type: str, payload: dict[str, Any] | None = None, *, module_id: str | None = None
) -> None:
    """The ``Notify`` of a router nobody listens to (tests, one-off commands)."""
