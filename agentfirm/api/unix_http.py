"""One HTTP/1.1 request over a Unix socket, answered whole: what the sync client's plain calls
need, and no more.

The standard library's ``http.client`` imports ``email`` (to parse headers) and ``ssl`` — about
half of what importing typer costs, on every command that asks the daemon anything. The
daemon's answers to plain calls are small JSON documents, so this asks for ``Connection:
close`` and reads until the daemon closes: the body is what follows the headers, of
``Content-Length`` bytes, or in chunks (``Transfer-Encoding: chunked``). Streams (a task's
events) go through httpx.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path


class BadAnswer(OSError):
    """The daemon's answer is not HTTP this reads (cut short, or malformed)."""


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    content: bytes


def request(
    path: Path,
    method: str,
    target: str,
    *,
    headers: dict[str, str],
    body: bytes | None,
    timeout: float,
) -> Answer:
    """Send ``method target`` (and ``body``) to the server on the Unix socket at ``path``; its
    answer. Raises ``OSError`` when the socket cannot be reached or the answer cannot be read
    (``BadAnswer``: not HTTP)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: agentfirm", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(head + (body or b""))
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    return parse(bytes(received))


def parse(raw: bytes) -> Answer:
    """A whole HTTP/1.1 answer read from a connection the server closed."""
    try:
        return _parse(raw)
    except ValueError as err:  # a length or a chunk size that is not a number
        raise BadAnswer(f"the daemon's answer is not HTTP: {err}") from None


def _parse(raw: bytes) -> Answer:
    head, found, rest = raw.partition(b"\r\n\r\n")
    if not found:
        raise BadAnswer("the daemon's answer ended before its headers did")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise BadAnswer(f"the daemon answered {status_line[:80]!r}, not HTTP")
    fields: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if "chunked" in fields.get("transfer-encoding", "").lower():
        content = _unchunk(rest)
    elif "content-length" in fields:
        size = int(fields["content-length"])
        if len(rest) < size:
            raise BadAnswer(f"the daemon's answer ended after {len(rest)} of {size} bytes")
        content = rest[:size]
    else:
        content = rest
    return Answer(int(parts[1]), parts[2] if len(parts) > 2 else "", content)


def _unchunk(data: bytes) -> bytes:
    body = bytearray()
    at = 0
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            raise BadAnswer("the daemon's answer ended inside a chunk")
        size = int(data[at:end].split(b";")[0], 16)
        if size == 0:
            return bytes(body)
        start = end + 2
        if len(data) < start + size:
            raise BadAnswer("the daemon's answer ended inside a chunk")
        body += data[start : start + size]
        at = start + size + 2
