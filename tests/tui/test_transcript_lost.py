"""The TUI transcript says what a crash cut off, as `tasks transcript` does: a turn asked and
never answered, and a tool call interrupted and not run again."""

from __future__ import annotations

from agentfirm.tui.screens.transcript import transcript_text


def test_a_lost_turn_and_an_interrupted_call_are_said() -> None:
    events = [
        {
            "type": "tool.called",
            "module_id": "m",
            "payload": {"turn": 1, "tool": "notes__read", "is_error": True, "interrupted": True},
        },
        {
            "type": "model.turn.lost",
            "module_id": "m",
            "payload": {"turn": 2, "note": "the process stopped before this turn's answer"},
        },
    ]

    shown = transcript_text(events, "m").plain

    assert "notes__read" in shown
    assert "(interrupted by a crash: not run again)" in shown
    assert "turn 2  no answer: the process stopped" in shown
