"""A scripted loopback HTTP server: the base of the provider fakes.

It runs ``http.server.ThreadingHTTPServer`` on 127.0.0.1 (a free port) in a background thread,
answers each request with the next item of its script (or its default responder when the script
is empty) and records every request so tests can inspect what the SDK sent. Script items can
delay (a hang past the client's timeout), reset the connection, or return any status and body.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it. ``headers`` keys are lower case; ``body`` is the
    parsed JSON (None when the body was empty or not JSON)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: Any
    raw: bytes


def read_request(handler: BaseHTTPRequestHandler) -> Recorded:
    """Read the request ``handler`` is serving: its body (parsed as JSON when it is JSON)."""
    length = int(handler.headers.get("content-length") or 0)
    raw = handler.rfile.read(length) if length else b""
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    parts = urlsplit(handler.path)
    return Recorded(
        method=handler.command,
        path=parts.path,
        query=parts.query,
        headers={k.lower(): v for k, v in handler.headers.items()},
        body=body,
        raw=raw,
    )


@dataclass(frozen=True)
class Reply:
    """What to answer. ``body``: JSON-able data, or ``bytes`` sent as they are. ``delay_s`` waits
    before answering (longer than the client's timeout, it is a hang); ``reset`` drops the
    connection with a TCP RST instead of answering."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    reset: bool = False


Responder = Callable[[Recorded], Reply]
ScriptItem = Reply | Responder


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a burst of concurrent calls (twelve modules at once)
    # overflowed it and the extra connections waited a second for the SYN to be retried, which a
    # real provider's listener never makes them do.
    request_queue_size = 128
    owner: ScriptedHTTPServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or are reset on purpose leave broken sockets behind: not news.
        return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle on, the body waits ~40 ms for the
    # client's delayed ACK, which would swamp any latency a test or benchmark measures.
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        self.server.owner._serve(self)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        return

    def finish(self) -> None:
        # The socket was reset on purpose, or the client hung up during a hang.
        with contextlib.suppress(OSError):
            super().finish()


class ScriptedHTTPServer:
    """A loopback HTTP server answering from a script. Use as a context manager (or ``start`` /
    ``stop``); ``url`` is ``http://127.0.0.1:PORT``. ``base_delay_s`` is added before every
    answer (a provider that takes that long to reply). Thread-safe."""

    def __init__(self, default: Responder, *, base_delay_s: float = 0.0) -> None:
        self._fallback = default
        self._default = default
        self.base_delay_s = base_delay_s
        self._lock = threading.Lock()
        self._script: deque[ScriptItem] = deque()
        self._requests: list[Recorded] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="fake-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- script and records ------------------------------------------------------------------
    def script(self, *items: ScriptItem) -> None:
        """Queue answers for the next requests, in order."""
        with self._lock:
            self._script.extend(items)

    def respond_with(self, responder: Responder) -> None:
        """Answer every request the script does not cover with ``responder`` (until ``reset``):
        for answers that depend on what was asked rather than on arrival order."""
        with self._lock:
            self._default = responder

    def reset(self) -> None:
        """Forget the script, the recorded requests and any ``respond_with`` responder."""
        with self._lock:
            self._script.clear()
            self._requests.clear()
            self._default = self._fallback

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """Script items not yet used."""
        with self._lock:
            return len(self._script)

    # -- serving -----------------------------------------------------------------------------
    def _received(self, request: Recorded, reply: Reply) -> None:
        """Called once the answer to ``request`` is chosen, before it is sent (or delayed, or
        the client hangs up): a subclass that bills on receipt does it here."""

    def _direct(self, request: Recorded) -> Reply | None:
        """An answer the server gives by itself, outside the script, the record and the base
        delay (a fake's read API over what it kept: OpenAI's stored completions); None: the
        script answers."""
        return None

    def shape_refusal(self, request: Recorded) -> Reply | None:
        """The error a service answers ``request`` with before any model sees it (a request
        not in the shape it requires), or None. A refused request leaves the script alone."""
        return None

    def _serve(self, handler: _Handler) -> None:
        recorded = read_request(handler)
        direct = self._direct(recorded)
        if direct is not None:
            _send(handler, direct)
            return
        refused = self.shape_refusal(recorded)
        with self._lock:
            self._requests.append(recorded)
            if refused is not None:
                item: ScriptItem = refused
            else:
                item = self._script.popleft() if self._script else self._default
        reply = item if isinstance(item, Reply) else item(recorded)
        self._received(recorded, reply)
        delay = self.base_delay_s + reply.delay_s
        if delay > 0 and self._stopping.wait(delay):
            reply = Reply(reset=True)  # shutting down: do not keep a client waiting
        _send(handler, reply)


def _send(handler: _Handler, reply: Reply) -> None:
    """Answer with ``reply`` (or reset the connection)."""
    if reply.reset:
        _reset(handler)
        return
    payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
    try:
        handler.send_response(reply.status)
        headers = {"content-type": "application/json", **reply.headers}
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("content-length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
        handler.wfile.flush()
    except OSError:
        handler.close_connection = True


def _reset(handler: _Handler) -> None:
    """Close the connection with an RST (SO_LINGER 0), as a crashed upstream or proxy does."""
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()


_S = TypeVar("_S", bound=ScriptedHTTPServer)


@contextmanager
def running(server: _S) -> Iterator[_S]:
    """``with running(FakeX()) as fake:`` — started on entry, stopped on exit."""
    server.start()
    try:
        yield server
    finally:
        server.stop()
