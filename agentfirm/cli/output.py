"""The CLI's output layer: the only place that writes to the terminal. Human output uses rich
(``NO_COLOR`` honoured by rich itself); ``--json`` output is exactly one JSON document on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentfirm.domain.calls import QUALITY_ID, STITCH_ID

if TYPE_CHECKING:
    from datetime import datetime

    from rich.console import Console

    from agentfirm.domain.models import Event, Plan
    from agentfirm.domain.tools import ToolConsent
    from agentfirm.master.estimate import Estimate


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def say(line: str) -> None:
    """One line of plain text on stdout, as it is (no markup, no wrapping): for a command
    whose whole answer is a line, which then need not load rich."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    sys.stderr.write(f"agentfirm: error: {message}\n")
    sys.stderr.flush()


def note(message: str) -> None:
    """One line on stderr that is no error: what the command does meanwhile (stdout may hold
    the ``--json`` document)."""
    sys.stderr.write(f"agentfirm: {message}\n")
    sys.stderr.flush()


def json_requested(argv: Sequence[str] | None = None) -> bool:
    """``--json`` among the options of this command line (not after ``--``, where it would be
    an argument)."""
    args = sys.argv[1:] if argv is None else argv
    return "--json" in args[: args.index("--")] if "--" in args else "--json" in args


def fail_with(message: str, code: int) -> int:
    """Say why the command ends: one line on stderr and, under ``--json``, the document
    ``{"error": message, "exit_code": code}`` on stdout (one document, whatever happened).
    Returns ``code``."""
    error(message)
    if json_requested():
        emit_json({"error": message, "exit_code": code})
    return code


def plain(value: object) -> str:
    """``value`` as text that rich prints as is: brackets in a message, a schema pattern
    (``^[a-z][a-z0-9_]*$``) or a path are not read as markup. Every value interpolated into a
    markup string goes through it."""
    from rich.markup import escape

    return escape(str(value))


def usd(value: float) -> str:
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def print_plan(
    out: Console,
    plan: Plan,
    estimate: Estimate,
    budget_nano: int,
    *,
    persona: str,
    tools: Sequence[ToolConsent] = (),
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
            "uncovered": [u.model_dump(mode="json") for u in plan.uncovered],
            "tools": [t.to_json() for t in tools],
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
        f"\n[bold]Plan[/] — persona [cyan]{plain(payload.get('persona') or '?')}[/], "
        f"{len(modules)} modules"
    )
    for number, wave in enumerate(payload.get("waves") or [], start=1):
        out.print(f"  wave {number}: " + plain(", ".join(wave)))
    table = Table(show_edge=False, pad_edge=False)
    for column in ("module", "tier", "depends on", "expected", "worst case"):
        table.add_column(
            column, justify="right" if column in ("expected", "worst case") else "left"
        )
    for module in modules:
        row = per_module.get(module["id"], {})
        table.add_row(
            plain(module["id"]),
            plain(module["tier"]),
            plain(", ".join(module.get("depends_on") or ()) or "—"),
            usd(float(row.get("expected_usd", 0))),
            usd(float(row.get("worst_usd", 0))),
        )
    for extra in (STITCH_ID, QUALITY_ID):
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
    warning = over_budget_line(payload)
    if warning is not None:
        out.print(warning, soft_wrap=True)
    uncovered = payload.get("uncovered") or []
    if uncovered:
        from rich.markup import escape

        out.print(
            f"  [yellow]{len(uncovered)} quality checklist item(s) left uncovered[/] (the "
            "planner dropped every module covering them):"
        )
        for entry in uncovered:
            why = entry.get("why") or "no reason given"
            out.print(f"  - {escape(str(entry.get('item', '')))} — {escape(str(why))}")
    from agentfirm.domain.tools import plan_tool_lines

    for line, denied in plan_tool_lines(payload):
        from rich.markup import escape

        mark = "[red]![/]" if denied else "[yellow]·[/]"
        out.print(f"  {mark} {escape(line)}", soft_wrap=True)


def plan_warnings(payload: Mapping[str, Any]) -> list[str]:
    """What a plan run under ``--yes --json`` must still say, on stderr before the run (stdout
    holds one document): a worst case past the ceiling, and each tool it may call that will be
    denied."""
    from rich.markup import escape

    from agentfirm.domain.tools import plan_tool_lines

    warning = over_budget_line(payload)
    denied = [f"  [red]![/] {escape(line)}" for line, no in plan_tool_lines(payload) if no]
    return ([warning] if warning is not None else []) + denied


def over_budget_line(payload: Mapping[str, Any]) -> str | None:
    """Said plainly before a plan runs whose worst case passes its ceiling (``--yes`` approves
    it without a human looking): the task may stop for budget before it finishes. None when the
    worst case fits."""
    worst = float((payload.get("estimate") or {}).get("worst_usd", 0))
    ceiling = float(payload.get("budget_usd", 0))
    if worst <= ceiling:
        return None
    return (
        f"  [red]![/] the plan's worst case {usd(worst)} exceeds its budget {usd(ceiling)}: "
        "it may stop for budget before it finishes (raise it with --budget USD)"
    )


def notice_line(event: Event) -> str | None:
    """The line for an event a person must hear of even under ``--json`` (then on stderr): a
    provider that refused its key, a call that cost more than it reserved. None for others."""
    from rich.markup import escape

    from agentfirm.domain.notices import notice_text

    text = notice_text(event.type, event.payload)
    if text is None:
        return None
    mark = "[red]![/]" if event.type == "provider.key_refused" else "[red]$[/]"
    return f"  {mark} {escape(text)}"


class NoticePrinter:
    """Observer printing only ``notice_line`` events: what ``run --json`` shows on stderr."""

    def __init__(self, out: Console) -> None:
        self.out = out

    def __call__(self, event: Event) -> None:
        line = notice_line(event)
        if line is not None:
            self.out.print(line, soft_wrap=True)  # one line, however narrow the terminal


class ProgressPrinter:
    """Observer for the Master Agent: one line per module event, with costs as they land."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.started: dict[str, datetime] = {}

    def __call__(self, event: Event) -> None:
        p = event.payload
        module = event.module_id or ""
        name = plain(module)
        notice = notice_line(event)
        if notice is not None:
            self.out.print(notice, soft_wrap=True)
        elif event.type == "task.transition":
            self.out.print(
                f"[dim]· {p.get('from')} → {p.get('to')}  {plain(p.get('reason', ''))}[/]"
            )
        elif event.type == "module.started":
            self.started[module] = event.ts  # event times: right live and in a replay alike
            wave = p.get("wave", 0) + 1
            retry = f", attempt {p['attempt']}" if p.get("attempt", 1) > 1 else ""
            self.out.print(
                f"  [yellow]▶[/] {name:<28} started   wave {wave}, {p.get('tier', '')}{retry}"
            )
        elif event.type == "module.completed":
            took = (event.ts - self.started.get(module, event.ts)).total_seconds()
            sim = " (sim)" if p.get("simulated") else ""
            self.out.print(
                f"  [green]✓[/] {name:<28} done      {usd(float(p.get('cost_usd', 0)))}{sim}"
                f"  {took:4.1f}s  {plain(p.get('model', ''))}"
            )
        elif event.type == "module.retrying":
            self.out.print(f"  [yellow]↻[/] {name:<28} retrying  {plain(p.get('error', ''))}")
        elif event.type == "tool.called":
            self.out.print(f"  [cyan]⚙[/] {name:<28} tool      {tool_line(p)}")
        elif event.type == "module.failed":
            self.out.print(f"  [red]✗[/] {name:<28} failed    {plain(p.get('error', ''))}")
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


def tool_line(payload: Mapping[str, Any], width: int = 44) -> str:
    """One tool call of a transcript, for people: the tool, its arguments (clipped) and how it
    went — simulated, denied, refused or an error."""
    arguments = " ".join(str(payload.get("arguments", "")).split())
    if len(arguments) > width:
        arguments = arguments[: width - 1] + "…"
    if payload.get("simulated"):
        how = "[yellow](simulated: not run)[/]"
    elif payload.get("denied"):
        how = "[red](denied)[/]"
    elif payload.get("cut_off"):
        how = "[red](cut off by a stop: not run again)[/]"
    elif payload.get("interrupted"):
        how = "[red](interrupted by a crash: not run again)[/]"
    elif payload.get("malformed"):
        how = "[yellow](invalid arguments)[/]"
    elif payload.get("is_error"):
        how = "[red](error)[/]"
    else:
        how = f"[dim]({len(str(payload.get('content', '')))} chars back)[/]"
    from rich.markup import escape

    return f"{escape(str(payload.get('tool', '?')))} {escape(arguments)} {how}"


def print_transcript(out: Console, entries: Sequence[Mapping[str, Any]]) -> None:
    """A transcript (``api.views.task_transcript``'s entries) for people, one line an entry
    and one a message: model turns, turns left without an answer (and why), tool calls."""
    from rich.markup import escape

    for entry in entries:
        where = f"[bold]{escape(str(entry.get('module_id')))}[/] turn {entry.get('turn')}"
        if entry["kind"] == "tool":
            out.print(f"  [cyan]⚙[/] {where}  {tool_line(entry, width=200)}")
            out.print(f"    [dim]{escape(_clip(entry.get('content', '')))}[/]")
            continue
        if entry["kind"] == "lost":
            out.print(f"[yellow]◇[/] {where}  no answer: {escape(_clip(entry.get('note', '')))}")
            continue
        sim = " (sim)" if entry.get("simulated") else ""
        final = "  [yellow]last turn: tools withdrawn[/]" if entry.get("final") else ""
        # Its answer was cut off by a crash and taken from the provider's record, not asked twice.
        kept = "  [dim]answer from the provider's record[/]" if entry.get("recovered") else ""
        model = escape(f"{entry.get('provider')}:{entry.get('model')}")
        cost = usd(float(entry.get("cost_usd") or 0))
        out.print(f"[green]◆[/] {where}  {model}  {cost}{sim}{final}{kept}")
        for message in entry.get("sent", []):
            out.print(f"    → {message['role']}: {escape(_clip(message['content']))}")
        for call in entry.get("tool_calls", []):
            arguments = call.get("raw_arguments") or json.dumps(
                call.get("arguments"), ensure_ascii=False
            )
            out.print(f"    ← asks {escape(str(call['name']))} {escape(_clip(arguments))}")
        if not entry.get("tool_calls"):
            out.print(f"    ← {escape(_clip(entry.get('text', '')))}")
    if not entries:
        out.print("no model turns or tool calls journaled (modules without tools make one call)")


def _clip(text: str, width: int = 300) -> str:
    """``text`` on one line, at most ``width`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


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
        table.add_row(plain(module), usd(value))
    table.add_section()
    for tier, value in cost.get("by_tier", {}).items():
        table.add_row(f"tier {plain(tier)}", usd(value))
    for provider, value in cost.get("by_provider", {}).items():
        table.add_row(f"provider {plain(provider)}", usd(value))
    table.add_section()
    table.add_row("intake", usd(float(cost.get("intake_usd", 0))))
    table.add_row("build", usd(float(cost.get("build_usd", 0))))
    # Abandoned calls are booked at their reservations: the total is then an upper bound.
    bound = "≤ " if float(cost.get("upper_bound_usd", 0)) > 0 else ""
    table.add_row("[bold]total[/]", f"[bold]{bound}{usd(float(cost.get('total_usd', 0)))}[/]")
    out.print(table)


def print_rows(
    out: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    keep: Collection[str] = (),
) -> None:
    """A table of ``rows``. Its first column, and those named in ``keep``, are never cut nor
    wrapped, however narrow the terminal (the others give way): the first is what a reader
    copies into the next command (a task id, a persona's name), of no use cut to ``t_m9623wg…``,
    and an amount cut to ``$0.02…`` is a wrong amount."""
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for number, column in enumerate(columns):
        if number == 0 or column in keep:
            widest = max((len(row[number]) for row in rows), default=0)
            table.add_column(plain(column), no_wrap=True, min_width=max(widest, len(column)))
        else:
            table.add_column(plain(column))
    for row in rows:
        table.add_row(*(plain(cell) for cell in row))
    out.print(table)


def flat_value(value: Any) -> str:
    """A setting's value for people: ``—`` when unset, lists comma-separated, text as is."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(flat_value(item) for item in value) or "(none)"
    return str(value)


def flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested settings as ``(dotted.key, value)`` rows (an empty table as ``(none)``)."""
    rows: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(flatten(value, name + ".") if value else [(name, "(none)")])
        else:
            rows.append((name, flat_value(value)))
    return rows


def print_pairs(out: Console, data: Mapping[str, Any]) -> None:
    """``key  value`` lines for nested data (``config show``, ``db status``), nothing read as
    markup."""
    rows = flatten(data)
    width = max((len(key) for key, _ in rows), default=0)
    for key, value in rows:
        out.print(f"{key:<{width}}  {value}", markup=False, soft_wrap=True)
