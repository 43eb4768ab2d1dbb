"""The cost panel: a budget gauge and the spend by module, tier and provider. Simulated spend
(the offline provider, priced at list price) is marked wherever it appears."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.columns import Columns
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from ..fmt import bar, fraction_style, usd

SIMULATED_MARK = "≈"
SIMULATED_NOTE = f"{SIMULATED_MARK} simulated: offline provider, priced at list price"


def gauge(spent: float, budget: float, *, simulated: bool, width: int = 30) -> Text:
    """``Budget ██████░░░░ $0.42 of $3.00 (14%)``, plus the simulation mark."""
    fraction = spent / budget if budget > 0 else 0.0
    text = Text("Budget ", style="bold")
    text.append_text(bar(spent, budget, width))
    text.append(f" {usd(spent)} of {usd(budget)} ")
    text.append(f"({fraction:.0%})", style=fraction_style(fraction))
    if simulated:
        text.append(f"  {SIMULATED_MARK} simulated", style="italic magenta")
    return text


def _simulated_keys(calls: list[dict[str, Any]], key: str) -> set[str]:
    return {str(c.get(key) or "_task") for c in calls if c.get("simulated")}


def breakdown(
    title: str,
    sums: Mapping[str, float],
    total: float,
    *,
    simulated: set[str] | None = None,
    width: int = 8,
) -> Table:
    """One table: name, cost, a share bar; simulated rows carry the mark."""
    table = Table(title=title, title_style="bold", box=None, padding=(0, 1), expand=False)
    table.add_column(title.split()[-1].capitalize(), no_wrap=True, overflow="ellipsis")
    table.add_column("USD", justify="right", no_wrap=True)
    table.add_column("share", no_wrap=True)
    if not sums:
        table.add_row(Text("nothing spent yet", style="dim"), "", "")
    for name, cost in sums.items():
        mark = f"{SIMULATED_MARK} " if simulated and name in simulated else ""
        share = bar(cost, total, width) if total > 0 else Text("")
        table.add_row(Text(name), Text(mark + usd(cost)), share)
    return table


def spend_tables(costs: Mapping[str, Any], *, width: int = 8) -> list[Table]:
    """By module, by tier and by provider, from a ``costs``-shaped mapping (``GET
    /tasks/{id}/costs`` or a budget question's payload)."""
    calls = list(costs.get("calls") or [])
    total = float(costs.get("total_usd") or sum((costs.get("by_module") or {}).values()))
    everything = bool(costs.get("simulated")) and not calls
    return [
        breakdown(
            f"by {key}",
            costs.get(f"by_{key}") or {},
            total,
            simulated=set(costs.get(f"by_{key}") or {})
            if everything
            else _simulated_keys(calls, "module_id" if key == "module" else key),
            width=width,
        )
        for key in ("module", "tier", "provider")
    ]


class CostPanel(VerticalScroll):
    """Gauge on top, then the three breakdowns."""

    DEFAULT_CSS = """
    CostPanel { height: 1fr; padding: 0 1; }
    CostPanel > #gauge { height: auto; margin: 0 0 1 0; }
    CostPanel > #tables { height: auto; }
    CostPanel > #note { height: auto; color: $text-muted; margin: 1 0 0 0; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="gauge")
        yield Static(id="tables")
        yield Static(id="note")

    def show_gauge(self, spent: float, budget: float, *, simulated: bool) -> None:
        gauge_line = gauge(spent, budget, simulated=simulated)
        self.query_one("#gauge", Static).update(gauge_line, layout=False)  # always one line

    def show_costs(self, costs: Mapping[str, Any]) -> None:
        columns = Columns(spend_tables(costs), padding=(0, 4))
        self.query_one("#tables", Static).update(columns)
        calls = list(costs.get("calls") or [])
        refused = sum(1 for c in calls if c.get("outcome") == "budget_refused")
        failed = sum(1 for c in calls if c.get("outcome") == "error")
        note = Text(f"{len(calls)} calls")
        if refused:
            note.append(f" · {refused} refused for budget", style="yellow")
        if failed:
            note.append(f" · {failed} failed", style="red")
        if costs.get("simulated"):
            note.append(f"\n{SIMULATED_NOTE}", style="italic magenta")
        self.query_one("#note", Static).update(note)
