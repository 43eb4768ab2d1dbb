"""TUI fixtures: a real daemon in-process (the FastAPI app served by uvicorn on a Unix socket over
a ``TaskHost`` with a real SQLite store and bus under a temporary home, offline provider), and the
app built on it or on the fixed-data ``FakeSource``."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from agentfirm.daemon.process import bind_socket
from agentfirm.daemon.server import create_app
from agentfirm.daemon.service import TaskHost
from agentfirm.tui.app import AgentfirmApp
from agentfirm.tui.client import DaemonApi
from agentfirm.tui.context import Context
from keyring.backends import fail

from agentfirm.api.client import DaemonClient
from agentfirm.runs.base import settings_env
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import load_settings
from tests.tui.fixed_data import NOW, FakeSource

QUICK = {"AGENTFIRM_QUALITY_REVISION": "false"}
"""No automatic quality revision round: the daemon's own feature, tested elsewhere; here it
would only make every flow one build longer."""


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handlers: the test owns the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class Daemon:
    host: TaskHost
    socket: Path

    def app(self) -> AgentfirmApp:
        """The app as ``run_tui`` builds it: the list is read once the daemon answers."""
        context = Context(source=DaemonApi(self.socket), actor="tui:tester", refresh_s=0.5)
        return AgentfirmApp(context, close_source=True, startup=self.check)

    def check(self) -> None:
        with DaemonClient(self.socket) as client:
            client.health()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Under /tmp, so a socket path fits the OS limit wherever pytest puts tmp_path."""
    path = Path(tempfile.mkdtemp(prefix="aftui", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon_env() -> dict[str, str]:
    """The daemon's environment (besides its home); a test module overrides this fixture to
    change it."""
    return dict(QUICK)


@pytest.fixture
def daemon_keys() -> dict[str, str]:
    """Keys and provider URLs in the daemon's environment: none, unless a test module says."""
    return {}


@pytest.fixture
async def daemon(
    tmp_path: Path, short_dir: Path, daemon_env: dict[str, str], daemon_keys: dict[str, str]
) -> AsyncIterator[Daemon]:
    home = tmp_path / "home"
    settings = load_settings(dict(daemon_env, AGENTFIRM_HOME=str(home)), cwd=home)
    redactor = Redactor()
    secrets = SecretStore(redactor, env=daemon_keys, backend=fail.Keyring())
    env = {**settings_env(settings), **daemon_keys} if daemon_keys else None
    host = await TaskHost.open(settings, redactor=redactor, secrets=secrets, env=env)
    socket = short_dir / "d.sock"
    sock = bind_socket(socket)
    config = uvicorn.Config(
        create_app(host, redactor=redactor, socket=str(socket)),
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = _QuietServer(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    yield Daemon(host, socket)
    host.stopping.set()
    server.should_exit = True
    await serving
    await host.close()


@pytest.fixture
def fake() -> FakeSource:
    return FakeSource()


def fake_app(source: FakeSource, *, open_task: str | None = None) -> AgentfirmApp:
    ctx = Context(source=source, actor="tui:ann", clock=lambda: NOW, animate=False, refresh_s=0)
    return AgentfirmApp(ctx, open_task=open_task)
