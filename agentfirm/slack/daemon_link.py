"""The bridge's view of the daemon: the few API calls it makes, async (httpx over the daemon's
Unix socket), with the daemon's errors turned into the core's (``NotFound``, ``BadInput``,
``DaemonError``) carrying the daemon's one-line message.

``DaemonLink`` is the seam: ``HttpDaemonLink`` talks to a real daemon; tests may stand in
another implementation for flows the daemon cannot be made to produce on demand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from agentfirm.api_async_client import AsyncDaemonClient
from agentfirm.api_wire import DaemonError, decision_body

# No daemon answers at the socket, or it failed (5xx).
DaemonUnavailable = DaemonError


class DaemonLink(Protocol):
    async def submit(
        self, request: str, *, offline: bool = False, actor: str | None = None
    ) -> dict[str, Any]: ...

    async def task(self, task_id: str) -> dict[str, Any]: ...

    async def costs(self, task_id: str) -> dict[str, Any]: ...

    async def approvals(self, task_id: str, *, pending: bool = False) -> list[dict[str, Any]]: ...

    async def decide(
        self,
        approval_id: str,
        decision: str,
        *,
        actor: str,
        notes: str = "",
        budget_usd: Decimal | None = None,
        modules: Collection[str] = (),
        answers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]: ...

    def events(self, task_id: str, *, after_seq: int = 0) -> AsyncIterator[dict[str, Any]]:
        """The task's events after ``after_seq``, then live ones; ends when the task is final
        or the daemon stops."""

    async def aclose(self) -> None: ...


class HttpDaemonLink(AsyncDaemonClient):
    """``DaemonLink`` over the daemon's HTTP API on ``socket``: ``task``, ``costs``,
    ``approvals``, ``events`` and ``aclose`` come from ``AsyncDaemonClient``."""

    def __init__(self, socket: Path | str, *, timeout: float = 120.0) -> None:
        super().__init__(socket, timeout=timeout)

    async def submit(
        self, request: str, *, offline: bool = False, actor: str | None = None
    ) -> dict[str, Any]:
        """``actor``: who asked (``slack:U123``), for the task's creation transition."""
        body: dict[str, Any] = {"request": request, "offline": offline}
        if actor is not None:
            body["actor"] = actor
        data: dict[str, Any] = await self._call("POST", "/tasks", json=body)
        return data

    async def decide(
        self,
        approval_id: str,
        decision: str,
        *,
        actor: str,
        notes: str = "",
        budget_usd: Decimal | None = None,
        modules: Collection[str] = (),
        answers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        body = decision_body(
            decision,
            actor=actor,
            notes=notes,
            budget_usd=budget_usd,
            modules=modules,
            answers=answers,
        )
        data: dict[str, Any] = await self._call("POST", f"/approvals/{approval_id}", json=body)
        return data
