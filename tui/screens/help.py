"""``?`` / F1: every key the screen under it takes right now — the screen's own, the focused
widget's and the app's — so no action hides behind the footer's width; then what the screen is
for."""

from __future__ import annotations

from typing import ClassVar

from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Label, Static

from ..actions import screen_actions

GENERIC_HELP = "Every action is on a key below, and in the command palette (ctrl+p)."


def key_table(screen: Screen[object]) -> Table:
    """One row per action the screen offers now (those off the footer included), with every
    key that runs it."""
    table = Table(box=None, padding=(0, 2, 0, 0), show_header=False, expand=True)
    table.add_column("key", no_wrap=True, style="bold cyan")
    table.add_column("action", ratio=1)
    seen: dict[tuple[str, str], list[str]] = {}
    rows: list[tuple[str, str]] = []
    for _node, binding in screen_actions(screen):
        what = binding.tooltip or binding.description
        row = (binding.description, what)
        key = binding.key_display or screen.app.get_key_display(binding)
        if row not in seen:
            seen[row] = []
            rows.append(row)
        if key not in seen[row]:
            seen[row].append(key)
    for row in rows:
        description, what = row
        text = Text(description, style="bold")
        if what != description:
            text.append(f"  {what}", style="dim")
        table.add_row(Text(" ".join(seen[row])), text)
    return table


class HelpScreen(ModalScreen[None]):
    """Help for ``screen``: its ``HELP`` text (Markdown) and its keys."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,f1,q", "dismiss", "Close", key_display="esc"),
    ]

    def __init__(self, screen: Screen[object]) -> None:
        super().__init__()
        self.under = screen

    def compose(self) -> ComposeResult:
        under = self.under
        title = getattr(under, "HELP_TITLE", "") or getattr(under, "HEADING", "") or "agentfirm"
        with Vertical(id="dialog"):
            yield Label(f"Help · {title}", id="title", markup=False)
            with VerticalScroll(id="help-body"):
                yield Static(key_table(self.under), id="keys")
                yield Static(Markdown(str(getattr(under, "HELP", "") or GENERIC_HELP)), id="about")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()  # arrows and PgDn scroll a long help

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
