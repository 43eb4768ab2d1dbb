"""A loopback TCP proxy in front of a PostgreSQL server that counts round trips on the wire: each
time a client speaks after the server has spoken (or first), one round trip. Whatever the client
library batches into one flight counts once, as it costs one wait for the server."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

_CHUNK = 65536


class RoundTripCounter:
    """``async with RoundTripCounter(url) as proxy``: connect to ``proxy.url`` instead of
    ``url``; ``proxy.trips`` counts round trips over every connection made through it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"{url} names no host and port")
        self._target = (parts.hostname, parts.port)
        self._parts = parts
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.url = url
        self.trips = 0

    async def __aenter__(self) -> RoundTripCounter:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        netloc = self._parts.netloc.rsplit(":", 1)[0] + f":{port}"
        self.url = urlunsplit(self._parts._replace(netloc=netloc))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self._target)
        # True while the client has the floor: its next bytes continue the same flight.
        turn = {"client": False}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, client: bool) -> None:
            try:
                while data := await src.read(_CHUNK):
                    if client and not turn["client"]:
                        self.trips += 1
                    turn["client"] = client
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        tasks = {
            asyncio.create_task(pipe(client_r, server_w, True)),
            asyncio.create_task(pipe(server_r, client_w, False)),
        }
        self._pipes |= tasks
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pipes -= tasks
