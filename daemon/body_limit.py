"""A ceiling on request bodies: the daemon reads a body in the chunks the server hands it and
answers 413 as soon as it has more than ``limit`` bytes (or says it will), so a huge body never
sits in memory. No request of the API comes near it: the largest is a submission with its
request text and attachment paths, well under a megabyte."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 4 * 1024 * 1024


class BodyLimit:
    """ASGI middleware: the whole body is read (up to ``limit``) before the app runs, then handed
    to it in one message; beyond ``limit`` the app never runs and the answer is 413."""

    def __init__(self, app: App, *, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                await self.app(scope, _replay([], message, receive), send)
                return
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], None, receive), send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": f"the request body is larger than {self.limit // (1024 * 1024)} MB: "
                "send less (no request of this API needs more)"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replay(first: list[Message], then: Message | None, receive: Receive) -> Receive:
    """``receive`` that hands out ``first`` (and ``then``) before the server's own messages (a
    streaming answer listens on it for the client going away)."""
    queued = [*first, *([then] if then is not None else [])]

    async def replay() -> Message:
        return queued.pop(0) if queued else await receive()

    return replay
