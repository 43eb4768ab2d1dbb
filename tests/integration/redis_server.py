"""A throwaway ``redis-server`` for the tests: started from PATH on a free loopback port, in a temp
dir, with persistence off (``--save "" --appendonly no``), and killable (SIGKILL) and restartable
on the SAME port so a test can take Redis away from a running client and give it back. The
machine's own server (:6379) is never touched. Under CI (``CI=true``) a missing binary fails the
tests; elsewhere they are skipped.

``tests/conftest.py`` registers it as a plugin, so every test can ask for its fixtures (do not
import them into a module: that module would start a server of its own).

``redis_server`` is the session's server (running and empty at the start of each test that asks
for ``redis_url``); ``unused_port`` a port nothing listens on. ``RedisServer`` also works without
pytest (``bench/bus.py`` uses it).
Killing or restarting from a coroutine: ``await asyncio.to_thread(server.kill)``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

_START_TIMEOUT_S = 10.0


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Redis test server unavailable under CI: {reason}")
    pytest.skip(f"Redis test server unavailable: {reason}")


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port``; ``start`` after ``kill`` reuses the
    port, so clients holding ``url`` reconnect to the new process (with an empty dataset)."""

    def __init__(self, binary: str, workdir: Path, port: int | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (no-op when running) and wait until it answers PING."""
        if self.running:
            return
        log = (self.workdir / "redis.log").open("ab")
        with log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _ping(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                tail = (self.workdir / "redis.log").read_text(errors="replace")[-500:]
                raise RuntimeError(f"redis-server on port {self.port} did not start: {tail}")
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL the server (no-op when it is not running): unsent replies and data are lost."""
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.poll() is None:
            process.kill()
        process.wait()

    def restart(self) -> None:
        """Kill, then start again on the same port."""
        self.kill()
        self.start()

    def flush(self) -> None:
        """Empty every database (FLUSHALL)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            reply = sock.recv(64)
        if not reply.startswith(b"+OK"):
            raise RuntimeError(f"FLUSHALL on port {self.port} answered {reply!r}")


def find_redis_server() -> str | None:
    return shutil.which("redis-server")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    binary = find_redis_server()
    if binary is None:
        _unavailable("redis-server not found on PATH")
    with tempfile.TemporaryDirectory(prefix="agentfirm-redis-") as workdir:
        server = RedisServer(binary, Path(workdir))
        server.start()
        try:
            yield server
        finally:
            server.kill()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, the server running (restarted if a test killed it) and empty."""
    redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def unused_port() -> int:
    """A loopback port with no server behind it: a Redis that is down from the start."""
    return free_port()
