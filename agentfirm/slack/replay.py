"""Replay protection: Slack retries an event it thinks went unanswered (same ``event_id``), and a
captured signed request can be sent again while its timestamp is fresh (same signature). The
first of each is handled; the others are acknowledged and dropped."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# Signatures are accepted for 5 minutes either side of now: remember keys a little longer.
DEFAULT_TTL_S = 15 * 60.0


class ReplayGuard:
    """Remembers request keys for ``ttl`` seconds (at most ``max_keys`` of them, oldest
    forgotten first)."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL_S,
        max_keys: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, keys: Sequence[str]) -> bool:
        """True when none of ``keys`` was seen within the ttl; records them all either way."""
        now = self._clock()
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if now - at < self.ttl and len(self._seen) < self.max_keys:
                break
            self._seen.popitem(last=False)
        fresh = not any(key in self._seen for key in keys)
        for key in keys:
            self._seen[key] = now
            self._seen.move_to_end(key)
        return fresh


def request_keys(body: Mapping[str, Any], headers: Mapping[str, Sequence[str]]) -> list[str]:
    """What identifies a request: its event id (Slack's retries keep it) and its signature (a
    signature covers timestamp and body, so the same one means the same request)."""
    keys = []
    event_id = body.get("event_id")
    if isinstance(event_id, str) and event_id:
        keys.append(f"event:{event_id}")
    signature = next(iter(headers.get("x-slack-signature") or ()), "")
    if signature:
        keys.append(f"signature:{signature}")
    return keys
