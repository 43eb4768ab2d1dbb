"""The sync client's one-request HTTP over a Unix socket (api/unix_http.py): answers read whole,
by length or in chunks; anything else is an OSError the client reports as "daemon lost"."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from agentfirm.api.unix_http import Answer, BadAnswer, parse, request


def test_a_body_is_read_by_its_length() -> None:
    raw = b"HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\nx: y\r\n\r\n{}\r\nignored"
    assert parse(raw) == Answer(404, "Not Found", b"{}\r\n")


def test_a_chunked_body_is_joined() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n2;x=y\r\n2]\r\n0\r\n\r\n"
    )
    assert parse(raw) == Answer(200, "OK", b"[1,2]")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{}",
        b"SSH-2.0-OpenSSH\r\n\r\n",
    ],
    ids=["empty", "cut in headers", "cut in body", "bad length", "cut in chunk", "not http"],
)
def test_an_answer_that_is_not_whole_http_is_refused(raw: bytes) -> None:
    with pytest.raises(BadAnswer):
        parse(raw)
    assert issubclass(BadAnswer, OSError)  # the client says the daemon was lost


def test_a_request_goes_out_whole_and_its_answer_comes_back(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    seen: list[bytes] = []

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            data = b""
            while not data.endswith(b"{}"):
                data += conn.recv(4096)
            seen.append(data)
            conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")

    thread = threading.Thread(target=answer)
    thread.start()
    got = request(
        path, "POST", "/tasks?x=1", headers={"Accept": "application/json"}, body=b"{}", timeout=5
    )
    thread.join()
    server.close()

    assert got == Answer(201, "Created", b"ok")
    head = seen[0].split(b"\r\n")
    assert head[0] == b"POST /tasks?x=1 HTTP/1.1"
    assert b"Connection: close" in head
    assert b"Content-Length: 2" in head


def test_no_daemon_on_the_socket_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        request(tmp_path / "none.sock", "GET", "/health", headers={}, body=None, timeout=1)
