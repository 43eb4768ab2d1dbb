"""The ``Bus`` protocol: events both ways between the Master Agent and the Build Master
(ARCHITECTURE.md §7). The embedded SQLite log and Redis Streams implement it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from agentfirm.domain.models import Event, StreamName


class Bus(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(
        self,
        task_id: str,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        module_id: str | None = None,
        stream: StreamName = "events",
    ) -> Event:
        """Append an event; the bus assigns ``id``, ``seq`` (per task and stream, from 1, no gaps)
        and ``ts``. Never blocks the work for long: a bus that cannot deliver buffers."""

    async def replay(
        self, task_id: str, *, after_seq: int = 0, stream: StreamName = "events"
    ) -> list[Event]:
        """Every stored event with ``seq > after_seq``, in order."""

    def subscribe(
        self,
        task_id: str,
        *,
        after_seq: int = 0,
        stream: StreamName = "events",
        poll_interval: float = 0.05,
    ) -> AsyncIterator[Event]:
        """Yield events with ``seq > after_seq`` in order, then follow new ones until cancelled
        (works across processes). Never yields the same ``seq`` twice."""
