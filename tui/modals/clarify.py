"""Clarification: the Master Agent's questions, each with its default answer filled in."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Input, Static

from .base import ApprovalModal


class ClarifyModal(ApprovalModal):
    HEADING = "A few questions first"
    KNOWN = ("questions",)
    BUTTONS = (
        ("Send answers", "send", "success"),
        ("Abort task", "abort", "error"),
        ("Later", "later", "default"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+s", "send", "Send answers", tooltip="Answer; a blank answer takes the default"
        ),
        # Priority: with an answer box focused, ctrl+x would cut text instead.
        Binding("ctrl+x", "abort", "Abort task", priority=True),
        Binding("escape", "later", "Later"),
    ]
    FIRST_FOCUS = "#answer-1"

    @property
    def questions(self) -> list[dict[str, Any]]:
        return [q for q in self.payload.get("questions") or [] if isinstance(q, dict)]

    def body(self) -> ComposeResult:
        with VerticalScroll(id="questions"):
            for n, q in enumerate(self.questions, start=1):
                yield Static(Text(f"{n}. {q.get('question', '')}"), classes="question")
                default = str(q.get("default") or "")
                yield Input(
                    placeholder=f"default: {default}" if default else "your answer",
                    id=f"answer-{n}",
                    compact=True,
                )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter moves to the next answer; on the last one it sends."""
        event.stop()
        inputs = list(self.query(Input))
        if event.input is inputs[-1]:
            self.action_send()
        else:
            self.focus_next()

    def action_send(self) -> None:
        answers: dict[str, str] = {}
        for n, q in enumerate(self.questions, start=1):
            value = self.query_one(f"#answer-{n}", Input).value.strip()
            answers[str(q.get("id") or f"q{n}")] = value or str(q.get("default") or "")
        self.decide("approved", answers=answers)

    def action_abort(self) -> None:
        self.decide("aborted", notes="aborted at the clarification")
