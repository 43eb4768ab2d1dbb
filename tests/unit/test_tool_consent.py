"""Consent for tools that may change things: ``--yes`` denies them unless ``--allow-tool`` names
them (in-process and answering a daemon's ``tool`` approval alike)."""

from __future__ import annotations

from agentfirm.cli.answers import AutoAnswers
from agentfirm.domain.tools import ToolRequest
from agentfirm.master.decisions import AutoDecider

REQUEST = ToolRequest("c1", "git__commit", "mcp:git/commit", '{"message": "x"}')


def _approval(**payload: str) -> dict[str, object]:
    return {"kind": "tool", "task_id": "t_1", "payload": payload}


async def test_yes_denies_a_side_effecting_tool() -> None:
    assert not await AutoDecider().approve_tool("t_1", "m", REQUEST)


async def test_allow_tool_names_it_by_either_name() -> None:
    assert await AutoDecider(["mcp:git/commit"]).approve_tool("t_1", "m", REQUEST)
    assert await AutoDecider(["git__commit"]).approve_tool("t_1", "m", REQUEST)
    assert not await AutoDecider(["mcp:git/push"]).approve_tool("t_1", "m", REQUEST)


def test_yes_answers_a_daemons_tool_question_the_same_way() -> None:
    asked = _approval(tool="git__commit", origin="mcp:git/commit")
    assert AutoAnswers().answer(asked) == ("rejected", {})
    assert AutoAnswers(allowed_tools=["mcp:git/commit"]).answer(asked) == ("approved", {})


async def test_allow_tool_names_every_tool_of_a_server_with_a_wildcard() -> None:
    assert await AutoDecider(["mcp:git/*"]).approve_tool("t_1", "m", REQUEST)
    assert not await AutoDecider(["mcp:gitlab/*"]).approve_tool("t_1", "m", REQUEST)
    builtin = ToolRequest("c2", "fetch_url", "builtin", "{}")
    assert not await AutoDecider(["mcp:fetch_url/*"]).approve_tool("t_1", "m", builtin)


def test_a_daemons_tool_question_is_answered_by_the_wildcard_too() -> None:
    asked = _approval(tool="git__commit", origin="mcp:git/commit")
    assert AutoAnswers(allowed_tools=["mcp:git/*"]).answer(asked) == ("approved", {})
    assert AutoAnswers(allowed_tools=["mcp:gi/*"]).answer(asked) == ("rejected", {})
