"""Draft review: read the draft; approve it, revise (notes and the modules to re-run — none
selected re-runs all), or reject it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Label, SelectionList, Static, TextArea

from ..widgets.markdown import MarkdownText
from .base import ApprovalModal


def chosen_line(selected: Sequence[str]) -> str:
    return f"re-run: {', '.join(selected)}" if selected else "re-run: all (none ticked)"


class ReviewModal(ApprovalModal):
    HEADING = "Review the draft"
    KNOWN = ("draft_markdown", "artifact", "modules")
    SHOW_QUESTION = False  # the heading says it; the draft needs the room
    BUTTONS = (
        ("Approve", "approve", "success"),
        ("Revise", "revise", "warning"),
        ("Reject", "reject", "error"),
        ("Later", "later", "default"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "approve", "Approve", tooltip="Approve the draft as it is"),
        Binding("ctrl+r", "revise", "Revise", tooltip="Re-run the selected modules with notes"),
        Binding("ctrl+n", "reject", "Reject", tooltip="Reject the draft (the task ends)"),
        Binding("escape", "later", "Later"),
    ]

    def body(self) -> ComposeResult:
        with VerticalScroll(id="draft"):
            yield MarkdownText(str(self.payload.get("draft_markdown") or "_No draft text._"))
        modules = [str(m) for m in self.payload.get("modules") or []]
        with Horizontal(id="revise"):
            with Vertical():
                yield Label("Revision notes (for revise):", classes="field-label")
                yield TextArea(id="notes", compact=True, soft_wrap=True)
            with Vertical(id="pick"):
                yield Label("Re-run (space; none = all):", classes="field-label")
                yield SelectionList[str](*[(m, m) for m in modules], id="modules", compact=True)
                yield Static(chosen_line(()), id="chosen")

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        """Which modules a revision re-runs, in words: the boxes' colour alone does not say."""
        self.query_one("#chosen", Static).update(chosen_line(event.selection_list.selected))

    def action_approve(self) -> None:
        self.decide("approved")

    def action_revise(self) -> None:
        notes = self.query_one("#notes", TextArea).text.strip()
        if not notes:
            self.fail("say what to change in the revision notes first")
            self.query_one("#notes", TextArea).focus()
            return
        chosen = tuple(self.query_one("#modules", SelectionList).selected)
        self.decide("revise", notes=notes, modules=chosen)

    def action_reject(self) -> None:
        self.decide("rejected")
