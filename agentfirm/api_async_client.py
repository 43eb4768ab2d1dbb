"""The async client of the daemon's API over its Unix socket, which the front ends that run an
event loop (the TUI, the Slack bridge) build their clients on: the connection, the exchange with
its errors turned into the core's (see ``api_wire``), and the endpoints every front end reads.

httpx loads on the first request, not on import: a front end imports this before its first frame.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from agentfirm.api_wire import BASE_URL, raise_for, unreachable

if TYPE_CHECKING:
    import httpx


class AsyncDaemonClient:
    """One connection pool to the daemon at ``socket``, opened on first use; ``aclose`` when done
    (or use as an async context manager). Raises ``NotFound`` (404), ``BadInput`` (other 4xx)
    and ``DaemonError`` (no daemon answers, or it failed: 5xx), each with the daemon's message."""

    def __init__(self, socket: Path | str, *, timeout: float = 30.0) -> None:
        self.socket = Path(socket)
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(uds=str(self.socket)),
                base_url=BASE_URL,
                timeout=self.timeout,
            )
        return self._client

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON answer to one request."""
        import httpx

        try:
            response = await self._http.request(method, path, **kwargs)
        except (httpx.TransportError, OSError) as err:
            raise unreachable(self.socket, err) from err
        raise_for(response)
        return response.json()

    # ------------------------------------------------------------------ endpoints
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

    async def events(self, task_id: str, *, after_seq: int = 0) -> AsyncIterator[dict[str, Any]]:
        """The task's events after ``after_seq``, then live ones; ends when the task is final or
        the daemon stops (reconnect with the last ``seq`` seen). Raises ``DaemonError`` when the
        connection fails or breaks."""
        import httpx

        try:
            async with self._http.stream(
                "GET",
                f"/tasks/{task_id}/events",
                params={"after_seq": after_seq},
                # Live events may be minutes apart: only connecting is timed.
                timeout=httpx.Timeout(10.0, read=None),
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise_for(response)
                async for line in response.aiter_lines():
                    if line.strip():
                        yield json.loads(line)
        except (httpx.TransportError, OSError) as err:
            raise unreachable(self.socket, err) from err
