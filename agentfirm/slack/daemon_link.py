"""The bridge's view of the daemon: the few API calls it makes, async (httpx over the daemon's
Unix socket), with the daemon's errors turned into the core's (``NotFound``, ``BadInput``,
``DaemonError``) carrying the daemon's one-line message.

``DaemonLink`` is the seam: ``HttpDaemonLink`` talks to a real daemon; tests may stand in
another implementation for flows the daemon cannot be made to produce on demand.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Mapping
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import httpx

from agentfirm.api_wire import DaemonError, raise_for, unreachable

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


class HttpDaemonLink:
    """``DaemonLink`` over the daemon's HTTP API on ``socket``."""

    def __init__(self, socket: Path | str, *, timeout: float = 120.0) -> None:
        self.socket = Path(socket)
        self._http = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(socket)),
            base_url="http://agentfirm",
            timeout=timeout,
        )

    async def __aenter__(self) -> HttpDaemonLink:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _unavailable(self, err: Exception) -> DaemonError:
        return unreachable(self.socket, err)

    _raise_for = staticmethod(raise_for)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except (httpx.TransportError, OSError) as err:
            raise self._unavailable(err) from err
        self._raise_for(response)
        return response.json()

    async def submit(
        self, request: str, *, offline: bool = False, actor: str | None = None
    ) -> dict[str, Any]:
        """``actor``: who asked (``slack:U123``), for the task's creation transition."""
        body: dict[str, Any] = {"request": request, "offline": offline}
        if actor is not None:
            body["actor"] = actor
        data: dict[str, Any] = await self._call("POST", "/tasks", json=body)
        return data

    async def task(self, task_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", f"/tasks/{task_id}")
        return data

    async def costs(self, task_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", f"/tasks/{task_id}/costs")
        return data

    async def approvals(self, task_id: str, *, pending: bool = False) -> list[dict[str, Any]]:
        params = {"pending": "true"} if pending else {}
        data: list[dict[str, Any]] = await self._call(
            "GET", f"/tasks/{task_id}/approvals", params=params
        )
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
        body: dict[str, Any] = {
            "decision": decision,
            "actor": actor,
            "notes": notes,
            "budget_usd": None if budget_usd is None else str(budget_usd),
            "modules": list(modules),
        }
        if answers is not None:  # only clarify answers carry it (older daemons refuse the key)
            body["answers"] = dict(answers)
        data: dict[str, Any] = await self._call("POST", f"/approvals/{approval_id}", json=body)
        return data

    async def events(self, task_id: str, *, after_seq: int = 0) -> AsyncIterator[dict[str, Any]]:
        try:
            async with self._http.stream(
                "GET",
                f"/tasks/{task_id}/events",
                params={"after_seq": after_seq},
                timeout=httpx.Timeout(10.0, read=None),
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._raise_for(response)
                async for line in response.aiter_lines():
                    if line.strip():
                        yield json.loads(line)
        except (httpx.TransportError, OSError) as err:
            raise self._unavailable(err) from err
