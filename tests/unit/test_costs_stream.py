"""``agentfirm costs``: totals, then the calls a page at a time — the shown calls as asked
(``--calls N`` or all), in one JSON document or a table whose upper bounds read "≤"."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from rich.console import Console

from agentfirm.cli import costs_stream
from agentfirm.cli.costs_stream import stream_costs

TOTAL_CALLS = 7


def call(n: int) -> dict[str, Any]:
    return {
        "call_id": f"c{n}",
        "module_id": "m",
        "tier": "execution",
        "provider": "openai",
        "model": "gpt-5-mini",
        "input_tokens": 10,
        "cached_input_tokens": 0,
        "output_tokens": 5,
        "cost_usd": 0.001,
        "latency_ms": 3,
        "outcome": "cancelled" if n == 0 else "ok",
        "upper_bound": n == 0,
        "simulated": False,
        "at": "2026-12-06T00:00:00+00:00",
    }


class Pages:
    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []

    async def __call__(self, size: int, after: int) -> dict[str, Any]:
        self.asked.append((size, after))
        calls = [call(n) for n in range(after, min(after + size, TOTAL_CALLS))]
        more = after + len(calls) < TOTAL_CALLS and len(calls) == size
        return {
            "total_usd": 0.007,
            "upper_bound_usd": 0.001,
            "calls_total": TOTAL_CALLS,
            "by_module": {"m": 0.007},
            "calls": calls,
            "next_after_seq": after + len(calls) if more else None,
        }


@pytest.mark.parametrize(("limit", "shown"), [(None, 7), (3, 3), (0, 0), (50, 7)])
async def test_json_is_one_document_with_the_calls_asked_for(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    limit: int | None,
    shown: int,
) -> None:
    monkeypatch.setattr(costs_stream, "PAGE", 2)  # several pages
    out = Console(file=io.StringIO())

    await stream_costs(Pages(), limit=limit, as_json=True, out=out, title="t")

    doc = json.loads(capsys.readouterr().out)
    assert [c["call_id"] for c in doc["calls"]] == [f"c{n}" for n in range(shown)]
    assert (doc["total_usd"], doc["calls_total"]) == (0.007, TOTAL_CALLS)


async def test_the_table_marks_upper_bounds_and_says_what_is_left() -> None:
    buffer = io.StringIO()
    out = Console(file=buffer, width=200)

    await stream_costs(Pages(), limit=3, as_json=False, out=out, title="t")

    text = buffer.getvalue()
    assert "≤ $0.0010" in text
    assert "≤ $0.0070" in text  # the total includes an upper bound
    assert "4 more calls" in text


async def test_each_call_is_one_line_on_an_80_column_pipe_and_long_names_keep_columns_aligned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(costs_stream, "PAGE", 3)  # the later pages keep the first page's widths

    class LongNames(Pages):
        async def __call__(self, size: int, after: int) -> dict[str, Any]:
            page = await super().__call__(size, after)
            for c in page["calls"]:
                c["module_id"] = "non_patent_literature_search"
            return page

    buffer = io.StringIO()
    out = Console(file=buffer, width=80)  # what rich assumes for a pipe

    await stream_costs(LongNames(), limit=None, as_json=False, out=out, title="t")

    lines = buffer.getvalue().splitlines()
    rows = [line for line in lines if line[:1] == "c" and line.split()[0][1:].isdigit()]
    assert [row.split()[0] for row in rows] == [f"c{n}" for n in range(TOTAL_CALLS)]
    assert all(row.split()[1] == "non_patent_literature_search" for row in rows)
    header = next(line for line in lines if line.startswith("call "))
    assert {row.index("execution") for row in rows} == {header.index("tier")}
