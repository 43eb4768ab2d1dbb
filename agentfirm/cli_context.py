"""What every CLI command shares: the option aliases, settings and logging for this process, an
``App`` for in-process work, and the daemon to talk to.

Imports nothing heavy at module level (``agentfirm --help`` loads this module).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from decimal import Decimal

    from agentfirm.app import App
    from agentfirm.daemon.client import DaemonClient  # type: ignore[import-not-found]
    from agentfirm.handoff.runners import RunnerName
    from agentfirm.secrets import Redactor, SecretStore
    from agentfirm.settings import Settings

T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
PersonaOpt = Annotated[
    str | None, typer.Option("--persona", "-p", help="Persona id (skip classification).")
]
BudgetOpt = Annotated[str | None, typer.Option("--budget", "-b", help="Budget ceiling in USD.")]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Approve plan and draft non-interactively.")
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Serve every tier with the offline provider.")
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Also write the deliverable here.")
]
NoDaemonOpt = Annotated[
    bool,
    typer.Option(
        "--no-daemon",
        envvar="AGENTFIRM_NO_DAEMON",
        help="Work in this process, not through the daemon.",
    ),
]
AttachOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--attach", "-a", metavar="<path>", help="A file for the task to read (repeat for more)."
    ),
]
RunnerOpt = Annotated[
    str | None,
    typer.Option(
        "--runner", help="Where modules run: inproc, notebook or colab (default: settings)."
    ),
]


def debug() -> bool:
    """``--debug`` anywhere on the command line (``main`` needs it outside click's context)."""
    return "--debug" in sys.argv[1:]


def actor() -> str:
    """Who decides from this terminal, for the approval rows (``cli:<user>``)."""
    import getpass

    return f"cli:{getpass.getuser()}"


def submitter() -> str:
    """Who submits from this terminal, as the daemon takes it (``cli:<user>``: a user name
    outside ``[A-Za-z0-9_.@-]{1,64}`` is made to fit)."""
    import re

    user = re.sub(r"[^A-Za-z0-9_.@-]", "_", actor().removeprefix("cli:"))[:64]
    return f"cli:{user or 'unknown'}"


def env_for(offline: bool = False, latency: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if offline:
        env["AGENTFIRM_OFFLINE"] = "1"
    if latency is not None:
        env.setdefault("AGENTFIRM_OFFLINE_LATENCY_MS", latency)
    return env


@dataclass
class CliContext:
    settings: Settings
    redactor: Redactor
    secrets: SecretStore


def context(env: dict[str, str]) -> CliContext:
    """Settings, logging and secrets for this process (every secret registered with the redactor
    before any work starts). Raises ``ConfigError`` listing every bad setting."""
    from agentfirm.log import configure_logging
    from agentfirm.secrets import Redactor, SecretStore
    from agentfirm.settings import load_settings

    settings = load_settings(env)
    redactor = Redactor()
    settings.paths.ensure()
    configure_logging(
        log_path=settings.paths.log_path,
        redactor=redactor,
        debug=debug(),
        level="debug" if debug() else settings.log_level,
    )
    secrets = SecretStore(redactor, env=env)
    for name in secrets.KNOWN:
        secrets.get(name)
    return CliContext(settings, redactor, secrets)


def settings_for(env: dict[str, str]) -> Settings:
    """Settings and logging for a command that leaves the work to the daemon: unlike
    ``context`` it reads no secret (the daemon reads its own), which keeps such commands quick.
    Raises ``ConfigError`` listing every bad setting."""
    from agentfirm.log import configure_logging
    from agentfirm.secrets import Redactor
    from agentfirm.settings import load_settings

    settings = load_settings(env)
    settings.paths.ensure()
    configure_logging(
        log_path=settings.paths.log_path,
        redactor=Redactor(),
        debug=debug(),
        level="debug" if debug() else settings.log_level,
    )
    return settings


def with_app(env: dict[str, str], body: Callable[[App], Awaitable[T]]) -> T:
    """Run ``body`` on an ``App`` opened in this process (and closed after)."""
    from agentfirm.app import App

    ctx = context(env)

    async def main() -> T:
        app_ = await App.open(ctx.settings, redactor=ctx.redactor, secrets=ctx.secrets, env=env)
        async with app_:
            return await body(app_)

    return run_async(main())


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coro)


def fail(message: str, code: int = 2) -> typer.Exit:
    from agentfirm.cli_output import error

    error(message)
    return typer.Exit(code)


# ---------------------------------------------------------------------------- the daemon
def start_daemon(settings: Settings) -> DaemonClient:
    """A client to the daemon, which is started (detached; it keeps running) when none answers.
    For commands that act on tasks."""
    from agentfirm.daemon.client import ensure_running

    client: DaemonClient = ensure_running(settings)
    return client


def running_daemon(settings: Settings, *, no_daemon: bool = False) -> DaemonClient | None:
    """A client to the daemon when one runs (and not ``--no-daemon``), else None. For reads: the
    store answers them just as well without starting a service."""
    if no_daemon:
        return None
    from agentfirm.daemon import process  # type: ignore[import-not-found]

    if process.running_pid(settings.paths) is None:
        return None
    from agentfirm.daemon.client import DaemonClient  # httpx: only when there is a daemon

    client: DaemonClient = DaemonClient(process.socket_path(settings.paths))
    return client


# ---------------------------------------------------------------------------- input checks
def parse_budget(budget: str | None) -> Decimal | None:
    from decimal import Decimal, InvalidOperation

    from agentfirm.errors import BadInput

    if budget is None:
        return None
    try:
        value = Decimal(budget.strip().lstrip("$"))
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value <= 0:
        raise BadInput(f"--budget {budget!r} is not a positive amount", hint="e.g. --budget 2.50")
    return value


def runner_name(value: str | None) -> RunnerName | None:
    from agentfirm.errors import BadInput

    names: dict[str, RunnerName] = {"inproc": "inproc", "notebook": "notebook", "colab": "colab"}
    if value is None:
        return None
    if value not in names:
        raise BadInput(f"--runner {value!r} is not a runner", hint="use inproc, notebook or colab")
    return names[value]


def attachments(paths: list[Path] | None) -> list[Path]:
    """``--attach`` files as absolute paths (the daemon reads them where they are). Raises
    ``BadInput`` naming the first that is not a readable file, before anything is written."""
    from agentfirm.errors import BadInput

    found: list[Path] = []
    for path in paths or ():
        try:
            why = (
                ""
                if path.is_file() and os.access(path, os.R_OK)
                else "is not a readable file"
                if path.exists()
                else "does not exist"
            )
        except OSError as err:
            why = f"cannot be read ({err.strerror})"
        if why:
            raise BadInput(f"--attach {path} {why}", hint="name a readable file")
        found.append(path.resolve())
    return found


def check_out_file(out_file: Path | None) -> None:
    from agentfirm.errors import BadInput

    if out_file is not None and out_file.is_dir():
        raise BadInput(f"--out {out_file} is a directory", hint="name a file, e.g. --out report.md")
