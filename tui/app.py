"""The agentfirm TUI: ``run_tui(settings)`` makes sure the daemon runs, then opens the task list.

Every action is on a key shown in the footer, and in the command palette (ctrl+p): the palette
lists the current screen's bindings, so the two can never disagree. ``?`` (or F1) shows the
screen's help and every key it takes. The theme follows the terminal's background
(``theme_for``).
"""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.markup import escape
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, TextArea

from agentfirm.errors import AgentfirmError

from .actions import screen_actions
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
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1,question_mark", "help", "Help", tooltip="This screen's keys and what it shows"),
    ]

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
        self.unknown_theme = ""
        if ctx.theme in self.available_themes:
            self.theme = ctx.theme
        elif ctx.theme:
            self.unknown_theme = ctx.theme
        if not ctx.animate:
            self.animation_level = "none"

    async def on_mount(self) -> None:
        if self.unknown_theme:
            names = ", ".join(sorted(self.available_themes))
            self.notify(
                f"theme {self.unknown_theme!r} is unknown: AGENTFIRM_TUI_THEME takes {names}",
                severity="warning",
                markup=False,
            )
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

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        self._steady_cursor(event.widget)

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        self._steady_cursor(event.widget)

    def _steady_cursor(self, widget: Widget) -> None:
        """Without animation every frame is the same: a box's cursor does not blink, and the
        box is drawn afresh as it takes or loses the focus. TextArea caches its lines with
        neither the focus nor the blink in their key: the line drawn before the focus came (or
        in a blink's dark half) stayed, so a picture showed the cursor or not by how long the
        screen took to settle."""
        if self.ctx.animate or not isinstance(widget, Input | TextArea):
            return
        widget.cursor_blink = False
        widget.notify_style_update()  # TextArea: drops its cached lines
        widget.refresh()

    async def on_unmount(self) -> None:
        if self.close_source:
            await self.ctx.source.aclose()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """The app's own commands, then one per action the screen offers right now: those in
        its footer and those it keeps off the footer for room."""
        builtin = list(super().get_system_commands(screen))
        yield from builtin
        seen = {command.title for command in builtin}
        for node, binding in screen_actions(screen):
            if binding.description in seen or binding.action.endswith("command_palette"):
                continue
            seen.add(binding.description)
            key = binding.key_display or self.get_key_display(binding)
            # The palette reads help as markup: a key such as ``[`` or ``/]`` must stay text.
            yield SystemCommand(
                binding.description,
                escape(f"{binding.tooltip or binding.description} · key {key}"),
                partial(self.run_action, binding.action, node),
            )

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))


def theme_for(env: Mapping[str, str]) -> str:
    """The Textual theme for this terminal: ``AGENTFIRM_TUI_THEME`` when set (``ansi-dark``
    draws in the terminal's own palette), else light or dark after the background colour the
    terminal reports in ``COLORFGBG`` (``fg;bg``: 7 and 15 are light), dark when it says
    nothing."""
    chosen = env.get("AGENTFIRM_TUI_THEME", "").strip()
    if chosen:
        return chosen
    background = env.get("COLORFGBG", "").rsplit(";", 1)[-1].strip()
    return "textual-light" if background in {"7", "15"} else "textual-dark"


def actor() -> str:
    try:
        return f"tui:{getpass.getuser()}"
    except (KeyError, OSError):
        return "tui:unknown"


def _ensure_daemon(settings: Settings, api: DaemonApi) -> None:
    # Imported here, in the startup thread: the daemon's modules (and their logging) are not
    # needed for the first frame.
    from agentfirm.daemon.client import ensure_running
    from agentfirm.daemon.process import socket_path

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
        theme=theme_for(os.environ),
    )
    app = AgentfirmApp(ctx, close_source=True, startup=partial(_ensure_daemon, settings, api))
    app.run()
    return app.return_code or 0
