"""The daemon as a process: start (detached), stop, status and logs, and the foreground main.
Imports nothing heavy at module level: the foreground main loads logging, secrets and settings.

Files: the socket ``agentfirm.sock`` and the pidfile ``agentfirm.pid`` in the runtime dir, the log
``daemon.log`` in the state dir. The running daemon holds an exclusive ``flock`` on its pidfile
for its whole life, so "is it running" never trusts a stale pid: the OS drops the lock when the
process dies, however it dies. The socket is bound with mode 0600 (checked after binding) in the
0700 runtime dir.

SIGTERM (or SIGINT) stops scheduling, ends event streams, lets uvicorn finish its responses, then
cancels the task drivers and waits for their last writes, closes the store and bus, removes the
socket and pidfile, and exits 0. The next start resumes the tasks.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import agentfirm
from agentfirm.api.wire import DaemonError
from agentfirm.errors import AgentfirmError, BadInput, ConfigError, DiskFull
from agentfirm.paths import Paths

if TYPE_CHECKING:
    from agentfirm.settings import Settings

PIDFILE_NAME = "agentfirm.pid"
LOG_NAME = "daemon.log"
# sun_path is 108 bytes on Linux, 104 on the BSDs and macOS (NUL included).
_MAX_SOCKET_PATH = 103


def socket_path(paths: Paths) -> Path:
    return paths.daemon_socket


def pid_path(paths: Paths) -> Path:
    return paths.runtime_dir / PIDFILE_NAME


def log_path(paths: Paths) -> Path:
    return paths.state_dir / LOG_NAME


@dataclass(frozen=True)
class DaemonStatus:
    running: bool
    pid: int | None
    socket: str
    version: str

    def to_json(self) -> dict[str, Any]:
        """``daemon status --json``: ``{running, pid, socket, version}``."""
        return {
            "running": self.running,
            "pid": self.pid,
            "socket": self.socket,
            "version": self.version,
        }


# ---------------------------------------------------------------------------- pidfile
def running_pid(paths: Paths) -> int | None:
    """The pid of the live daemon, or None. Reads the pidfile only while its lock is held."""
    path = pid_path(paths)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)  # nobody holds it: a stale file
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold_pidfile(paths: Paths) -> Iterator[None]:
    """Take the pidfile lock and write our pid; removed on exit. Raises ``BadInput`` when another
    daemon holds it."""
    path = pid_path(paths)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BadInput(
            f"the daemon is already running (pid {running_pid(paths)})",
            hint="agentfirm daemon status",
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)


# ---------------------------------------------------------------------------- socket
def bind_socket(path: Path) -> socket.socket:
    """Bind a Unix stream socket at ``path`` readable and writable by its owner only (a stale
    socket file is replaced: the caller holds the pidfile lock). Raises ``ConfigError`` for a
    path the OS cannot bind, ``DaemonError`` when the mode cannot be made 0600."""
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise ConfigError(
            [
                f"socket path {path} is longer than {_MAX_SOCKET_PATH} bytes — set "
                "XDG_RUNTIME_DIR (or AGENTFIRM_HOME) to a shorter directory"
            ]
        )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)  # no window in which the socket is open to others
    try:
        sock.bind(str(path))
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode != 0o600:
        sock.close()
        raise DaemonError(f"socket {path} has mode {mode:o}, not 600; refusing to serve")
    sock.listen(128)  # clients queue from here on, before the server accepts
    return sock


# ---------------------------------------------------------------------------- foreground
def main(env: dict[str, str] | None = None) -> int:
    """The daemon process (``python -m agentfirm.daemon``, ``agentfirm daemon start
    --foreground``): runs until SIGTERM and returns 0. Raises ``BadInput`` when one is already
    running, ``ConfigError`` for bad settings."""
    import asyncio

    import structlog

    from agentfirm.log import configure_logging
    from agentfirm.secrets import Redactor, SecretStore
    from agentfirm.settings import load_settings

    env = dict(os.environ) if env is None else env
    settings = load_settings(env)
    settings.paths.ensure()
    redactor = Redactor()
    configure_logging(
        log_path=log_path(settings.paths), redactor=redactor, level=settings.log_level
    )
    secrets = SecretStore(redactor, env=env)
    for name in secrets.KNOWN:  # every secret is registered with the redactor before work starts
        secrets.get(name)
    from .serving import serve  # uvicorn and the app: only the daemon process needs them

    with hold_pidfile(settings.paths):
        asyncio.run(serve(settings, redactor=redactor, secrets=secrets, env=env))
    structlog.get_logger(__name__).info("daemon.stopped")
    return 0


# ---------------------------------------------------------------------------- control
def status(settings: Settings) -> DaemonStatus:
    """Whether the daemon runs, its pid, socket and version (the running daemon's own, when it
    answers; else this installation's)."""
    return status_at(settings.paths)


def status_at(paths: Paths) -> DaemonStatus:
    """``status`` of the daemon whose files are at ``paths`` (no settings needed: this module
    loads neither settings nor logging, so ``daemon status`` starts quickly)."""
    pid = running_pid(paths)
    version = agentfirm.__version__
    if pid is not None:
        from agentfirm.api.client import DaemonClient

        with contextlib.suppress(AgentfirmError), DaemonClient(socket_path(paths), timeout=2) as c:
            version = str(c.health().get("version", version))
    return DaemonStatus(pid is not None, pid, str(socket_path(paths)), version)


def start(
    settings: Settings, *, env: dict[str, str] | None = None, timeout: float = 30.0
) -> DaemonStatus:
    """Start the daemon detached (its own session, output appended to the daemon log) and wait
    until it answers ``/health``. A running daemon is left alone. Raises ``DaemonError`` with
    the log's last lines when it does not come up."""
    from agentfirm.api.client import DaemonClient

    paths = settings.paths
    if running_pid(paths) is not None:
        return status(settings)
    paths.ensure()
    output = log_path(paths)
    with output.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentfirm.daemon"],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ) if env is None else env,
        )
    deadline = time.monotonic() + timeout
    with DaemonClient(socket_path(paths), timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None and running_pid(paths) is None:
                full = full_disk(paths)
                if full is not None:  # its own words could not be written: say it for it
                    raise DiskFull(
                        full,
                        f"the daemon exited with code {proc.returncode}",
                        hint="free space on that disk, then start the daemon again",
                    )
                raise DaemonError(
                    f"the daemon exited with code {proc.returncode}: "
                    + " | ".join(tail(output, 3)),
                    hint=f"see {output}",
                )
            with contextlib.suppress(AgentfirmError):
                client.health()
                return status(settings)
            time.sleep(0.05)
    raise DaemonError(f"the daemon did not answer within {timeout:g}s", hint=f"see {output}")


STOP_S = 30.0
"""How long a daemon may take to stop beyond the grace its calls in flight get to answer."""


def stop(settings: Settings, *, timeout: float | None = None) -> bool:
    """SIGTERM the daemon and wait until it has exited; False when none was running. Raises
    ``DaemonError`` when it is still running after ``timeout`` (default: the calls in flight's
    ``cancel_grace_s`` — they answer, and are booked as answered, before it exits — plus
    ``STOP_S``)."""
    if timeout is None:
        timeout = settings.cancel_grace_s + STOP_S
    paths = settings.paths
    pid = running_pid(paths)
    settle = time.monotonic() + 1.0
    while pid == -1 and time.monotonic() < settle:  # a daemon between its lock and its write
        time.sleep(0.02)
        pid = running_pid(paths)
    if pid is None:
        return False
    if pid <= 0:
        raise DaemonError(f"the pidfile {pid_path(paths)} is unreadable", hint="stop it by hand")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running_pid(paths) is not None:
        if time.monotonic() > deadline:
            raise DaemonError(
                f"the daemon (pid {pid}) is still running {timeout:g}s after SIGTERM",
                hint=f"see {log_path(paths)}; kill -KILL {pid} stops it at once",
            )
        time.sleep(0.05)
    return True


# ---------------------------------------------------------------------------- logs
FULL_BELOW_BYTES = 256 * 1024
"""Less free space than this on a disk agentfirm writes counts as a full disk: SQLite, git and
the logs need room for a page, an object, a line — more than a few bytes."""


def full_disk(paths: Paths) -> Path | None:
    """The first of agentfirm's directories whose disk is (all but) full, or None."""
    for directory in (paths.data_dir, paths.state_dir, paths.runtime_dir):
        with contextlib.suppress(OSError):
            if shutil.disk_usage(directory).free < FULL_BELOW_BYTES:
                return directory
    return None


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of ``path`` (none when it does not exist)."""
    if lines <= 0 or not path.exists():
        return []
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        block, data = 8192, b""
        while size > 0 and data.count(b"\n") <= lines:
            step = min(block, size)
            size -= step
            handle.seek(size)
            data = handle.read(step) + data
    return data.decode(errors="replace").splitlines()[-lines:]


def follow(
    path: Path, *, poll: float = 0.2, stop: Callable[[], bool] = lambda: False
) -> Iterator[str]:
    """New lines appended to ``path`` from now on, until ``stop()`` (or forever)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        handle.seek(0, os.SEEK_END)
        while not stop():
            line = handle.readline()
            if line:
                yield line.rstrip("\n")
            else:
                time.sleep(poll)
