"""A module asks to run a tool that may change things outside the task: allow it or deny it."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from .base import ApprovalModal


class ToolModal(ApprovalModal):
    HEADING = "A tool asks to run"
    KNOWN = ("module_id", "call_id", "tool", "origin", "arguments")
    BUTTONS = (
        ("Allow", "allow", "success"),
        ("Deny", "deny", "error"),
        ("Later", "later", "default"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "allow", "Allow", tooltip="Run the tool this once"),
        Binding("n", "deny", "Deny", tooltip="The module does without it"),
        Binding("escape", "later", "Later"),
    ]

    def body(self) -> ComposeResult:
        p = self.payload
        text = Text("Module ")
        text.append(str(p.get("module_id", "?")), style="bold cyan")
        text.append(" asks to run ")
        text.append(str(p.get("origin") or p.get("tool") or "?"), style="bold yellow")
        text.append(", which may change things outside the task, with:\n")
        text.append(str(p.get("arguments") or "{}")[:1500])
        yield Static(text, id="tool")

    def action_allow(self) -> None:
        self.decide("approved")

    def action_deny(self) -> None:
        self.decide("rejected", notes="tool denied")
