"""The CLI's output layer prints text with brackets as it is: a schema pattern, a path or a model's
error is never read as rich markup (issue 20: ``^[a-z][a-z0-9_]*$`` printed as ``^*$``)."""

from __future__ import annotations

import io

from rich.console import Console

from agentfirm.cli.output import (
    ProgressPrinter,
    flatten,
    print_cost_table,
    print_pairs,
    print_plan_payload,
    print_rows,
)
from agentfirm.domain.models import Event

PATTERN = "^[a-z][a-z0-9_]*$"


def _console() -> Console:
    return Console(file=io.StringIO(), width=200, no_color=True, highlight=False)


def _text(out: Console) -> str:
    file = out.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def test_a_failed_module_s_error_keeps_its_brackets() -> None:
    out = _console()
    printer = ProgressPrinter(out)
    for kind in ("module.failed", "module.retrying"):
        printer(
            Event(
                id="e1",
                task_id="t1",
                seq=1,
                type=kind,
                module_id="m[1]",
                payload={"error": f"id does not match pattern {PATTERN} [bold]x[/]"},
            )
        )
    text = _text(out)
    assert text.count(f"pattern {PATTERN} [bold]x[/]") == 2
    assert "m[1]" in text


def test_tables_print_cells_as_they_are() -> None:
    out = _console()
    print_rows(out, ["id", "[pattern]"], [["[red]task[/]", PATTERN]])
    print_cost_table(out, {"by_module": {"[m]": 0.1}, "by_provider": {"[p]": 0.1}})
    print_plan_payload(
        out,
        {
            "persona": "[p]",
            "modules": [{"id": "[a]", "tier": "execution", "depends_on": ["[b]"]}],
            "waves": [["[a]"]],
            "estimate": {},
            "budget_usd": 1,
        },
    )
    text = _text(out)
    for shown in ("[red]task[/]", PATTERN, "[pattern]", "[m]", "[p]", "[a]", "[b]"):
        assert shown in text


def test_pairs_render_nested_settings_without_python_reprs() -> None:
    data = {
        "tiers": {"reasoning": ["anthropic:claude"], "utility": []},
        "prices": {},
        "database_url": None,
        "offline": False,
        "pending": ["1 init", "2 [x]"],
    }
    assert flatten(data) == [
        ("tiers.reasoning", "anthropic:claude"),
        ("tiers.utility", "(none)"),
        ("prices", "(none)"),
        ("database_url", "—"),
        ("offline", "false"),
        ("pending", "1 init, 2 [x]"),
    ]
    out = _console()
    print_pairs(out, data)
    text = _text(out)
    assert "{" not in text
    assert "None" not in text
    assert "2 [x]" in text
