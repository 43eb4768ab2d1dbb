"""``agentfirm costs ID``: the totals (the store's running totals, a few dozen rows), then the
calls a page at a time, written as they come — so memory and time to first output do not grow
with the ledger. ``--json`` streams one document of the ``Costs`` shape."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

PAGE = 500
"""Calls fetched at a time."""
Fetch = Callable[[int, int], Awaitable[dict[str, Any]]]
"""``fetch(calls, after_seq)``: ``task_costs``' document with up to ``calls`` calls."""
FetchNow = Callable[[int, int], dict[str, Any]]
"""The same, answered at once (the daemon's client: no event loop to start)."""
Steps = Generator[tuple[int, int], dict[str, Any], None]


async def stream_costs(
    fetch: Fetch, *, limit: int | None, as_json: bool, out: Console | None, title: str
) -> None:
    """Print the totals and up to ``limit`` calls (None: all of them), oldest first (``out``:
    where a table goes, None for a new console)."""
    steps = _print(limit=limit, as_json=as_json, out=out, title=title)
    try:
        want = next(steps)
        while True:
            want = steps.send(await fetch(*want))
    except StopIteration:
        pass


def stream_costs_now(
    fetch: FetchNow, *, limit: int | None, as_json: bool, out: Console | None, title: str
) -> None:
    """``stream_costs`` over a fetch that answers at once."""
    steps = _print(limit=limit, as_json=as_json, out=out, title=title)
    try:
        want = next(steps)
        while True:
            want = steps.send(fetch(*want))
    except StopIteration:
        pass


def _print(*, limit: int | None, as_json: bool, out: Console | None, title: str) -> Steps:
    """Yields each page it needs (``(calls, after_seq)``), is sent the page, prints it."""
    first = yield (_size(limit), 0)
    header = {k: v for k, v in first.items() if k not in ("calls", "next_after_seq")}
    write = sys.stdout.write
    if as_json:
        write(json.dumps(header, indent=2)[:-2] + ',\n  "calls": [')
    else:
        from agentfirm.cli.output import console, print_cost_table

        out = out or console()
        print_cost_table(out, header, title=title)
        out.print()
        # Sized by the first page: the pages after it stream, their rows cannot widen a column.
        widths = _widths([_cells(call) for call in first["calls"]])
        # One line a call whatever the terminal's width, so a pipe can grep a call or a module.
        out.print(_line(_COLUMNS, widths), highlight=False, soft_wrap=True)
    shown = 0
    page = first
    while True:
        for call in page["calls"]:
            if as_json:
                write(("," if shown else "") + "\n    " + json.dumps(call))
            else:
                assert out is not None
                out.print(
                    _line(_cells(call), widths), highlight=False, markup=False, soft_wrap=True
                )
            shown += 1
        after = page.get("next_after_seq")
        left = None if limit is None else limit - shown
        if after is None or left == 0:
            break
        page = yield (_size(left), after)
    if as_json:
        write("\n  ]\n}\n")
    elif shown < int(header.get("calls_total", shown)):
        assert out is not None
        out.print(f"… {int(header['calls_total']) - shown} more calls (--calls N, or --all)")
    sys.stdout.flush()


def _size(left: int | None) -> int:
    return PAGE if left is None else min(left, PAGE)


_COLUMNS = ("call", "module", "tier", "model", "in", "cached", "out", "cost", "ms", "outcome")
_WIDTHS = (19, 16, 9, 24, 6, 6, 6, 9, 5, 0)
"""The least width of each column (the last is not padded)."""


def _widths(rows: list[tuple[str, ...]]) -> tuple[int, ...]:
    return tuple(
        max([least, *(len(row[n]) for row in rows)]) if least else 0
        for n, least in enumerate(_WIDTHS)
    )


def _line(cells: tuple[str, ...], widths: tuple[int, ...]) -> str:
    return " ".join(c.ljust(w) if w else c for c, w in zip(cells, widths, strict=True)).rstrip()


def _cells(c: dict[str, Any]) -> tuple[str, ...]:
    from agentfirm.cli.output import usd

    # An upper bound: abandoned after it was sent, booked at its reservation.
    cost = ("≤ " if c.get("upper_bound") else "") + usd(c["cost_usd"])
    return (
        c["call_id"],
        c["module_id"] or "—",
        c["tier"],
        f"{c['provider']}:{c['model']}",
        str(c["input_tokens"]),
        str(c["cached_input_tokens"]),
        str(c["output_tokens"]),
        cost,
        str(c["latency_ms"]),
        c["outcome"] + (" (sim)" if c["simulated"] else ""),
    )
