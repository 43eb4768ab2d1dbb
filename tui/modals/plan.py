"""Plan approval: the modules by wave with their tiers and dependencies, the cost estimate, and
the budget ceiling to approve it at."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Input, Label, Static

from agentfirm.domain.tools import plan_tool_lines

from ..fmt import TIER_SHORT, usd
from .base import ApprovalModal, parse_usd


def plan_table(payload: dict[str, Any]) -> Table:
    waves: list[list[str]] = payload.get("waves") or []
    wave_of = {m: n for n, level in enumerate(waves, start=1) for m in level}
    table = Table(box=None, padding=(0, 1), expand=True, header_style="bold")
    table.add_column("wave", justify="right", no_wrap=True)
    table.add_column("module", no_wrap=True, overflow="ellipsis", ratio=2)
    table.add_column("tier", no_wrap=True)
    table.add_column("needs", overflow="ellipsis", no_wrap=True, ratio=3)
    modules = sorted(payload.get("modules") or [], key=lambda m: (wave_of.get(m["id"], 0), m["id"]))
    for module in modules:
        name = Text(module["id"])
        if module.get("title"):
            name.append(f" {module['title']}", style="dim")
        table.add_row(
            Text(str(wave_of.get(module["id"], "?"))),
            name,
            Text(TIER_SHORT.get(module.get("tier", ""), module.get("tier", ""))),
            Text(", ".join(module.get("depends_on") or []) or "—"),
        )
    return table


def estimate_line(payload: dict[str, Any]) -> Text:
    estimate = payload.get("estimate") or {}
    modules = payload.get("modules") or []
    waves = payload.get("waves") or []
    text = Text(f"{len(modules)} modules in {len(waves)} waves", style="bold")
    if payload.get("persona"):
        text.append(f" · persona {payload['persona']}")
    text.append("\nestimate: expected ")
    text.append(usd(estimate.get("expected_usd")), style="bold green")
    text.append(", worst case ")
    text.append(usd(estimate.get("worst_usd")), style="bold yellow")
    if payload.get("suggested_budget_usd") is not None:
        text.append(f" · suggested budget {usd(payload['suggested_budget_usd'])}")
    return text


def uncovered_text(payload: dict[str, Any]) -> Text:
    """The quality checklist items the plan leaves uncovered, each with the planner's why
    (empty when it covers them all)."""
    uncovered = payload.get("uncovered") or []
    text = Text()
    if uncovered:
        text.append(
            f"{len(uncovered)} quality checklist item(s) left uncovered "
            "(--yes would refuse this plan):",
            style="bold yellow",
        )
        for entry in uncovered:
            text.append(f"\n- {entry.get('item', '')}")
            text.append(f" — {entry.get('why') or 'no reason given'}", style="dim")
    return text


def tools_text(payload: dict[str, Any]) -> Text:
    """What becomes of the tools the plan may call that may change things (empty when none),
    in the words every front end uses (``plan_tool_lines``)."""
    text = Text()
    for line, denied in plan_tool_lines(payload):
        if text.plain:
            text.append("\n")
        text.append("! " if denied else "· ", style="bold red" if denied else "yellow")
        text.append(line, style="bold" if denied else "")
    return text


class PlanModal(ApprovalModal):
    HEADING = "Approve the plan"
    KNOWN = (
        "persona",
        "modules",
        "waves",
        "estimate",
        "suggested_budget_usd",
        "budget_usd",
        "uncovered",
        "tools",
    )
    BUTTONS = (
        ("Approve", "approve", "success"),
        ("Reject", "reject", "error"),
        ("Later", "later", "default"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "approve", "Approve", tooltip="Approve at the budget entered"),
        Binding("ctrl+n", "reject", "Reject", tooltip="Reject the plan (the task ends)"),
        Binding("escape", "later", "Later"),
    ]
    FIRST_FOCUS = "#budget"

    def body(self) -> ComposeResult:
        yield Static(estimate_line(self.payload), id="estimate")
        with VerticalScroll(id="plan"):
            yield Static(plan_table(self.payload))
        uncovered = uncovered_text(self.payload)
        if uncovered.plain:
            yield Static(uncovered, id="uncovered")
        tools = tools_text(self.payload)
        if tools.plain:
            yield Static(tools, id="tools")
        budget = self.payload.get("budget_usd") or self.payload.get("suggested_budget_usd") or ""
        yield Label("Budget ceiling, USD (Enter approves):", classes="field-label")
        yield Input(value=f"{budget:g}" if budget else "", id="budget", compact=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_approve()

    def action_approve(self) -> None:
        value = self.query_one("#budget", Input).value
        budget = parse_usd(value)
        if budget is None:
            self.fail(f"budget {value!r} is not a positive amount: enter e.g. 2.50")
            return
        self.decide("approved", budget_usd=budget)

    def action_reject(self) -> None:
        self.decide("rejected")
