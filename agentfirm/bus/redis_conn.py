"""Redis plumbing shared by the Redis bus and the work queue: a client that never retries behind
the caller's back, backoff with jitter, and a bounded retry for calls that cannot be buffered."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.exceptions
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from agentfirm.errors import AgentfirmError

T = TypeVar("T")

# Any Redis trouble: a publish is buffered and the flusher backs off (the work never stops for
# the bus, whatever Redis answers).
ANY_REDIS_TROUBLE = (redis.exceptions.RedisError, OSError, TimeoutError)
# Redis is away (not the request wrong): worth retrying the same call.
UNREACHABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    TimeoutError,
)


class BusUnavailable(AgentfirmError):
    """Redis stayed unreachable for a call that cannot be buffered (a read, a work-queue call)."""


class Backoff:
    """Exponential backoff with jitter: the n-th delay is in [d/2, d], d = min(cap, base·2ⁿ), so
    clients that lost the same server do not all come back in the same instant."""

    def __init__(self, base: float = 0.05, cap: float = 2.0) -> None:
        self.base, self.cap, self._attempts = base, cap, 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * 2.0**self._attempts)
        self._attempts = min(self._attempts + 1, 32)
        return delay / 2 + random.uniform(0, delay / 2)

    def reset(self) -> None:
        self._attempts = 0


def connect(url: str, *, connect_timeout: float, max_connections: int = 64) -> Redis:
    """A client for ``url`` (connections are made on first use) that neither retries on its own
    (each caller chooses between buffering, backing off and giving up) nor times reads out.

    Bound every call with ``asyncio.timeout`` instead: with a socket timeout set, redis-py sends
    through ``asyncio.wait_for``, which on Python 3.11 can swallow a cancellation that arrives as
    the send completes — a task cancelled mid-call would then carry on as if nothing happened.
    Callers beyond ``max_connections`` wait for a free connection rather than fail.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=None,
        decode_responses=True,
        socket_timeout=None,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 0),
    )
    return Redis.from_pool(pool)


def redis_location(client: Redis) -> str:
    """``host:port`` of the client's server, for messages and logs (never the password)."""
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


async def retry_unreachable(
    call: Callable[[], Awaitable[T]],
    *,
    attempt_timeout: float,
    patience: float,
    max_backoff: float,
    where: str,
) -> T:
    """``await call()``, each attempt cut at ``attempt_timeout`` s, retried with backoff while
    Redis is unreachable; ``BusUnavailable`` once ``patience`` s have passed. Other Redis errors
    (a bad command, NOGROUP…) propagate at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    backoff = Backoff(cap=max_backoff)
    while True:
        try:
            async with asyncio.timeout(attempt_timeout):
                return await call()
        except UNREACHABLE as err:
            if loop.time() >= deadline:
                raise BusUnavailable(
                    f"Redis at {where} is unreachable: {err}",
                    hint="start Redis, or fix AGENTFIRM_REDIS_URL",
                ) from err
            await asyncio.sleep(backoff.next_delay())
