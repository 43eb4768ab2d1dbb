"""Serving the API: the task host behind uvicorn on the bound socket, until SIGTERM. Only the daemon
process imports this (uvicorn and FastAPI stay out of the CLI's imports)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Generator, Mapping

import structlog
import uvicorn

from agentfirm.runs.heap import settle_heap
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import Settings

from .process import bind_socket, socket_path

log = structlog.get_logger(__name__)


class _Server(uvicorn.Server):
    """uvicorn with our signal handling: SIGTERM/SIGINT call ``on_stop`` and shut the server
    down, and are not re-raised afterwards (uvicorn's default), so the process exits 0."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_stop = on_stop

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            log.info("daemon.stopping")
            self._on_stop()
            self.should_exit = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


async def serve(
    settings: Settings,
    *,
    redactor: Redactor,
    secrets: SecretStore,
    env: Mapping[str, str] | None = None,
) -> None:
    """Open the task host, bind the socket, resume tasks and serve until SIGTERM. ``env``: the
    environment the settings were loaded from (see ``TaskHost.open``)."""
    from .server import create_app
    from .service import TaskHost

    path = socket_path(settings.paths)
    host = await TaskHost.open(settings, redactor=redactor, secrets=secrets, env=env)
    try:
        sock = bind_socket(path)
        try:
            config = uvicorn.Config(
                create_app(host, redactor=redactor, socket=str(path)),
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=5,
            )
            server = _Server(config, on_stop=host.shutdown)
            await host.start()
            settle_heap()
            log.info("daemon.serving", socket=str(path), pid=os.getpid())
            await server.serve(sockets=[sock])
        finally:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        await host.close()
