"""An async client for the daemon's API over its Unix socket (httpx), for the TUI: the event loop
never blocks on the daemon. Errors come back as the core's: ``NotFound`` (404), ``BadInput``
(other 4xx) and ``Unavailable`` (no daemon answers, or it failed: 5xx) — each with the daemon's
one-line message.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from agentfirm.api_async_client import AsyncDaemonClient
from agentfirm.api_wire import DaemonError, decision_body

from .source import Decision, Submission


def _submitter(actor: str) -> str:
    """``front:user`` as the daemon takes it: a user outside ``[A-Za-z0-9_.@-]{1,64}`` is made
    to fit (a login name with a space must not refuse the submission)."""
    front, _, user = actor.partition(":")
    user = re.sub(r"[^A-Za-z0-9_.@-]", "_", user)[:64]
    return f"{front}:{user or 'unknown'}"


# No daemon answers on the socket, or it failed (5xx).
Unavailable = DaemonError


class DaemonApi(AsyncDaemonClient):
    """One connection pool to the daemon at ``socket``, opened on first use (httpx loads after
    the TUI's first frame); ``aclose`` when done. ``task``, ``costs``, ``approvals`` and
    ``events`` come from ``AsyncDaemonClient``."""

    async def health(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", "/health")
        return data

    async def tasks(self, *, limit: int = 200) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = await self._call("GET", "/tasks", params={"limit": limit})
        return data

    async def decide(self, approval_id: str, decision: Decision, *, actor: str) -> dict[str, Any]:
        body = decision_body(
            decision.decision,
            actor=actor,
            notes=decision.notes,
            budget_usd=decision.budget_usd,
            modules=decision.modules,
            answers=decision.answers,
        )
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
