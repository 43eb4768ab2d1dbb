"""An async client for the daemon's API over its Unix socket (httpx), for the TUI: the event loop
never blocks on the daemon. Errors come back as the core's: ``NotFound`` (404), ``BadInput``
(other 4xx) and ``Unavailable`` (no daemon answers, or it failed: 5xx) — each with the daemon's
one-line message.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from agentfirm.api_wire import DaemonError, raise_for, unreachable

from .source import Decision, Submission

if TYPE_CHECKING:
    import httpx

_BASE_URL = "http://agentfirm"


def _submitter(actor: str) -> str:
    """``front:user`` as the daemon takes it: a user outside ``[A-Za-z0-9_.@-]{1,64}`` is made
    to fit (a login name with a space must not refuse the submission)."""
    front, _, user = actor.partition(":")
    user = re.sub(r"[^A-Za-z0-9_.@-]", "_", user)[:64]
    return f"{front}:{user or 'unknown'}"


# No daemon answers on the socket, or it failed (5xx).
Unavailable = DaemonError


class DaemonApi:
    """One connection pool to the daemon at ``socket``, opened on first use (httpx loads after
    the TUI's first frame); ``aclose`` when done."""

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
                base_url=_BASE_URL,
                timeout=self.timeout,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    # ------------------------------------------------------------------ plumbing
    def _unavailable(self, err: Exception) -> DaemonError:
        return unreachable(self.socket, err)

    _raise_for = staticmethod(raise_for)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = await self._http.request(method, path, **kwargs)
        except (httpx.TransportError, OSError) as err:
            raise self._unavailable(err) from err
        self._raise_for(response)
        return response.json()

    # ------------------------------------------------------------------ endpoints
    async def health(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", "/health")
        return data

    async def tasks(self, *, limit: int = 200) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = await self._call("GET", "/tasks", params={"limit": limit})
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

    async def decide(self, approval_id: str, decision: Decision, *, actor: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "decision": decision.decision,
            "actor": actor,
            "notes": decision.notes,
            "budget_usd": None if decision.budget_usd is None else str(decision.budget_usd),
            "modules": list(decision.modules),
        }
        if decision.answers is not None:
            # Only sent when there are answers: a daemon without `clarify` refuses the field.
            body["answers"] = dict(decision.answers)
        data: dict[str, Any] = await self._call("POST", f"/approvals/{approval_id}", json=body)
        return data

    async def submit(self, submission: Submission) -> dict[str, Any]:
        body: dict[str, Any] = {
            "request": submission.request,
            "persona": submission.persona,
            "budget_usd": None if submission.budget_usd is None else str(submission.budget_usd),
            "offline": submission.offline,
        }
        if submission.attachments:
            body["attachments"] = list(submission.attachments)
        if submission.runner is not None:
            body["runner"] = submission.runner
        if submission.actor is not None:
            body["actor"] = _submitter(submission.actor)
        data: dict[str, Any] = await self._call("POST", "/tasks", json=body)
        return data

    async def artifacts(self, task_id: str) -> list[dict[str, Any]]:
        """The latest output of each module: ``module_id``, ``kind``, ``created_at``, ``size``."""
        data: list[dict[str, Any]] = await self._call("GET", f"/tasks/{task_id}/artifacts")
        return data

    async def artifact(self, task_id: str, module_id: str) -> dict[str, Any]:
        """A module's latest output: its metadata and ``markdown``. ``NotFound`` when it has none
        yet (or the daemon is older than the endpoint)."""
        data: dict[str, Any] = await self._call(
            "GET", f"/tasks/{task_id}/artifacts/{quote(module_id, safe='')}"
        )
        return data

    async def cancel(self, task_id: str, *, reason: str, actor: str) -> dict[str, Any]:
        data: dict[str, Any] = await self._call(
            "POST", f"/tasks/{task_id}/cancel", json={"reason": reason, "actor": actor}
        )
        return data

    async def personas(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = await self._call("GET", "/personas")
        return data

    async def submission_fields(self) -> frozenset[str]:
        """The fields ``POST /tasks`` accepts, from the daemon's OpenAPI document: the new-task
        screen offers only what this daemon takes."""
        schema = await self._call("GET", "/openapi.json")
        props = schema.get("components", {}).get("schemas", {}).get("TaskSubmission", {})
        return frozenset(props.get("properties", {}))

    async def events(self, task_id: str, *, after_seq: int = 0) -> AsyncIterator[dict[str, Any]]:
        """The task's events after ``after_seq``, then live ones; ends when the task is final or
        the daemon stops (reconnect with the last ``seq`` seen). Raises ``Unavailable`` when the
        connection fails or breaks."""
        import httpx

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
