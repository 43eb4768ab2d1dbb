"""The bridge's view of the daemon: the shared async client (``agentfirm.api.client``) over the
daemon's Unix socket, with the daemon's errors turned into the core's (``NotFound``, ``BadInput``,
``DaemonError``) carrying the daemon's one-line message.

``DaemonLink`` is the seam (the client every front end uses); tests pass
``tests.fakes.daemon.FakeDaemon`` for flows a real daemon cannot be made to produce on demand.
"""

from __future__ import annotations

from pathlib import Path

from agentfirm.api.client import AsyncDaemonClient
from agentfirm.api.wire import DaemonError

DaemonLink = AsyncDaemonClient
DaemonUnavailable = DaemonError
"""No daemon answers at the socket, or it failed (5xx)."""


class HttpDaemonLink(AsyncDaemonClient):
    """The client with the bridge's patience: a decision may wait on a busy store."""

    def __init__(self, socket: Path | str, *, timeout: float = 120.0) -> None:
        super().__init__(socket, timeout=timeout)


__all__ = ["DaemonLink", "DaemonUnavailable", "HttpDaemonLink"]
