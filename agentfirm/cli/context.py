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
    from types import FrameType

    from agentfirm.api.client import DaemonClient
    from agentfirm.app import App
    from agentfirm.domain.policy import RunnerName
    from agentfirm.paths import Paths
    from agentfirm.secrets import Redactor, SecretStore
    from agentfirm.settings import Settings
    from agentfirm.store.base import Store
    from agentfirm.store.sqlite.reader import SQLiteReader

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


def paths_for(env: dict[str, str]) -> Paths:
    """Where agentfirm's files are, for a command that only looks for the daemon. Read from the
    environment alone when it decides (``AGENTFIRM_HOME`` set, or neither a ``.env`` here nor a
    ``home`` in config.toml could set it), which spares loading settings and logging; else from
    the settings (``ConfigError`` for bad ones)."""
    import tomllib

    from agentfirm.paths import Paths, home_from

    home = home_from(env)
    paths = Paths.resolve(home, env)
    if home is not None:
        return paths
    if not (Path.cwd() / ".env").exists():
        try:
            config = tomllib.loads(paths.config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return paths
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            config = {"home": "?"}  # the settings say what is wrong with it
        if "home" not in config:
            return paths
    return settings_for(env).paths


def with_app(
    env: dict[str, str],
    body: Callable[[App], Awaitable[T]],
    *,
    on_interrupt: Callable[[Settings, int, int], None] | None = None,
) -> T:
    """Run ``body`` on an ``App`` opened in this process (and closed after). ``on_interrupt``
    is called at the first Ctrl-C, as it arrives, with the settings and how many requests and
    tool calls are in flight then (the run then winds down; a second Ctrl-C cuts them off and
    says what it still waits for, ``interrupt.still_waiting``)."""
    import asyncio

    from agentfirm.app import App

    ctx = context(env)
    opened: list[App] = []

    async def main() -> T:
        app_ = await App.open(ctx.settings, redactor=ctx.redactor, secrets=ctx.secrets, env=env)
        opened.append(app_)
        async with app_:
            return await body(app_)

    if on_interrupt is None:
        return run_async(main())

    def told() -> None:
        in_flight = opened[0].in_flight if opened else None
        requests, tools = (in_flight.count, in_flight.tool_count) if in_flight else (0, 0)
        on_interrupt(ctx.settings, requests, tools)

    cutting: set[asyncio.Task[None]] = set()  # held: the loop keeps tasks weakly

    def cut_off() -> None:
        """At the second Ctrl-C: the requests and tool calls still in flight are cut off now
        — for sure, as an HTTP client on its way may swallow a cancellation (``runs.firmly``),
        and the call would then be waited for to its end. What is never cut (``InFlight.
        finishing``: a tool server's stop) is named, now and as it begins. Done on the loop,
        not inside the signal handler, which may have interrupted the loop anywhere."""
        from agentfirm.cli.interrupt import still_waiting
        from agentfirm.runs.firmly import cancel_until_done

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the loop is not running: its shutdown cancels what is left
            return

        def cut() -> None:
            if not opened:
                return
            in_flight = opened[0].in_flight
            for sent in [*in_flight.sent, *in_flight.tools]:
                cutting.add(loop.create_task(cancel_until_done(sent)))
            in_flight.heard = still_waiting
            if in_flight.finishing_now:
                still_waiting(" and ".join(in_flight.finishing_now))

        loop.call_soon_threadsafe(cut)

    return run_async(_telling_interrupt(main(), told, cut_off=cut_off))


def with_store(settings: Settings, body: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``body`` on the store alone, opened in this process (and closed after): for reads,
    which need no secret, persona, router or bus."""
    from agentfirm.store.choice import store_for

    async def main() -> T:
        store = store_for(settings, reads_only=True)
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return run_async(main())


def plain_reader(env: dict[str, str]) -> SQLiteReader | None:
    """For a read in this process (``tasks list``, ``costs ID``): a plain reader of the SQLite
    store (``agentfirm.store.sqlite.reader``: no event loop, no model), when the settings can be
    read without pydantic (``agentfirm.settings.plain``) and the file is there and up to date.
    Else None: open the store (``with_store``), whose settings and logging say what is wrong,
    if anything — as every read did before. Nothing this path loads logs, so logging is left
    unconfigured; ``--debug`` (readable logs on stderr) takes the other path."""
    if debug():
        return None
    from agentfirm.settings.plain import read_plainly
    from agentfirm.store.choice import sqlite_path

    settings = read_plainly(env)
    if settings is None:
        return None
    path = sqlite_path(settings.database_url, settings.paths)
    if path is None:  # Postgres: its own driver, through the store
        return None
    settings.paths.ensure()
    from agentfirm.store.sqlite.reader import SQLiteReader

    return SQLiteReader.open(path)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coro)


async def _telling_interrupt(
    coro: Coroutine[Any, Any, T],
    told: Callable[[], None],
    cut_off: Callable[[], None] = lambda: None,
) -> T:
    """Await ``coro`` with ``told`` called at the first Ctrl-C, before asyncio's own handler
    (which cancels the run), and ``cut_off`` instead of it at the second; a third is asyncio's,
    which stops the loop where it is. Called as the signal arrives: the run may take a while to
    wind down, and the user should know why."""
    import signal
    import threading

    asyncios = signal.getsignal(signal.SIGINT)
    if (
        threading.current_thread() is not threading.main_thread()
        or not callable(asyncios)
        or asyncios is signal.default_int_handler
    ):
        return await coro  # asyncio installed no handler here to stand before

    def second(signum: int, frame: FrameType | None) -> None:
        # Not on to asyncio's handler: at a second Ctrl-C it raises KeyboardInterrupt wherever
        # the main thread is, and inside a loop callback that leaves a future unresolved for
        # ever — the run then hangs as it shuts down. The run, cancelled at the first, unwinds
        # once its calls are cut off; a third Ctrl-C is asyncio's, for a run that does not.
        signal.signal(signal.SIGINT, asyncios)
        cut_off()

    def first(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, second)
        told()
        asyncios(signum, frame)

    signal.signal(signal.SIGINT, first)
    try:
        return await coro
    finally:
        if signal.getsignal(signal.SIGINT) in (first, second):
            signal.signal(signal.SIGINT, asyncios)  # asyncio restores only its own


def fail(message: str, code: int = 2) -> typer.Exit:
    from agentfirm.cli.output import fail_with

    return typer.Exit(fail_with(message, code))


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
    return None if no_daemon else daemon_at(settings.paths)


def daemon_at(paths: Paths) -> DaemonClient | None:
    """A client to the daemon whose files are at ``paths`` when it runs, else None."""
    from agentfirm.daemon import process

    if process.running_pid(paths) is None:
        return None
    from agentfirm.api.client import DaemonClient

    client: DaemonClient = DaemonClient(process.socket_path(paths))
    return client


# ---------------------------------------------------------------------------- input checks
def parse_budget(budget: str | None) -> Decimal | None:
    from agentfirm.money import parse_budget as parse

    return parse(budget, name="--budget")


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
    """Refuse an ``--out`` the deliverable could not be written to, before the task runs (and
    spends): a directory, a file in a missing or unwritable folder, a file that cannot be
    overwritten."""
    from agentfirm.errors import BadInput

    if out_file is None:
        return
    hint = "name a file in an existing folder you can write, e.g. --out report.md"
    folder = out_file.parent
    try:
        if out_file.is_dir():
            raise BadInput(f"--out {out_file} is a directory", hint=hint)
        if not folder.is_dir():
            missing = "is not a folder" if folder.exists() else "does not exist"
            raise BadInput(f"--out {out_file}: its folder {folder} {missing}", hint=hint)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise BadInput(f"--out {out_file}: its folder {folder} is not writable", hint=hint)
        if out_file.exists() and not os.access(out_file, os.W_OK):
            raise BadInput(f"--out {out_file} exists and is not writable", hint=hint)
    except OSError as err:
        raise BadInput(f"--out {out_file} cannot be used ({err.strerror})", hint=hint) from err
