"""What every approval prompt shares: a centred dialog with the question, a body of its own,
buttons mirroring the key bindings (all in the footer), and ``escape`` to decide later."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label, Static
from textual.widgets.button import ButtonVariant

from agentfirm.errors import BadInput
from agentfirm.money import parse_budget

from ..source import Decision


def extra_fields(payload: dict[str, Any], known: Iterable[str]) -> Text:
    """Payload fields a prompt does not show on its own, as ``key: value`` lines, so a field a
    newer daemon adds is still seen."""
    skip = {"question", *known}
    text = Text()
    for key, value in payload.items():
        if key in skip or value in (None, "", [], {}):
            continue
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        text.append(f"{key.replace('_', ' ')}: ", style="bold")
        text.append(" ".join(shown.split())[:300] + "\n")
    text.rstrip()
    return text


def parse_usd(value: str) -> Decimal | None:
    """A budget as typed (see ``money.parse_budget``), or None when it is not one."""
    try:
        return parse_budget(value)
    except BadInput:
        return None


class ApprovalModal(ModalScreen[Decision | None]):
    """Subclasses set ``HEADING``, ``KNOWN`` (payload keys their body shows), ``BUTTONS``
    (label, action, variant) and compose ``body``."""

    HEADING: ClassVar[str] = "Question"
    FIRST_FOCUS: ClassVar[str | None] = None
    """The field that has focus when the prompt opens (typing and Enter go to it at once);
    None: the first button."""
    HELP: ClassVar[str] = (
        "The task waits for your answer. The buttons and the keys in the footer decide; "
        "**Esc** closes the prompt to answer later with **a**."
    )
    SHOW_QUESTION: ClassVar[bool] = True
    KNOWN: ClassVar[tuple[str, ...]] = ()
    BUTTONS: ClassVar[tuple[tuple[str, str, ButtonVariant], ...]] = (("Later", "later", "default"),)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "later", "Later", tooltip="Close; answer later with `a`"),
    ]

    def __init__(self, approval: dict[str, Any]) -> None:
        super().__init__()
        self.approval = approval
        self.payload: dict[str, Any] = dict(approval.get("payload") or {})
        self.ready = False
        """Composed and mounted (tests wait on it)."""

    def on_mount(self) -> None:
        if self.FIRST_FOCUS:
            self.query_one(self.FIRST_FOCUS).focus()
        self.ready = True

    @property
    def approval_id(self) -> str:
        return str(self.approval.get("id", ""))

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.HEADING, id="title")
            question = self.payload.get("question")
            if question and self.SHOW_QUESTION:
                yield Static(str(question), id="question", markup=False)
            yield from self.body()
            extra = extra_fields(self.payload, self.KNOWN)
            if extra.plain:
                yield Static(extra, id="extra")
            yield Static("", id="error", classes="-empty")
            with Horizontal(id="buttons"):
                for label, action, variant in self.BUTTONS:
                    yield Button(label, name=action, variant=variant, compact=True)
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.name:
            await self.run_action(event.button.name)

    def fail(self, message: str) -> None:
        error = self.query_one("#error", Static)
        error.update(Text(message))
        error.set_class(not message, "-empty")

    def action_later(self) -> None:
        self.dismiss(None)

    def decide(self, decision: str, **params: Any) -> None:
        self.dismiss(Decision(decision, **params))


class GenericModal(ApprovalModal):
    """A kind this TUI does not know: the question and the payload, approve or reject."""

    HEADING = "Question"
    BUTTONS = (
        ("Approve", "approve", "success"),
        ("Reject", "reject", "error"),
        ("Later", "later", "default"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "approve", "Approve"),
        Binding("ctrl+n", "reject", "Reject"),
        Binding("escape", "later", "Later"),
    ]

    def action_approve(self) -> None:
        self.decide("approved")

    def action_reject(self) -> None:
        self.decide("rejected")
