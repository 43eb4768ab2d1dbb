"""What every approval prompt shares: a centred dialog with the question, a body of its own,
buttons mirroring the key bindings (all in the footer), and ``escape`` to decide later."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label, Static
from textual.widgets.button import ButtonVariant

from ..source import Decision

MODAL_CSS = """
ApprovalModal { align: center middle; }
ApprovalModal > #dialog {
    width: 96%; max-width: 110; height: auto; max-height: 90%;
    border: thick $accent; background: $surface; padding: 0 1;
}
ApprovalModal #title { text-style: bold; color: $accent; width: 1fr; }
ApprovalModal #question { height: auto; }
ApprovalModal .field-label { color: $text-muted; }
ApprovalModal #error { color: $error; height: auto; }
ApprovalModal #error.-empty { display: none; }
ApprovalModal #extra { color: $text-muted; height: auto; }
ApprovalModal #buttons { height: auto; margin: 1 0 0 0; }
ApprovalModal #buttons Button { margin: 0 2 0 0; }
"""


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
    """A positive amount (``2.5``, ``$2.50``) or None."""
    try:
        amount = Decimal(value.strip().lstrip("$").replace(",", ""))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount > 0 else None


class ApprovalModal(ModalScreen[Decision | None]):
    """Subclasses set ``HEADING``, ``KNOWN`` (payload keys their body shows), ``BUTTONS``
    (label, action, variant) and compose ``body``."""

    DEFAULT_CSS = MODAL_CSS
    HEADING: ClassVar[str] = "Question"
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
