"""What every client of the daemon's API shares — the sync CLI client, the TUI's and Slack's async
ones: the error a failed exchange becomes. Light on purpose (no httpx, FastAPI or settings at
import time) so a front end can import it before its first frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agentfirm.errors import AgentfirmError, BadInput, NotFound

if TYPE_CHECKING:
    import httpx


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
