"""What every client of the daemon's API shares — the sync CLI client, the TUI's and Slack's async
ones: the base URL, the body of a decision, and the error a failed exchange becomes. Light on
purpose (no httpx, FastAPI or settings at import time) so a front end can import it before its
first frame.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentfirm.errors import AgentfirmError, BadInput, NotFound

if TYPE_CHECKING:
    import httpx

BASE_URL = "http://agentfirm"
"""What every request's URL starts with: the Unix socket is the address, the host is a formality."""


class DaemonError(AgentfirmError):
    """The daemon could not be started, reached or stopped, or it failed (5xx)."""


def unreachable(socket: Path | str, err: Exception) -> DaemonError:
    """No daemon answered at ``socket``."""
    return DaemonError(
        f"no agentfirm daemon answers at {socket} ({type(err).__name__})",
        hint="start it with `agentfirm daemon start`",
    )


def raise_for(response: httpx.Response) -> None:
    """Turn an error answer into the core's error carrying the daemon's one-line message:
    ``NotFound`` (404), ``BadInput`` (other 4xx), ``DaemonError`` (5xx)."""
    if response.status_code < 400:
        return
    try:
        message = str(response.json().get("error") or response.text)
    except (ValueError, AttributeError):
        message = response.text or response.reason_phrase
    if response.status_code == 404:
        raise NotFound(message)
    if response.status_code < 500:
        raise BadInput(message)
    raise DaemonError(f"the daemon failed: {message}")


def decision_body(
    decision: str,
    *,
    actor: str | None,
    notes: str = "",
    budget_usd: Decimal | float | str | None = None,
    modules: Collection[str] = (),
    answers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The body of ``POST /approvals/{id}``. ``answers`` (a clarify question's, by question id)
    is sent only when given: a daemon without ``clarify`` refuses the field."""
    body: dict[str, Any] = {
        "decision": decision,
        "actor": actor,
        "notes": notes,
        "budget_usd": None if budget_usd is None else str(budget_usd),
        "modules": list(modules),
    }
    if answers is not None:
        body["answers"] = dict(answers)
    return body
