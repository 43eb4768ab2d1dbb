"""The CLI's output layer: the only place that writes to the terminal. Human output uses rich
(``NO_COLOR`` honoured by rich itself); ``--json`` output is exactly one JSON document on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from rich.console import Console

    from agentfirm.domain import Event, Plan
    from agentfirm.master.estimate import Estimate


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    sys.stderr.write(f"agentfirm: error: {message}\n")
    sys.stderr.flush()


def usd(value: float) -> str:
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def print_plan(
    out: Console, plan: Plan, estimate: Estimate, budget_nano: int, *, persona: str
) -> None:
    from agentfirm.money import nano_to_float

    print_plan_payload(
        out,
        {
            "persona": persona,
            "modules": [
                m.model_dump(mode="json", include={"id", "tier", "depends_on"})
                for m in plan.modules
            ],
            "waves": plan.waves,
            "estimate": estimate.to_json(),
            "budget_usd": nano_to_float(budget_nano),
        },
    )


def print_plan_payload(out: Console, payload: Mapping[str, Any]) -> None:
    """A plan as a plan approval's payload carries it (``modules``, ``waves``, ``estimate``,
    ``budget_usd``, ``persona``): the same table in the terminal and through the daemon."""
    from rich.table import Table

    modules = payload.get("modules") or []
    estimate = payload.get("estimate") or {}
    per_module = estimate.get("by_module") or {}
    out.print(
        f"\n[bold]Plan[/] — persona [cyan]{payload.get('persona') or '?'}[/], "
        f"{len(modules)} modules"
    )
    for number, wave in enumerate(payload.get("waves") or [], start=1):
        out.print(f"  wave {number}: " + ", ".join(wave))
    table = Table(show_edge=False, pad_edge=False)
    for column in ("module", "tier", "depends on", "expected", "worst case"):
        table.add_column(
            column, justify="right" if column in ("expected", "worst case") else "left"
        )
    for module in modules:
        row = per_module.get(module["id"], {})
        table.add_row(
            module["id"],
            module["tier"],
            ", ".join(module.get("depends_on") or ()) or "—",
            usd(float(row.get("expected_usd", 0))),
            usd(float(row.get("worst_usd", 0))),
        )
    for extra in ("_stitch", "_quality"):
        if extra in per_module:
            row = per_module[extra]
            table.add_row(
                extra,
                str(row.get("tier", "")),
                "all",
                usd(float(row["expected_usd"])),
                usd(float(row["worst_usd"])),
            )
    out.print(table)
    out.print(
        f"  estimate: expected {usd(float(estimate.get('expected_usd', 0)))}, worst case "
        f"{usd(float(estimate.get('worst_usd', 0)))}; budget ceiling "
        f"[bold]{usd(float(payload.get('budget_usd', 0)))}[/]"
    )


class ProgressPrinter:
    """Observer for the Master Agent: one line per module event, with costs as they land."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.started: dict[str, datetime] = {}

    def __call__(self, event: Event) -> None:
        p = event.payload
        module = event.module_id or ""
        if event.type == "task.transition":
            self.out.print(f"[dim]· {p.get('from')} → {p.get('to')}  {p.get('reason', '')}[/]")
        elif event.type == "module.started":
            self.started[module] = event.ts  # event times: right live and in a replay alike
            wave = p.get("wave", 0) + 1
            retry = f", attempt {p['attempt']}" if p.get("attempt", 1) > 1 else ""
            self.out.print(
                f"  [yellow]▶[/] {module:<28} started   wave {wave}, {p.get('tier', '')}{retry}"
            )
        elif event.type == "module.completed":
            took = (event.ts - self.started.get(module, event.ts)).total_seconds()
            sim = " (sim)" if p.get("simulated") else ""
            self.out.print(
                f"  [green]✓[/] {module:<28} done      {usd(float(p.get('cost_usd', 0)))}{sim}"
                f"  {took:4.1f}s  {p.get('model', '')}"
            )
        elif event.type == "module.retrying":
            self.out.print(f"  [yellow]↻[/] {module:<28} retrying  {p.get('error', '')}")
        elif event.type == "module.failed":
            self.out.print(f"  [red]✗[/] {module:<28} failed    {p.get('error', '')}")
        elif event.type == "budget.exceeded":
            self.out.print(
                f"  [red]$[/] budget reached: spent {usd(float(p.get('spent_usd', 0)))} of "
                f"{usd(float(p.get('ceiling_usd', 0)))}"
            )
        elif event.type == "draft.ready":
            self.out.print("  [cyan]✎[/] draft stitched")
        elif event.type == "quality.judged":
            self.out.print(
                f"  [cyan]☑[/] quality: {p.get('passed', 0)} passed, {p.get('failed', 0)} failed"
            )


def print_cost_table(out: Console, cost: Mapping[str, Any], *, title: str = "Costs") -> None:
    from rich.table import Table

    out.print(f"[bold]{title}[/]")
    if cost.get("simulated"):
        out.print(
            "[yellow]SIMULATED[/] — offline provider; every call priced at its model's list price"
        )
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("module")
    table.add_column("cost", justify="right")
    for module, value in cost.get("by_module", {}).items():
        table.add_row(module, usd(value))
    table.add_section()
    for tier, value in cost.get("by_tier", {}).items():
        table.add_row(f"tier {tier}", usd(value))
    for provider, value in cost.get("by_provider", {}).items():
        table.add_row(f"provider {provider}", usd(value))
    table.add_section()
    table.add_row("[bold]total[/]", f"[bold]{usd(float(cost.get('total_usd', 0)))}[/]")
    out.print(table)


def print_rows(out: Console, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    out.print(table)
