"""The agentfirm TUI: ``run_tui(settings)`` makes sure the daemon runs, then opens the task list.

Every action is on a key shown in the footer, and in the command palette (ctrl+p): the palette
lists the current screen's bindings, so the two can never disagree.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING

from textual import work
from textual.app import App, SystemCommand
from textual.screen import Screen

from agentfirm.errors import AgentfirmError

from .context import Context
from .screens.task_list import TaskListScreen

if TYPE_CHECKING:
    from agentfirm.settings import Settings

    from .client import DaemonApi


class AgentfirmApp(App[int]):
    """The app over a ``Context``; ``open_task`` opens that task's view instead of the list.
    ``startup`` (blocking, run in a thread once the list is on screen) readies the data source,
    e.g. starts the daemon; the list is read after it, and the app exits with code 1 and its
    message when it raises ``AgentfirmError``."""

    TITLE = "agentfirm"
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        ctx: Context,
        *,
        open_task: str | None = None,
        close_source: bool = False,
        startup: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.open_task = open_task
        self.close_source = close_source
        self.startup = startup
        if not ctx.animate:
            self.animation_level = "none"

    async def on_mount(self) -> None:
        if self.open_task:
            # The list is built when the user goes back to it (``TaskScreen.action_back``).
            from .screens.task_view import TaskScreen

            await self.push_screen(TaskScreen(self.ctx, self.open_task))
        else:
            listing = TaskListScreen(self.ctx, autoload=self.startup is None)
            await self.push_screen(listing)
            if self.startup is not None:
                self.start_up(listing)

    @work(group="startup")
    async def start_up(self, listing: TaskListScreen) -> None:
        """The first frame is drawn already; now make sure the daemon answers, then list."""
        assert self.startup is not None
        try:
            await asyncio.to_thread(self.startup)
        except AgentfirmError as err:
            self.exit(1, return_code=1, message=str(err))
            return
        listing.autoload = True
        listing.start_loading()

    async def on_unmount(self) -> None:
        if self.close_source:
            await self.ctx.source.aclose()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """The app's own commands, then one per action the screen offers right now."""
        yield from super().get_system_commands(screen)
        seen: set[str] = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.show or not binding.description or not active.enabled:
                continue
            if binding.description in seen or binding.action == "app.command_palette":
                continue
            seen.add(binding.description)
            key = binding.key_display or self.get_key_display(binding)
            yield SystemCommand(
                binding.description,
                f"{binding.tooltip or binding.description} [{key}]",
                partial(self.run_action, binding.action, active.node),
            )


def actor() -> str:
    try:
        return f"tui:{getpass.getuser()}"
    except (KeyError, OSError):
        return "tui:unknown"


def _ensure_daemon(settings: Settings, api: DaemonApi) -> None:
    # Imported here, in the startup thread: the daemon's modules (and their logging) are not
    # needed for the first frame.
    from agentfirm.daemon.client import ensure_running  # type: ignore[import-not-found]
    from agentfirm.daemon.process import socket_path  # type: ignore[import-not-found]

    api.socket = socket_path(settings.paths)  # the daemon's own word on where it listens
    ensure_running(settings).close()


def run_tui(settings: Settings) -> int:
    """Open the TUI on the daemon of ``settings``, starting the daemon when none answers (the
    task list is on screen meanwhile). Returns the exit code: 0, or 1 when the daemon cannot be
    started (its one-line reason is printed as the TUI closes)."""
    from .client import DaemonApi

    api = DaemonApi(settings.paths.daemon_socket)
    ctx = Context(
        source=api,
        actor=actor(),
        default_budget_usd=float(settings.budget_usd),
        default_runner=settings.runner,
    )
    app = AgentfirmApp(ctx, close_source=True, startup=partial(_ensure_daemon, settings, api))
    app.run()
    return app.return_code or 0
