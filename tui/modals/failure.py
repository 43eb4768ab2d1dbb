"""A module failed after its retries: retry it, skip it, or abort the task."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from .base import ApprovalModal


class FailureModal(ApprovalModal):
    HEADING = "A module failed"
    KNOWN = ("module_id", "error", "attempts", "modules")
    BUTTONS = (
        ("Retry", "retry", "success"),
        ("Skip", "skip", "warning"),
        ("Abort task", "abort", "error"),
        ("Later", "later", "default"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "retry", "Retry", tooltip="Run the module again"),
        Binding("s", "skip", "Skip", tooltip="Go on without this module's output"),
        Binding("x", "abort", "Abort task"),
        Binding("escape", "later", "Later"),
    ]

    def body(self) -> ComposeResult:
        p = self.payload
        text = Text("Module ")
        text.append(str(p.get("module_id", "?")), style="bold cyan")
        attempts = p.get("attempts")
        text.append(f" failed after {attempts} attempt(s): " if attempts else " failed: ")
        text.append(str(p.get("error") or "no error message"), style="red")
        text.append("\nRetry runs it again; skip goes on without its output.", style="dim")
        yield Static(text, id="failure")

    def action_retry(self) -> None:
        self.decide("retry")

    def action_skip(self) -> None:
        self.decide("skip")

    def action_abort(self) -> None:
        self.decide("aborted", notes="aborted after a module failed")
