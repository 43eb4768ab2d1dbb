"""The tool-consent prompt in the TUI and on Slack: a tool that may change things is shown with
its module, origin and arguments; allowing or denying it decides the ``tool`` approval."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agentfirm.tui.modals import ToolModal, modal_for
from agentfirm.tui.modals.base import Decision
from textual.app import App
from textual.widgets import Static

from agentfirm.slack.prompts import ACTION_PATTERN, ACTIONS, prompt

APPROVAL: dict[str, Any] = {
    "id": "ap_tool_1",
    "kind": "tool",
    "task_id": "t_1",
    "payload": {
        "question": "Module notes wants to run mcp:git/commit — allow it?",
        "module_id": "notes",
        "call_id": "c1",
        "tool": "git__commit",
        "origin": "mcp:git/commit",
        "arguments": '{"message": "Add the price list"}',
    },
}


class _Host(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.result: list[Decision | None] = []

    def on_mount(self) -> None:
        self.push_screen(modal_for(APPROVAL), self.result.append)


@pytest.mark.parametrize(("key", "decision"), [("y", "approved"), ("n", "rejected")])
async def test_the_tui_modal_allows_or_denies_the_tool(key: str, decision: str) -> None:
    app = _Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ToolModal)
        shown = str(modal.query_one("#tool", Static).content)
        assert "mcp:git/commit" in shown
        assert "Add the price list" in shown
        await pilot.press(key)
        await pilot.pause()
    [result] = app.result
    assert result is not None
    assert result.decision == decision


def test_the_slack_prompt_has_allow_and_deny_buttons_that_decide_it() -> None:
    message = prompt(APPROVAL)
    buttons = [
        element
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("af_tool_allow", "ap_tool_1"),
        ("af_tool_deny", "ap_tool_1"),
    ]
    assert (ACTIONS["af_tool_allow"].kind, ACTIONS["af_tool_allow"].decision) == (
        "tool",
        "approved",
    )
    assert ACTIONS["af_tool_deny"].decision == "rejected"
    import re

    assert re.match(ACTION_PATTERN, "af_tool_allow")
    assert "mcp:git/commit" in message.text
    # Where to see what the module did before it asked.
    assert "`agentfirm tasks transcript t_1 --module notes`" in json.dumps(message.blocks)


def test_the_event_log_summarises_turns_and_tool_calls() -> None:
    from agentfirm.tui.widgets.events import summary

    turn = {
        "type": "model.turn",
        "payload": {
            "turn": 1,
            "cost_usd": 0.002,
            "model": "gpt-5-mini",
            "tool_calls": [{"name": "fetch_url"}],
        },
    }
    tool = {
        "type": "tool.called",
        "payload": {
            "tool": "fetch_url",
            "arguments": '{"url": "https://a.example"}',
            "content": "x" * 20_000,
        },
    }
    assert summary(turn) == "turn 1 · $0.0020 gpt-5-mini · asks fetch_url"
    assert summary(tool) == 'fetch_url {"url": "https://a.example"} (20000 chars)'


def test_the_event_log_summarises_every_journal_event_in_words() -> None:
    from agentfirm.tui.widgets.events import summary

    def line(kind: str, **payload: Any) -> str:
        return summary({"type": kind, "payload": {"key": "k1", **payload}})

    assert line("model.turn.sent", turn=2) == "turn 2 · asked, awaiting the answer"
    assert line("model.turn.lost", turn=2, note="refused: budget") == (
        "turn 2 · no answer: refused: budget"
    )
    assert line("tool.started", turn=1, call_id="c1", tool="fetch_url") == (
        "fetch_url · running (turn 1)"
    )
    interrupted = line("tool.called", tool="mcp:git/commit", arguments="{}", interrupted=True)
    assert interrupted == "mcp:git/commit {} (interrupted by a crash: not run again)"
    assert line("tool.called", tool="fetch_url", arguments="{", malformed=True, is_error=True) == (
        "fetch_url { (invalid arguments)"
    )
    for kind in ("model.turn.sent", "model.turn.lost", "tool.started", "tool.called"):
        assert "key=" not in line(kind, turn=1, tool="t")


def test_a_transcript_shows_one_modules_turns_calls_and_what_became_of_them() -> None:
    from agentfirm.tui.screens.transcript import transcript_text

    def event(kind: str, module: str, **payload: Any) -> dict[str, Any]:
        return {"type": kind, "module_id": module, "payload": payload}

    events = [
        event(
            "model.turn",
            "notes",
            turn=1,
            provider="openai",
            model="gpt-5-mini",
            cost_usd=0.0002,
            sent=[{"role": "user", "content": "Write the price down."}],
            tool_calls=[{"name": "git__commit", "raw_arguments": '{"message": "x"}'}],
        ),
        event("tool.called", "notes", turn=1, tool="git__commit", content="Denied", denied=True),
        event("tool.called", "other", turn=1, tool="fetch_url", content="elsewhere"),
        event("model.turn.lost", "notes", turn=2, note="refused for budget"),
        event("tool.called", "notes", turn=2, tool="git__push", interrupted=True, is_error=True),
    ]

    shown = transcript_text(events, "notes").plain.splitlines()

    assert shown[0] == "◆ turn 1  openai:gpt-5-mini  $0.0002"
    assert shown[1:3] == [
        "    → user: Write the price down.",
        '    ← asks git__commit {"message": "x"}',
    ]
    assert "(denied)" in shown[3]
    assert shown[5] == "◇ turn 2  no answer: refused for budget"
    assert "(interrupted by a crash: not run again)" in shown[6]
    assert "fetch_url" not in "\n".join(shown)


async def test_a_task_the_daemon_stopped_is_said_in_a_notification() -> None:
    """A run stopped before it spends (a broken MCP server) says why in the task view too."""
    from tests.tui.conftest import fake_app
    from tests.tui.fixed_data import FakeSource
    from tests.tui.helpers import settle, until

    fake = FakeSource()
    app = fake_app(fake, open_task="t_exec")
    error = "configuration problem: mcp:notes could not start `x` (check 'notes' in mcp.json)"
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        fake.publish("t_exec", "task.result", {"error": error, "exit_code": 2})
        await until(pilot, lambda: any(error in n.message for n in app._notifications))
