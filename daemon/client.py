"""A client for the daemon's API over its Unix socket (httpx), for the CLI and scripts.

Errors come back as the core's: ``NotFound`` (404), ``BadInput`` (other 4xx), ``DaemonError``
(5xx, or no daemon listening) — each with the daemon's one-line message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from agentfirm.api_wire import BASE_URL, DaemonError, decision_body, raise_for, unreachable
from agentfirm.errors import AgentfirmError
from agentfirm.settings import Settings

from .process import socket_path, start


class DaemonClient:
    """One connection pool to the daemon at ``socket``. Use as a context manager, or ``close``."""

    def __init__(self, socket: Path | str, *, timeout: float = 30.0) -> None:
        self.socket = Path(socket)
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(socket)), base_url=BASE_URL, timeout=timeout
        )

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ plumbing
    def _unavailable(self, err: Exception) -> DaemonError:
        return unreachable(self.socket, err)

    _raise_for = staticmethod(raise_for)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.TransportError, OSError) as err:
            raise self._unavailable(err) from err
        self._raise_for(response)
        return response.json()

    @staticmethod
    def _usd(value: Decimal | float | str | None) -> str | None:
        return None if value is None else str(value)

    # ------------------------------------------------------------------ endpoints
    def health(self) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", "/health")
        return data

    def submit(
        self,
        request: str,
        *,
        persona: str | None = None,
        budget_usd: Decimal | float | str | None = None,
        offline: bool = False,
        attachments: Sequence[Path | str] = (),
        runner: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Create a task and start it (planned in the daemon, then waiting for its plan
        approval; follow its events). ``attachments``:
        absolute paths of files on the daemon's machine; ``actor``: who submits
        (``cli:alice``). ``{task_id, status, persona}``."""
        body: dict[str, Any] = {
            "request": request,
            "persona": persona,
            "budget_usd": self._usd(budget_usd),
            "offline": offline,
        }
        # Sent only when given, so an older daemon still takes the plain submissions.
        if attachments:
            body["attachments"] = [str(path) for path in attachments]
        if runner is not None:
            body["runner"] = runner
        if actor is not None:
            body["actor"] = actor
        data: dict[str, Any] = self._call("POST", "/tasks", json=body)
        return data

    def artifacts(self, task_id: str) -> list[dict[str, Any]]:
        """The latest output of each module: ``module_id``, ``kind``, ``created_at``, ``size``."""
        data: list[dict[str, Any]] = self._call("GET", f"/tasks/{task_id}/artifacts")
        return data

    def artifact(self, task_id: str, module_id: str) -> dict[str, Any]:
        """A module's latest output: its metadata and ``markdown``. ``NotFound`` until it has
        one."""
        data: dict[str, Any] = self._call("GET", f"/tasks/{task_id}/artifacts/{module_id}")
        return data

    def tasks(self, *, limit: int = 50) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._call("GET", "/tasks", params={"limit": limit})
        return data

    def task(self, task_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", f"/tasks/{task_id}")
        return data

    def costs(self, task_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", f"/tasks/{task_id}/costs")
        return data

    def approvals(self, task_id: str, *, pending: bool = False) -> list[dict[str, Any]]:
        params = {"pending": "true"} if pending else {}
        data: list[dict[str, Any]] = self._call("GET", f"/tasks/{task_id}/approvals", params=params)
        return data

    def decide(
        self,
        approval_id: str,
        decision: str,
        *,
        actor: str | None = None,
        notes: str = "",
        budget_usd: Decimal | float | str | None = None,
        modules: Collection[str] = (),
        answers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Decide an approval (see ``StoreDecider.decide``; ``answers`` for a clarify question,
        by question id); returns the decided row."""
        body = decision_body(
            decision,
            actor=actor,
            notes=notes,
            budget_usd=budget_usd,
            modules=modules,
            answers=answers,
        )
        data: dict[str, Any] = self._call("POST", f"/approvals/{approval_id}", json=body)
        return data

    def resume(
        self,
        task_id: str,
        *,
        budget_usd: Decimal | float | str | None = None,
        offline: bool = False,
    ) -> dict[str, Any]:
        """Drive a stopped task again (``offline``: from now on with the offline provider):
        ``{task_id, status, after_seq}`` — its events after ``after_seq`` are this run's, up to
        its ``task.result``."""
        body: dict[str, Any] = {"budget_usd": self._usd(budget_usd)}
        if offline:
            body["offline"] = True
        data: dict[str, Any] = self._call("POST", f"/tasks/{task_id}/resume", json=body)
        return data

    def cancel(self, task_id: str, *, reason: str, actor: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = self._call(
            "POST", f"/tasks/{task_id}/cancel", json={"reason": reason, "actor": actor}
        )
        return data

    def reject(self, task_id: str, *, reason: str, actor: str | None = None) -> dict[str, Any]:
        """Reject a planned task nothing drives (or abort one stopped for budget)."""
        data: dict[str, Any] = self._call(
            "POST", f"/tasks/{task_id}/reject", json={"reason": reason, "actor": actor}
        )
        return data

    def personas(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._call("GET", "/personas")
        return data

    def providers(self) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", "/providers")
        return data

    def events(self, task_id: str, *, after_seq: int = 0) -> Iterator[dict[str, Any]]:
        """The task's events after ``after_seq``, then live ones; ends when the task is final
        (or the daemon stops: reconnect with the last ``seq`` seen)."""
        try:
            with self._http.stream(
                "GET",
                f"/tasks/{task_id}/events",
                params={"after_seq": after_seq},
                timeout=httpx.Timeout(10.0, read=None),
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    self._raise_for(response)
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except (httpx.TransportError, OSError) as err:
            raise self._unavailable(err) from err

    def wait_for_approval(
        self, task_id: str, *, kind: str | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        """The task's first pending approval (of ``kind``), polling until it is asked. Raises
        ``DaemonError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for approval in self.approvals(task_id, pending=True):
                if kind is None or approval["kind"] == kind:
                    return approval
            if time.monotonic() > deadline:
                raise DaemonError(f"task {task_id} asked no {kind or ''} approval in {timeout:g}s")
            time.sleep(0.05)


def ensure_running(settings: Settings, *, timeout: float = 30.0) -> DaemonClient:
    """A client to the daemon of ``settings``, starting the daemon first when none answers."""
    client = DaemonClient(socket_path(settings.paths))
    try:
        client.health()
    except AgentfirmError:
        start(settings, timeout=timeout)
        client.health()
    return client


def submit(
    settings: Settings,
    request: str,
    *,
    persona: str | None = None,
    budget_usd: Decimal | float | str | None = None,
    offline: bool = False,
    attachments: Sequence[Path | str] = (),
    actor: str | None = None,
) -> dict[str, Any]:
    """Submit a task to the daemon (started on demand): ``{task_id, status, persona}``."""
    with ensure_running(settings) as client:
        return client.submit(
            request,
            persona=persona,
            budget_usd=budget_usd,
            offline=offline,
            attachments=attachments,
            actor=actor,
        )
