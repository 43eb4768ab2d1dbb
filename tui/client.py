"""The TUI's client of the daemon: the shared async client (``agentfirm.api.client``), so the
event loop never blocks on the daemon. Errors come back as the core's: ``NotFound`` (404),
``BadInput`` (other 4xx) and ``Unavailable`` (no daemon answers, or it failed: 5xx)."""

from __future__ import annotations

from agentfirm.api.client import AsyncDaemonClient
from agentfirm.api.wire import DaemonError

DaemonApi = AsyncDaemonClient
Unavailable = DaemonError
"""No daemon answers on the socket, or it failed (5xx)."""

__all__ = ["DaemonApi", "Unavailable"]
