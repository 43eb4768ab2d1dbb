"""`agentfirm tasks transcript` in plain text: every kind of entry said in words on its own
lines — a turn a crash left without an answer, a call interrupted and not run again."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from agentfirm.cli.output import print_transcript


def _shown(entries: list[dict[str, Any]]) -> list[str]:
    buffer = io.StringIO()
    print_transcript(Console(file=buffer, width=400, color_system=None), entries)
    return buffer.getvalue().splitlines()


def test_a_lost_turn_says_why_on_one_line() -> None:
    lost = {"kind": "lost", "module_id": "m", "turn": 2, "note": "failed: refused\n  [bold]x"}

    assert _shown([lost]) == ["◇ m turn 2  no answer: failed: refused [bold]x"]


def test_an_interrupted_call_says_it_was_not_run_again() -> None:
    call = {
        "kind": "tool",
        "module_id": "m",
        "turn": 1,
        "tool": "mcp:git/commit",
        "arguments": '{"message": "x"}',
        "content": "mcp:git/commit was interrupted",
        "is_error": True,
        "interrupted": True,
    }

    assert _shown([call]) == [
        '  ⚙ m turn 1  mcp:git/commit {"message": "x"} (interrupted by a crash: not run again)',
        "    mcp:git/commit was interrupted",
    ]


def test_a_call_with_invalid_arguments_is_not_just_an_error() -> None:
    call = {"kind": "tool", "module_id": "m", "turn": 1, "tool": "fetch_url", "arguments": "{"}
    call |= {"content": "Invalid call", "is_error": True, "malformed": True}

    assert "fetch_url { (invalid arguments)" in _shown([call])[0]


def test_a_turn_shows_the_arguments_it_asked_with_when_no_raw_text_was_kept() -> None:
    turn = {
        "kind": "model",
        "module_id": "m",
        "turn": 1,
        "provider": "offline",
        "model": "sim",
        "cost_usd": 0.0,
        "sent": [{"role": "user", "content": "find it"}],
        "tool_calls": [{"name": "fetch_url", "arguments": {"url": "u"}, "raw_arguments": ""}],
    }

    assert _shown([turn])[2] == '    ← asks fetch_url {"url": "u"}'
