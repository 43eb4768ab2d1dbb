"""Provider health: a circuit breaker per provider over a sliding window of attempts.

closed ──(N failures in a row, or the error rate over the window too high)──▶ open
open ──(cool-down passed: the next caller is let through as a probe)──▶ half_open
half_open ──probe succeeds──▶ closed · ──probe fails──▶ open (a new cool-down)

Only transient failures (429, 5xx, timeouts, connection) count against a provider: a refused
request (400) or key (401/403) says nothing about whether it is up. The clock is injectable.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

BreakerState = Literal["closed", "open", "half_open"]
Clock = Callable[[], float]

_MAX_SAMPLES = 10_000


@dataclass(frozen=True)
class BreakerPolicy:
    """When a provider's circuit opens and for how long. The defaults suit interactive runs:
    five failures in a row, or half of at least ten attempts in the last minute, take a provider
    out for thirty seconds."""

    window_s: float = 60.0
    consecutive_failures: int = 5
    min_calls: int = 10
    max_error_rate: float = 0.5
    cooldown_s: float = 30.0


class _Sample(NamedTuple):
    """One attempt. A tuple of plain values: cheap to make on every call, and the collector
    stops tracking it (a window holds up to ten thousand)."""

    at: float
    ok: bool
    latency_ms: int


@dataclass
class _Breaker:
    state: BreakerState = "closed"
    opened_at: float | None = None
    probing: bool = False
    streak: int = 0
    samples: deque[_Sample] = field(default_factory=lambda: deque(maxlen=_MAX_SAMPLES))


class Health:
    """Circuit breakers for every provider, created on first mention. Not thread-safe: use it
    from one event loop (the router's)."""

    def __init__(self, policy: BreakerPolicy | None = None, clock: Clock = time.monotonic) -> None:
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._breakers: dict[str, _Breaker] = {}

    def _breaker(self, provider: str) -> _Breaker:
        breaker = self._breakers.get(provider)
        if breaker is None:
            breaker = self._breakers[provider] = _Breaker()
        return breaker

    def _window(self, breaker: _Breaker) -> deque[_Sample]:
        horizon = self._clock() - self.policy.window_s
        while breaker.samples and breaker.samples[0].at < horizon:
            breaker.samples.popleft()
        return breaker.samples

    # -- asking --------------------------------------------------------------------------------
    def allow(self, provider: str, *, force: bool = False) -> bool:
        """Whether an attempt may go to ``provider`` now. An open circuit whose cool-down has
        passed turns half-open and lets this one caller through as the probe; later callers wait
        for its outcome. ``force`` lets the attempt through whatever the state (used when every
        provider of a chain is open: trying beats failing without trying)."""
        breaker = self._breaker(provider)
        if breaker.state == "closed":
            return True
        if breaker.state == "open":
            opened = breaker.opened_at or 0.0
            if not force and self._clock() - opened < self.policy.cooldown_s:
                return False
            breaker.state = "half_open"
            breaker.probing = True
            return True
        if breaker.probing and not force:
            return False
        breaker.probing = True
        return True

    def state(self, provider: str) -> BreakerState:
        """The circuit's state as last changed (an open circuit past its cool-down still says
        ``open`` until a caller probes it)."""
        return self._breaker(provider).state

    def opened_at(self, provider: str) -> float | None:
        """When the circuit last opened (clock time), None if it never did."""
        return self._breaker(provider).opened_at

    # -- telling -------------------------------------------------------------------------------
    def record_success(self, provider: str, latency_ms: int) -> None:
        breaker = self._breaker(provider)
        breaker.samples.append(_Sample(self._clock(), True, latency_ms))
        breaker.streak = 0
        if breaker.state == "half_open":
            breaker.state = "closed"
            breaker.probing = False
            breaker.samples.clear()  # a fresh start: old failures no longer describe it

    def record_failure(self, provider: str, latency_ms: int) -> None:
        """A transient failure (429, 5xx, timeout, connection)."""
        breaker = self._breaker(provider)
        breaker.samples.append(_Sample(self._clock(), False, latency_ms))
        breaker.streak += 1
        if breaker.state == "half_open" or (
            breaker.state == "closed" and self._should_open(breaker)
        ):
            breaker.state = "open"
            breaker.opened_at = self._clock()
            breaker.probing = False

    def release(self, provider: str) -> None:
        """An attempt that ended neither way (refused, cancelled, over budget): a probe's slot
        is freed for the next caller; nothing else changes."""
        self._breaker(provider).probing = False

    def _should_open(self, breaker: _Breaker) -> bool:
        policy = self.policy
        if breaker.streak >= policy.consecutive_failures:
            return True
        window = self._window(breaker)
        if len(window) < policy.min_calls:
            return False
        failed = sum(1 for sample in window if not sample.ok)
        return failed / len(window) >= policy.max_error_rate

    # -- showing -------------------------------------------------------------------------------
    def snapshot(self, providers: Iterable[str]) -> list[dict[str, Any]]:
        """For ``agentfirm providers``: per provider, its ``state``, ``error_rate``, ``calls``
        and ``failures`` over the window, and ``p50_latency_ms`` of its successful calls there
        (None without any)."""
        rows: list[dict[str, Any]] = []
        for provider in providers:
            breaker = self._breaker(provider)
            window = self._window(breaker)
            failures = sum(1 for sample in window if not sample.ok)
            latencies = [sample.latency_ms for sample in window if sample.ok]
            rows.append(
                {
                    "provider": provider,
                    "state": breaker.state,
                    "error_rate": round(failures / len(window), 4) if window else 0.0,
                    "p50_latency_ms": statistics.median(latencies) if latencies else None,
                    "calls": len(window),
                    "failures": failures,
                }
            )
        return rows
