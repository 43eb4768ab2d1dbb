"""What the SDK-backed providers share: reading the key (cached for a few seconds), one SDK
client per key value, the ``SdkProvider`` skeleton built on them, turning HTTP statuses into the
router's error classes, and the links to the pages a searched answer cites."""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Generic, TypeVar

from agentfirm.router.base import ProviderRequest, ProviderResponse
from agentfirm.router.errors import (
    FatalProviderError,
    ProviderAuthError,
    ProviderError,
    ProviderTimeout,
    RetryableProviderError,
)

GetSecret = Callable[[str], str | None]
"""``SecretStore.get``: the secret's current value, or None."""

Clock = Callable[[], float]

KEY_TTL_S = 5.0
"""How long a provider reuses a key it read. Reading goes through the OS keyring, which may block,
so it runs in a worker thread: about 0.3 ms a call, a third of what the router adds. A key rotated
with ``agentfirm secrets rotate`` (another process) is picked up within this long, or at once when
the provider refuses the old key (``KeySource.call`` reads again and retries)."""

_C = TypeVar("_C")
_T = TypeVar("_T")

# Statuses worth another attempt: timeouts, conflicts, rate limits, and every server error
# (Anthropic's 529 "overloaded" included).
_RETRYABLE = frozenset({408, 409, 429})
_AUTH = frozenset({401, 403})
_MAX_DETAIL = 300


class KeySource:
    """Reads a provider's key from the secret store, so a rotated key takes effect without a
    restart. ``names`` are tried in order (``GEMINI_API_KEY`` before ``GOOGLE_API_KEY``).

    With ``ttl_s`` > 0 what was read (a missing key too) is reused for that long; 0 reads on every
    call. The value lives only in this object's memory, like the SDK client built from it."""

    def __init__(
        self,
        provider: str,
        get_secret: GetSecret,
        names: tuple[str, ...],
        *,
        ttl_s: float = 0.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._provider = provider
        self._get_secret = get_secret
        self.names = names
        self._ttl_s = ttl_s
        self._clock = clock
        self._cached: tuple[str | None, str] | None = None
        self._expires = 0.0

    def _lookup(self) -> tuple[str | None, str]:
        for name in self.names:
            value = self._get_secret(name)
            if value:
                return value, name
        return None, self.names[0]

    def invalidate(self) -> None:
        """Forget the cached key: the next ``read`` asks the secret store."""
        self._cached = None

    async def read(self, *, required: bool = True) -> tuple[str | None, str]:
        """``(key, the name it was found under)``, from the cache while it is fresh. The keyring
        may block (D-Bus), so a lookup runs in a worker thread. Raises ``ProviderAuthError`` when
        ``required`` and no name has a value."""
        found = self._cached
        if found is None or self._clock() >= self._expires:
            found = await asyncio.to_thread(self._lookup)
            if self._ttl_s > 0:
                self._cached, self._expires = found, self._clock() + self._ttl_s
        key, name = found
        if key is None and required:
            raise ProviderAuthError(
                provider=self._provider, key_env=name, detail="no key is set any more"
            )
        return key, name

    async def call(
        self,
        send: Callable[[str | None, str], Awaitable[_T]],
        *,
        required: bool = True,
    ) -> _T:
        """``send(key, key_name)`` with the current key. When the provider refuses a cached key,
        the store is asked again and, if the key changed meanwhile (rotated), ``send`` runs once
        more with the new one: a rotation must not get the provider taken out of the chain."""
        key, name = await self.read(required=required)
        try:
            return await send(key, name)
        except ProviderAuthError:
            if self._ttl_s <= 0:
                raise  # the key was read just now: it is the current one
            self.invalidate()
            fresh, fresh_name = await self.read(required=required)
            if fresh == key:
                raise
            return await send(fresh, fresh_name)


class ClientCache(Generic[_C]):
    """One SDK client per key value: a new key (rotation) gets a new client on its next call.
    Clients replaced by a rotation are kept until ``drain`` so calls still using them finish."""

    def __init__(self, factory: Callable[[str], _C]) -> None:
        self._factory = factory
        self._key: str | None = None
        self._client: _C | None = None
        self._retired: list[_C] = []

    def get(self, key: str) -> _C:
        if self._client is None or key != self._key:
            if self._client is not None:
                self._retired.append(self._client)
            self._client = self._factory(key)
            self._key = key
        return self._client

    def drain(self) -> list[_C]:
        """Every client built so far (current and retired); the cache starts empty again."""
        clients = [*self._retired, *([self._client] if self._client is not None else [])]
        self._retired, self._client, self._key = [], None, None
        return clients


class SdkProvider(ABC, Generic[_C]):
    """A provider that calls its vendor's SDK (client type ``_C``) with the key the secret store
    holds at call time, one SDK client per key value, all closed by ``aclose``. A subclass sets
    ``name``, ``sdk_module`` and ``key_names`` (tried in order) and implements ``_new_client``
    (SDK retries off: the router retries and falls back), ``_send`` and ``_close_client``."""

    name: str
    sdk_module: str
    key_names: tuple[str, ...]
    simulated = False

    def __init__(
        self,
        *,
        get_secret: GetSecret,
        base_url: str | None = None,
        key_ttl_s: float = 0.0,
        clock: Clock = time.monotonic,
    ) -> None:
        # Load the SDK now rather than on the first call: an import there would block the event
        # loop and eat into that call's timeout.
        importlib.import_module(self.sdk_module)
        self._base_url = base_url
        self._keys = KeySource(self.name, get_secret, self.key_names, ttl_s=key_ttl_s, clock=clock)
        self._clients: ClientCache[_C] = ClientCache(self._new_client)

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        async def send(key: str | None, key_env: str) -> ProviderResponse:
            assert key is not None  # the key source raises when the key is missing
            return await self._send(request, self._clients.get(key), key_env)

        return await self._keys.call(send)

    async def aclose(self) -> None:
        """Close every HTTP client this provider opened."""
        for client in self._clients.drain():
            await self._close_client(client)

    @abstractmethod
    def _new_client(self, key: str) -> _C:
        """An SDK client sending ``key`` to ``self._base_url`` (None: the vendor's)."""

    @abstractmethod
    async def _send(self, request: ProviderRequest, client: _C, key_env: str) -> ProviderResponse:
        """One HTTP request for ``request``; the SDK's errors become the router's
        (``status_error`` naming ``key_env``, ``timed_out``, ``connection_failed``,
        ``malformed``)."""

    @abstractmethod
    async def _close_client(self, client: _C) -> None: ...


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """The wait a response asks for: ``retry-after-ms``, else ``retry-after`` in seconds or as an
    HTTP date. None when absent or unreadable."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def status_error(
    *,
    provider: str,
    status: int,
    message: str,
    key_env: str,
    retry_after: float | None = None,
) -> ProviderError:
    """The router error for an HTTP error ``status``: 401/403 → ``ProviderAuthError`` naming
    ``key_env``; 408/409/429/5xx → ``RetryableProviderError``; any other 4xx →
    ``FatalProviderError`` carrying the provider's ``message``."""
    detail = _short(message)
    if status in _AUTH:
        return ProviderAuthError(provider=provider, key_env=key_env, status=status, detail=detail)
    if status in _RETRYABLE or status >= 500:
        return RetryableProviderError(
            f"{provider} returned {status}: {detail}", retry_after=retry_after, status=status
        )
    return FatalProviderError(f"{provider} refused the request ({status}): {detail}", status=status)


def timed_out(provider: str, timeout_s: float) -> ProviderTimeout:
    return ProviderTimeout(f"{provider} did not answer within {timeout_s:g}s")


def connection_failed(provider: str, exc: BaseException) -> RetryableProviderError:
    reason = _short(str(exc)) or type(exc).__name__
    return RetryableProviderError(f"{provider} connection failed: {reason}")


def malformed(provider: str, exc: BaseException) -> RetryableProviderError:
    return RetryableProviderError(
        f"{provider} returned a malformed response: {_short(str(exc)) or type(exc).__name__}"
    )


def markdown_links(pages: Iterable[tuple[str | None, str]]) -> list[str]:
    """``[title](url)`` for each ``(title, url)`` a searched answer cites, once each, in the order
    first cited; the url stands in for a missing title."""
    return list(dict.fromkeys(f"[{title or url}]({url})" for title, url in pages))
