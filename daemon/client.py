"""A client of the daemon of some settings, starting the daemon first when none answers: the
front ends' way in (``agentfirm.api.client`` is the client itself, and knows no process)."""

from __future__ import annotations

from agentfirm.api.client import DaemonClient
from agentfirm.errors import AgentfirmError
from agentfirm.settings import Settings

from .process import socket_path, start


def ensure_running(settings: Settings, *, timeout: float = 30.0) -> DaemonClient:
    """A client to the daemon of ``settings``, starting the daemon first when none answers."""
    client = DaemonClient(socket_path(settings.paths))
    try:
        client.health()
    except AgentfirmError:
        start(settings, timeout=timeout)
        client.health()
    return client


__all__ = ["DaemonClient", "ensure_running"]
