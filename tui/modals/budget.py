"""Budget exceeded: what was spent where, and a new ceiling to go on with — or abort."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from rich.columns import Columns
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Input, Label, Static

from ..fmt import usd
from ..widgets.costs import gauge, spend_tables
from .base import ApprovalModal, parse_usd


class BudgetModal(ApprovalModal):
    HEADING = "Budget reached"
    KNOWN = (
        "spent_usd",
        "ceiling_usd",
        "needed_usd",
        "suggested_ceiling_usd",
        "by_module",
        "by_tier",
        "by_provider",
    )
    BUTTONS = (
        ("Add budget", "add", "success"),
        ("Abort task", "abort", "error"),
        ("Later", "later", "default"),
    )
    # ctrl+x is the ceiling box's cut: abort takes priority over it (the box has focus).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "add", "Add budget", tooltip="Raise the ceiling to the amount entered"),
        Binding("ctrl+x", "abort", "Abort task", tooltip="Stop the task for good", priority=True),
        Binding("escape", "later", "Later"),
    ]
    FIRST_FOCUS = "#ceiling"

    def body(self) -> ComposeResult:
        p = self.payload
        spent = float(p.get("spent_usd") or 0)
        ceiling = float(p.get("ceiling_usd") or 0)
        yield Static(gauge(spent, ceiling, simulated=False, width=20), id="gauge")
        needs = Text("The next call needs ")
        needs.append(usd(p.get("needed_usd")), style="bold")
        needs.append(" more than is left.")
        yield Static(needs)
        total = sum(float(v) for v in (p.get("by_module") or {}).values())
        tables = spend_tables({**p, "total_usd": total}, width=6)
        with VerticalScroll(id="spend"):
            yield Static(Columns(tables, padding=(0, 3)))
        suggested = p.get("suggested_ceiling_usd")
        yield Label(f"New ceiling, USD — above {usd(ceiling)} (Enter adds):", classes="field-label")
        yield Input(value=f"{suggested:g}" if suggested else "", id="ceiling", compact=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_add()

    def action_add(self) -> None:
        value = self.query_one("#ceiling", Input).value
        amount = parse_usd(value)
        ceiling = Decimal(str(self.payload.get("ceiling_usd") or 0))
        if amount is None or amount <= ceiling:
            self.fail(f"enter a new ceiling above {usd(float(ceiling))}, e.g. 2.50")
            return
        self.decide("approved", budget_usd=amount)

    def action_abort(self) -> None:
        self.decide("aborted", notes="aborted at the budget question")
