"""A table's first column holds what a reader copies into the next command (a task id), and some
columns must be read whole (an amount, a status); on a narrow terminal, or a pipe (rich then
assumes 80 columns), they stay whole and the other columns give way: `tasks list` printed
`t_m9623wg…`, of no use to `costs ID`, and `tasks show` a module's cost as `$0.02…`."""

from __future__ import annotations

import io

from rich.console import Console

from agentfirm.cli.output import print_rows

TASK = "t_m9623wgtpg0jf5"
STATUS = "awaiting_plan_approval ⏸ failure"
REQUEST = "Assess the patentability of a battery thermal-management design " * 2


def _printed(width: int, *, keep: tuple[str, ...]) -> str:
    out = Console(file=io.StringIO(), width=width, no_color=True, highlight=False)
    print_rows(
        out,
        ["task", "status", "persona", "cost", "request"],
        [[TASK, STATUS, "patent_research", "$0.4396", REQUEST]],
        keep=keep,
    )
    file = out.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def test_the_first_column_and_those_kept_stay_whole_on_a_narrow_terminal() -> None:
    for width in (80, 100):  # a pipe, a small window
        printed = _printed(width, keep=("status", "cost"))

        assert TASK in printed
        assert STATUS in printed
        assert "$0.4396" in printed
        assert all(len(line) <= width for line in printed.splitlines())


def test_by_default_the_first_column_alone_is_kept_whole() -> None:
    printed = _printed(60, keep=())

    assert TASK in printed
    assert "patent_research" not in printed  # the others give way
