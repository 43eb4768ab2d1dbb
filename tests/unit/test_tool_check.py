"""The early tool check: a task needing a tool that cannot be used stops where it is, one line
per tool saying what to run once it is fixed; no catalog or no tools asks nothing."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from agentfirm.errors import ConfigError
from agentfirm.master.tool_check import check_tools, unavailable_tools


class Probe:
    def __init__(self, broken: dict[str, str]) -> None:
        self.broken = broken
        self.asked: list[list[str]] = []

    async def inspect(
        self, names: Iterable[str]
    ) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
        """What cannot be used, and (none here) the tools that may change things."""
        wanted = list(names)
        self.asked.append(wanted)
        return [self.broken[n] for n in wanted if n in self.broken], {}


async def test_a_broken_tool_stops_the_task_saying_how_to_go_on() -> None:
    probe = Probe({"mcp:notes": "mcp:notes could not start"})

    with pytest.raises(ConfigError) as stopped:
        await check_tools(
            probe, "t_1", ["mcp:notes", "fetch_url", "mcp:notes"], before="planning", then="resume"
        )

    assert stopped.value.problems == [
        "mcp:notes could not start; task t_1 stopped before planning: fix it, then agentfirm "
        "resume t_1"
    ]
    assert probe.asked == [["fetch_url", "mcp:notes"]]  # each name once


async def test_nothing_is_probed_without_tools_or_a_catalog() -> None:
    probe = Probe({})

    await check_tools(probe, "t_1", [], before="planning", then="resume")

    assert probe.asked == []
    assert await unavailable_tools(None, ["mcp:notes"]) == []
